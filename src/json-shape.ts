// Checks the shape of parsed JSON (job files, wire messages) field by field.
// Pure code. A mismatch throws ShapeError naming the field path and what was
// expected; callers turn it into their own typed error (JobFileError,
// ProtocolError) so the user sees which field of which file or message was
// wrong.

export class ShapeError extends Error {
  constructor(
    /** Dotted path of the bad field, e.g. `timestamps.ended` or `running[2].jobId`. */
    readonly field: string,
    /** What was wrong, e.g. `expected an integer >= 1, got "x"`. */
    readonly why: string,
  ) {
    super(`${field}: ${why}`);
    this.name = "ShapeError";
  }
}

export type JsonObject = { [key: string]: JsonValue };
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;

/**
 * `T` where it is JSON all through, `never` where it is not (undefined, a
 * function, a Date, a Map): `T extends JsonCompatible<T>` holds only for a
 * type whose values JSON.stringify writes as they are. Unlike JsonValue it
 * takes interfaces, which TypeScript never gives an index signature: the
 * admin methods' results are interfaces (protocol/admin-contract.ts).
 */
export type JsonCompatible<T> = T extends null | boolean | number | string
  ? T
  : T extends (...args: never[]) => unknown
    ? never
    : T extends readonly (infer U)[]
      ? readonly JsonCompatible<U>[]
      : T extends object
        ? { [K in keyof T]: JsonCompatible<T[K]> }
        : never;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short, safe rendering of a bad value for an error message. */
export function showValue(value: unknown): string {
  if (value === undefined) return "nothing";
  let text: string;
  try {
    text = JSON.stringify(value) ?? typeof value;
  } catch {
    text = typeof value;
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function join(prefix: string, key: string): string {
  return prefix === "" ? key : `${prefix}.${key}`;
}

/**
 * Reads typed fields out of one JSON object. `prefix` is the path of the
 * object itself, so nested readers report full paths.
 */
export class Fields {
  readonly raw: Record<string, unknown>;
  // The path is built only when an error needs it: job files hold many
  // nested objects, and a string per object would slow the load down.
  private readonly prefixOf: string | (() => string);

  constructor(value: unknown, prefix: string | (() => string) = "") {
    this.prefixOf = prefix;
    if (!isPlainObject(value)) {
      const where = this.prefix === "" ? "(top level)" : this.prefix;
      throw new ShapeError(where, `expected an object, got ${showValue(value)}`);
    }
    this.raw = value;
  }

  /** Dotted path of this object itself ("" at the top level). */
  get prefix(): string {
    return typeof this.prefixOf === "string" ? this.prefixOf : this.prefixOf();
  }

  private fail(key: string, expected: string): never {
    throw new ShapeError(
      join(this.prefix, key),
      `expected ${expected}, got ${showValue(this.raw[key])}`,
    );
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined;
  }

  string(key: string, opts: { maxLength?: number; nonEmpty?: boolean } = {}): string {
    const v = this.raw[key];
    if (typeof v !== "string") this.fail(key, "a string");
    if (opts.nonEmpty === true && v.length === 0) this.fail(key, "a non-empty string");
    if (opts.maxLength !== undefined && v.length > opts.maxLength) {
      this.fail(key, `a string of at most ${opts.maxLength} characters`);
    }
    return v;
  }

  optionalString(
    key: string,
    opts: { maxLength?: number; nonEmpty?: boolean } = {},
  ): string | undefined {
    return this.has(key) ? this.string(key, opts) : undefined;
  }

  int(key: string, opts: { min?: number; max?: number } = {}): number {
    const v = this.raw[key];
    const min = opts.min ?? Number.MIN_SAFE_INTEGER;
    const max = opts.max ?? Number.MAX_SAFE_INTEGER;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
      const range =
        opts.min !== undefined && opts.max !== undefined
          ? ` from ${min} to ${max}`
          : opts.min !== undefined
            ? ` >= ${min}`
            : opts.max !== undefined
              ? ` <= ${max}`
              : "";
      this.fail(key, `an integer${range}`);
    }
    return v;
  }

  optionalInt(key: string, opts: { min?: number; max?: number } = {}): number | undefined {
    return this.has(key) ? this.int(key, opts) : undefined;
  }

  /** An integer or null (null is kept: it means "not yet", e.g. a timestamp). */
  nullableInt(key: string, opts: { min?: number; max?: number } = {}): number | null {
    return this.raw[key] === null ? null : this.int(key, opts);
  }

  number(key: string): number {
    const v = this.raw[key];
    if (typeof v !== "number" || !Number.isFinite(v)) this.fail(key, "a finite number");
    return v;
  }

  boolean(key: string): boolean {
    const v = this.raw[key];
    if (typeof v !== "boolean") this.fail(key, "true or false");
    return v;
  }

  oneOf<T extends string>(key: string, values: readonly T[]): T {
    const v = this.raw[key];
    if (typeof v !== "string" || !(values as readonly string[]).includes(v)) {
      this.fail(key, `one of ${values.join(", ")}`);
    }
    return v as T;
  }

  object(key: string): Fields {
    return new Fields(this.raw[key], () => join(this.prefix, key));
  }

  nullableObject(key: string): Fields | null {
    return this.raw[key] === null ? null : this.object(key);
  }

  /** A JSON object kept as it is (e.g. method parameters), checked to be an object only. */
  jsonObject(key: string): JsonObject {
    const v = this.raw[key];
    if (!isPlainObject(v)) this.fail(key, "an object");
    return v as JsonObject;
  }

  array(key: string, opts: { maxLength?: number } = {}): unknown[] {
    const v = this.raw[key];
    if (!Array.isArray(v)) this.fail(key, "an array");
    if (opts.maxLength !== undefined && v.length > opts.maxLength) {
      this.fail(key, `an array of at most ${opts.maxLength} items`);
    }
    return v;
  }

  /** An array of objects, each read by `read` with a reader whose prefix is `key[i]`. */
  objects<T>(key: string, read: (item: Fields) => T, opts: { maxLength?: number } = {}): T[] {
    const items = this.array(key, opts);
    return items.map((item, i) => read(new Fields(item, () => `${join(this.prefix, key)}[${i}]`)));
  }

  /** Refuses any key not in `known`: a misspelt field is an error, not ignored. */
  onlyKeys(known: readonly string[]): void {
    for (const key in this.raw) {
      if (!known.includes(key)) {
        throw new ShapeError(join(this.prefix, key), "unknown field");
      }
    }
  }
}
