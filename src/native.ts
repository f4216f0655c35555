// Our C modules (native/*.c, built by node-gyp with `npm run build:native`):
// loading one, and turning an errno it reports into the error Node's own
// call would have thrown. Each has a TypeScript fallback, so a module that is
// not built (no compiler at install time) makes ABS slower, never wrong; the
// daemon that uses one says at startup which it uses.

import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { getSystemErrorMap } from "node:util";
import { describeError } from "./errors.js";

export interface LoadedFunction<F> {
  /** The function, or null when the module is not built or did not load. */
  fn: F | null;
  /** The .node file it was loaded from, or looked for. */
  file: string;
  /** Why it did not load (one line), or null. */
  error: string | null;
}

/** Function `name` of native/build/Release/`module`.node. */
export function loadNativeFunction<F>(module: string, name: string): LoadedFunction<F> {
  // From dist/src/ up to the package's top, where native/ is.
  const file = fileURLToPath(new URL(`../../native/build/Release/${module}.node`, import.meta.url));
  try {
    const exports = createRequire(import.meta.url)(file) as Record<string, unknown>;
    if (typeof exports[name] !== "function") throw new Error(`it has no ${name}`);
    return { fn: exports[name] as F, file, error: null };
  } catch (err) {
    // A require error goes on with its require stack, a line per module.
    return { fn: null, file, error: describeError(err).split("\n", 1)[0] };
  }
}

/**
 * The error Node throws when `syscall` fails with `errno` (positive) on
 * `path` (and `dest`): same code, errno, syscall, path and message, as in
 * "EACCES: permission denied, lstat '/x'".
 */
export function systemError(
  errno: number,
  syscall: string,
  path: string,
  dest?: string,
): NodeJS.ErrnoException {
  const [code, message] = getSystemErrorMap().get(-errno) ?? [`E${errno}`, "unknown error"];
  const where = dest === undefined ? `'${path}'` : `'${path}' -> '${dest}'`;
  const err: NodeJS.ErrnoException = new Error(`${code}: ${message}, ${syscall} ${where}`);
  err.errno = -errno;
  err.code = code;
  err.syscall = syscall;
  err.path = path;
  if (dest !== undefined) (err as NodeJS.ErrnoException & { dest?: string }).dest = dest;
  return err;
}
