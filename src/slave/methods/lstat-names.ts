// The lstat of every name in one directory, for the scan (scan.ts).
//
// Two implementations give the same numbers, errors included:
// - native/lstat-names.c, built by `npm run build:native` (node-gyp): the
//   directory opened once, an fstatat per name, no object per name. On the
//   benchmark's tree it takes the scan from about 24 ms to 15 ms in-process,
//   and an incremental backup with nothing changed, end to end, from about
//   58 ms to 42;
// - lstatSync per full path, when the module is not built or does not load
//   (no compiler at install time). abs-slave logs which one it uses.

import { lstatSync } from "node:fs";
import os from "node:os";
import { loadNativeFunction, systemError } from "../../native.js";
import { errorCode } from "../../errors.js";

/** Numbers per name in the result, in this order. */
export const LSTAT_FIELDS = 4;
export const LSTAT_MODE = 0;
export const LSTAT_SIZE = 1;
/** mtime in whole milliseconds: Math.floor of Node's mtimeMs. */
export const LSTAT_MTIME = 2;
/** 0 when the lstat succeeded, else its errno (ENOENT, EACCES, ...); the other fields are then 0. */
export const LSTAT_ERRNO = 3;

/** lstat of each of `names` in `dir`, LSTAT_FIELDS numbers per name, in order. */
export type LstatNames = (dir: string, names: readonly string[]) => Float64Array;

/** The lstatSync version: one lstat of the full path per name. */
export const lstatNamesInJs: LstatNames = (dir, names) => {
  const out = new Float64Array(names.length * LSTAT_FIELDS);
  const base = dir.endsWith("/") ? dir : `${dir}/`;
  // An empty dir, or one holding a NUL, names no directory.
  const badDir = dir === "" || dir.includes("\0");
  for (let i = 0; i < names.length; i++) {
    const f = i * LSTAT_FIELDS;
    const name = names[i];
    if (badDir || name === "" || name.includes("/") || name.includes("\0")) {
      out[f + LSTAT_ERRNO] = os.constants.errno.EINVAL;
      continue;
    }
    try {
      const st = lstatSync(base + name);
      out[f + LSTAT_MODE] = st.mode;
      out[f + LSTAT_SIZE] = st.size;
      out[f + LSTAT_MTIME] = Math.floor(st.mtimeMs);
    } catch (err) {
      out[f + LSTAT_ERRNO] = errnoOf(err);
    }
  }
  return out;
};

function errnoOf(err: unknown): number {
  const code = errorCode(err);
  const errno =
    code === undefined ? undefined : (os.constants.errno as Record<string, number>)[code];
  if (errno === undefined) throw err;
  return errno;
}

/**
 * The error lstatSync would have thrown for `errno` at `file`: same code,
 * errno, syscall, path and message ("EACCES: permission denied, lstat '/x'").
 */
export function lstatError(errno: number, file: string): NodeJS.ErrnoException {
  return systemError(errno, "lstat", file);
}

function loadNative(): { impl: LstatNames | null; why: string } {
  const { fn, file, error } = loadNativeFunction<LstatNames>("lstat_names", "lstatNames");
  return fn !== null
    ? { impl: fn, why: `tar scans lstat in C (${file})` }
    : {
        impl: null,
        why: `tar scans use lstatSync, which is slower: ${file} did not load (${error}); \`npm run build:native\` builds it`,
      };
}

const loaded = loadNative();

/** The native version, or null when it is not built or did not load. */
export const lstatNamesNative: LstatNames | null = loaded.impl;

/** What the scan uses: the native version if it loaded, else lstatSync. */
export const lstatNames: LstatNames = lstatNamesNative ?? lstatNamesInJs;

/** Which one `lstatNames` is, and why, for the slave's log at startup. */
export const lstatNamesUsed: string = loaded.why;
