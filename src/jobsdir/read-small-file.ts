// Reading one small file with three system calls (open, read, close) into a
// buffer the caller reuses. readFileSync adds an fstat and a buffer per file,
// which at startup, over every job file, is a large share of the reading
// time (the figures are in this file's history: git log).

import { closeSync, constants, openSync, readFileSync, readSync } from "node:fs";

/**
 * The bytes of `file`: a view of `scratch` (valid until the next call with
 * it) when the file is smaller than `scratch`, else a buffer of its own. A
 * read of a regular file returns less than asked only at its end, so a
 * short read is the whole file.
 */
export function readSmallFile(file: string, scratch: Buffer): Buffer {
  const fd = openSync(file, constants.O_RDONLY);
  try {
    const n = readSync(fd, scratch, 0, scratch.length, 0);
    if (n < scratch.length) return scratch.subarray(0, n);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}
