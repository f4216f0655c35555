// Durable replacement of one file, and the fsync of a directory: the one
// place these steps are written (DESIGN.md, "Durability").
//
// Replacing a file: write a temp file in the same directory, fsync it,
// rename it over the real name, fsync the directory. A reader sees the old
// content or the new, never a mix; once replaceFile resolves, the new
// content survives a crash of the process or of the host, because the
// rename is only durable once the directory holding it is fsynced.
// jobsdir/durable-files.ts does the same for many files at once, with one
// directory fsync for the group.

import path from "node:path";
import type { FsOps } from "./fs-ops.js";

// fsync-dir.ts holds fsyncDir so that fs-ops.ts, which this imports types
// from, can use it without an import cycle.
export { fsyncDir } from "./fsync-dir.js";

let tempCounter = 0;

/**
 * A fresh temp file name for `name`: `<prefix><name>-<pid>-<n>`, unique
 * within this process, and told apart from other processes' by the pid.
 */
export function tempNameFor(prefix: string, name: string): string {
  tempCounter += 1;
  return `${prefix}${name}-${process.pid}-${tempCounter}`;
}

/** The steps replaceFile takes, a part of FsOps. */
export type ReplaceFs = Pick<FsOps, "writeSynced" | "rename" | "unlink" | "fsyncDir">;

/**
 * Replaces `file` with `data` atomically and durably (see the header). The
 * temp file is named `tempPrefix...` in the same directory, and removed on
 * failure. Throws what failed, as it came: the caller wraps it in its own
 * typed error, which names the file.
 */
export async function replaceFile(
  fs: ReplaceFs,
  file: string,
  data: string,
  tempPrefix: string,
): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, tempNameFor(tempPrefix, path.basename(file)));
  try {
    await fs.writeSynced(temp, data);
    await fs.rename(temp, file);
    await fs.fsyncDir(dir);
  } catch (err) {
    await fs.unlink(temp).catch(() => undefined);
    throw err;
  }
}
