// Reading a method's parameters as the dispatch carries them (the JSON form
// of `JobMethod` without `kind`): a wrong field is a BAD_ARGUMENT naming it.

import path from "node:path";
import { AbsError } from "../../errors.js";
import { Fields, type JsonObject, ShapeError } from "../../json-shape.js";

export function readParams<T>(method: string, params: JsonObject, read: (f: Fields) => T): T {
  try {
    return read(new Fields(params, "params"));
  } catch (err) {
    if (err instanceof ShapeError) {
      throw new AbsError("BAD_ARGUMENT", `${method}: ${err.field}: ${err.why}`, {
        context: { field: err.field },
      });
    }
    throw err;
  }
}

export function absolute(f: Fields, key: string): string {
  const v = f.string(key, { nonEmpty: true });
  if (!path.isAbsolute(v)) throw new ShapeError(`${f.prefix}.${key}`, `"${v}" is not absolute`);
  return path.resolve(v);
}

export function absolutePath(v: string, field: string): string {
  if (!path.isAbsolute(v)) throw new ShapeError(field, `"${v}" is not absolute`);
  return path.resolve(v);
}

export function stringArray(f: Fields, key: string): string[] {
  return f.array(key).map((v, i) => {
    if (typeof v !== "string")
      throw new ShapeError(`${f.prefix}.${key}[${i}]`, "expected a string");
    return v;
  });
}
