// Atomic, durable replacement of files in one directory, many at a time.
//
// For each file: write a temp file in the same directory, fsync it, rename it
// over the real name. Then one fsync of the directory for the whole group, so
// N files cost N file fsyncs and 1 directory fsync instead of N of each: this
// is how the jobs directory batches the fsyncs of many jobs changing at once.
// A reader sees either the old or the new content of a file, never a mix, and
// once commitFiles resolves for a file, its new content survives a crash.

import path from "node:path";
import { JobsDirIoError, describeError } from "../errors.js";
import { TEMP_PREFIX } from "./layout.js";
import type { FsOps } from "./fs-ops.js";

export interface FileWrite {
  /** Name within the directory (no slashes). */
  name: string;
  data: string;
}

let tempCounter = 0;

function tempName(name: string): string {
  tempCounter += 1;
  return `${TEMP_PREFIX}${name}-${process.pid}-${tempCounter}`;
}

/**
 * Writes every file of `writes` into `dir` atomically, then fsyncs `dir`
 * once. Returns, per write and in order, null on success or the JobsDirIoError
 * that stopped it: one file failing (a full disk, say) does not fail the
 * others, but a failed directory fsync fails them all, since none is then
 * known to be durable.
 */
export async function commitFiles(
  fs: FsOps,
  dir: string,
  writes: readonly FileWrite[],
): Promise<(JobsDirIoError | null)[]> {
  const outcomes = await Promise.all(
    writes.map(async (w): Promise<JobsDirIoError | null> => {
      const temp = path.join(dir, tempName(w.name));
      const target = path.join(dir, w.name);
      try {
        await fs.writeSynced(temp, w.data);
      } catch (err) {
        await fs.unlink(temp).catch(() => undefined);
        return new JobsDirIoError(`cannot write ${target}: ${describeError(err)}`, target, err);
      }
      try {
        await fs.rename(temp, target);
      } catch (err) {
        await fs.unlink(temp).catch(() => undefined);
        return new JobsDirIoError(
          `cannot rename into ${target}: ${describeError(err)}`,
          target,
          err,
        );
      }
      return null;
    }),
  );
  if (outcomes.every((o) => o !== null)) return outcomes;
  try {
    await fs.fsyncDir(dir);
  } catch (err) {
    const failure = new JobsDirIoError(
      `cannot fsync directory ${dir}: ${describeError(err)}`,
      dir,
      err,
    );
    return outcomes.map(() => failure);
  }
  return outcomes;
}

/** One file, atomically and durably; throws JobsDirIoError on failure. */
export async function commitFile(
  fs: FsOps,
  dir: string,
  name: string,
  data: string,
): Promise<void> {
  const [outcome] = await commitFiles(fs, dir, [{ name, data }]);
  if (outcome !== null && outcome !== undefined) throw outcome;
}
