// How the archiver reads file contents. Synchronous calls on purpose: for
// the many small files of a typical tree, a thread-pool round trip per
// open/fstat/read/close costs many times the system calls themselves (the
// figures are in this file's history: git log). Each call blocks the event
// loop for at most one buffer (1 MiB), and the archiver yields at every
// buffer it writes (tar-writer.ts).
// Tests inject a counting wrapper to prove an unchanged file is never re-read.

import { type Stats, closeSync, fstatSync, openSync, readSync } from "node:fs";

/** An open file, read by position. */
export interface ReadableFile {
  stat(): Stats;
  read(buffer: Buffer, offset: number, length: number, position: number): number;
  close(): void;
}

export type FileOpener = (path: string) => ReadableFile;

export const openForReading: FileOpener = (p) => {
  const fd = openSync(p, "r");
  return {
    stat: () => fstatSync(fd),
    read: (buffer, offset, length, position) => readSync(fd, buffer, offset, length, position),
    close: () => closeSync(fd),
  };
};
