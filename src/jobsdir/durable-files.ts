// Atomic, durable replacement of files in one directory, many at a time.
//
// For each file: write a temp file in the same directory, fsync it, rename it
// over the real name. Then one fsync of the directory for the whole group, so
// N files cost N file fsyncs and 1 directory fsync instead of N of each: this
// is how the jobs directory batches the fsyncs of many jobs changing at once.
// (storage/durable-file.ts is the same for one file, and holds fsyncDir.)
// A reader sees either the old or the new content of a file, never a mix, and
// once commitFiles resolves for a file, its new content survives a crash.

import path from "node:path";
import { JobsDirIoError, describeError } from "../errors.js";
import { TEMP_PREFIX } from "./layout.js";
import { tempNameFor } from "../storage/durable-file.js";
import type { FsOps } from "../storage/fs-ops.js";

export interface FileWrite {
  /** Name within the directory (no slashes). */
  name: string;
  data: string;
  /** Depends on the gate file of the same commit (see commitFiles). */
  gated?: boolean;
  /** Depends on the commit's `beforeRenames` step (see publishFiles). */
  journaled?: boolean;
}

/**
 * A step of a commit between the gate's rename and the other files'
 * (publishFiles): the jobs directory writes the records of the admin
 * requests the commit carries there. Told how the gate went; answers null,
 * or the error that abandons the journaled writes.
 */
export type BeforeRenames = (gate: {
  renamed: boolean;
  error: JobsDirIoError | null;
}) => Promise<JobsDirIoError | null>;

function tempName(name: string): string {
  return tempNameFor(TEMP_PREFIX, name);
}

/** Temp files written and fsynced, waiting to be renamed into place (see publishFiles). */
export interface PreparedFiles {
  dir: string;
  gate: { write: FileWrite; temp: string; error: JobsDirIoError | null } | undefined;
  writes: { write: FileWrite; temp: string; error: JobsDirIoError | null }[];
}

export interface CommitOutcome {
  /** null when the gate (if any) is durable in place, or was covered (see publishFiles). */
  gate: JobsDirIoError | null;
  /** True when the gate was renamed into place (even if the directory fsync then failed). */
  gateRenamed: boolean;
  /** Per write, in order: null when durable in place, else what stopped it. */
  writes: (JobsDirIoError | null)[];
  /** What the beforeRenames step answered (null without one). */
  journal: JobsDirIoError | null;
}

/**
 * Phase 1 of a commit: every temp file written and fsynced, in parallel.
 * Nothing is visible under a real name yet.
 */
export async function prepareFiles(
  fs: FsOps,
  dir: string,
  writes: readonly FileWrite[],
  gate?: FileWrite,
): Promise<PreparedFiles> {
  const writeTemp = async (w: FileWrite) => {
    const temp = path.join(dir, tempName(w.name));
    try {
      await fs.writeSynced(temp, w.data);
      return { write: w, temp, error: null };
    } catch (err) {
      await fs.unlink(temp).catch(() => undefined);
      const target = path.join(dir, w.name);
      const error = new JobsDirIoError(
        `cannot write ${target}: ${describeError(err)}`,
        target,
        err,
      );
      return { write: w, temp, error };
    }
  };
  const [gateTemp, writeTemps] = await Promise.all([
    gate === undefined ? undefined : writeTemp(gate),
    Promise.all(writes.map(writeTemp)),
  ]);
  return { dir, gate: gateTemp, writes: writeTemps };
}

/**
 * Phase 2 of a commit: the gate renamed into place first, then the other
 * files, then one fsync of the directory for all of them. A gated write
 * whose gate failed is abandoned and fails with the gate's error. A failed
 * directory fsync fails everything, since nothing is then known durable.
 *
 * `gateCovered`: what the gate would say is already in place (a later
 * commit published a higher serial first). The gate's temp file is then
 * removed, not renamed over what covers it, and the gated writes go on.
 *
 * `beforeRenames`, when given, runs after the gate and before any other
 * rename; if it fails, the journaled writes are abandoned with its error.
 */
export async function publishFiles(
  fs: FsOps,
  prepared: PreparedFiles,
  gateCovered = false,
  beforeRenames?: BeforeRenames,
): Promise<CommitOutcome> {
  const { dir } = prepared;
  const rename = async (w: FileWrite, temp: string): Promise<JobsDirIoError | null> => {
    const target = path.join(dir, w.name);
    try {
      await fs.rename(temp, target);
      return null;
    } catch (err) {
      await fs.unlink(temp).catch(() => undefined);
      return new JobsDirIoError(`cannot rename into ${target}: ${describeError(err)}`, target, err);
    }
  };
  const g = prepared.gate;
  let gate: JobsDirIoError | null = null;
  let gateRenamed = false;
  if (g !== undefined && gateCovered) {
    if (g.error === null) await fs.unlink(g.temp).catch(() => undefined);
  } else if (g !== undefined) {
    gate = g.error ?? (await rename(g.write, g.temp));
    gateRenamed = g.error === null && gate === null;
  }
  const journal =
    beforeRenames === undefined ? null : await beforeRenames({ renamed: gateRenamed, error: gate });
  const writes = await Promise.all(
    prepared.writes.map(async ({ write, temp, error }): Promise<JobsDirIoError | null> => {
      if (error !== null) return error;
      const abandonedBy =
        write.gated === true && gate !== null
          ? gate
          : write.journaled === true && journal !== null
            ? journal
            : null;
      if (abandonedBy !== null) {
        await fs.unlink(temp).catch(() => undefined);
        return abandonedBy;
      }
      return rename(write, temp);
    }),
  );
  try {
    await fs.fsyncDir(dir);
  } catch (err) {
    const failure = new JobsDirIoError(
      `cannot fsync directory ${dir}: ${describeError(err)}`,
      dir,
      err,
    );
    return { gate: failure, gateRenamed, writes: writes.map(() => failure), journal };
  }
  return { gate, gateRenamed, writes, journal };
}

/** Both phases at once: every file of `writes` atomically, one directory fsync. */
export async function commitFiles(
  fs: FsOps,
  dir: string,
  writes: readonly FileWrite[],
  gate?: FileWrite,
): Promise<CommitOutcome> {
  return publishFiles(fs, await prepareFiles(fs, dir, writes, gate));
}

/** One file, atomically and durably; throws JobsDirIoError on failure. */
export async function commitFile(
  fs: FsOps,
  dir: string,
  name: string,
  data: string,
): Promise<void> {
  const { writes } = await commitFiles(fs, dir, [{ name, data }]);
  const outcome = writes[0];
  if (outcome !== null) throw outcome;
}
