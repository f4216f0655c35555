// The slave's state directory: the jobs this slave runs and the results its
// master has not acknowledged, one small JSON file each (state-records.ts),
// so that both survive a crash of the slave or of its host.
//
//   lock                         one abs-slave per state directory (storage/dir-lock.ts)
//   run-<id>-<attempt>.json      a job this slave runs; written before `started` is sent
//   result-<id>-<attempt>.json   a finished attempt; written as `result` is sent,
//                                removed when the master acknowledges it
//   quarantine/                  records that could not be read, moved aside at startup
//   .tmp-*                       writes under way; removed at startup
//
// Every write is atomic and durable: temp file, fsync, rename, fsync of the
// directory. A result is written before its run record is removed, so a
// crash between the two leaves both, and the result wins at the next start.

import { mkdir } from "node:fs/promises";
import path from "node:path";
import { AbsError, type ErrorContext, describeError } from "../errors.js";
import { ShapeError } from "../json-shape.js";
import type { Logger } from "../log.js";
import type { JobResultReport } from "../protocol/slave-messages.js";
import {
  DirLock,
  type LockKind,
  type ProcessProbe,
  linuxProcessProbe,
} from "../storage/dir-lock.js";
import { replaceFile } from "../storage/durable-file.js";
import { type FsOps, hasCode, namedFsOps } from "../storage/fs-ops.js";
import {
  type RunRecord,
  parseResultRecord,
  parseRunRecord,
  recordKindOf,
  resultFileName,
  runFileName,
  serializeResultRecord,
  serializeRunRecord,
} from "./state-records.js";

export const STATE_LOCK_FILE = "lock";
export const STATE_TEMP_PREFIX = ".tmp-";
export const STATE_QUARANTINE_DIR = "quarantine";
/** The pid file of the slave, for init scripts; the lock is what keeps a second slave out. */
export const SLAVE_PID_FILE = "abs-slave.pid";

function stateDirError(message: string, file: string, cause?: unknown): AbsError {
  return new AbsError("STATE_DIR_IO", message, { cause, context: { file } });
}

const STATE_DIR_LOCK: LockKind = {
  holder: "abs-slave",
  what: "state directory",
  file: STATE_LOCK_FILE,
  tempPrefix: STATE_TEMP_PREFIX,
  locked: (message: string, context: ErrorContext) =>
    new AbsError("STATE_DIR_LOCKED", message, { context }),
  io: stateDirError,
};

/** What the directory held at startup. */
export interface StateDirContents {
  /** Jobs that were running when the previous abs-slave stopped (no result of theirs). */
  running: RunRecord[];
  /** Results the master had not acknowledged. */
  results: JobResultReport[];
  /** Files moved to quarantine/, with why. */
  quarantined: { file: string; why: string }[];
}

export interface StateDirOptions {
  fs?: FsOps;
  logger: Logger;
  probe?: ProcessProbe;
}

export class StateDir {
  private constructor(
    readonly dir: string,
    private readonly fs: FsOps,
    private readonly lock: DirLock,
  ) {}

  /**
   * Creates the directory (mode 0700) if needed, takes its lock and reads
   * its records. Throws STATE_DIR_LOCKED when another abs-slave uses it,
   * STATE_DIR_IO when it cannot be read or written.
   */
  static async open(
    dir: string,
    opts: StateDirOptions,
  ): Promise<{ stateDir: StateDir; contents: StateDirContents }> {
    const fs = opts.fs ?? namedFsOps;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw stateDirError(
        `cannot create the state directory ${dir}: ${describeError(err)}`,
        dir,
        err,
      );
    }
    const lock = await DirLock.acquire(
      fs,
      dir,
      STATE_DIR_LOCK,
      opts.probe ?? linuxProcessProbe,
      (prev) =>
        opts.logger.warn(`took over the stale lock of abs-slave pid ${prev?.pid ?? "?"} in ${dir}`),
    );
    const stateDir = new StateDir(dir, fs, lock);
    try {
      return { stateDir, contents: await stateDir.load(opts.logger) };
    } catch (err) {
      await lock.release().catch(() => undefined);
      throw err;
    }
  }

  private async load(logger: Logger): Promise<StateDirContents> {
    let entries: { name: string; isFile: boolean }[];
    try {
      entries = await this.fs.readdir(this.dir);
    } catch (err) {
      throw stateDirError(
        `cannot read the state directory ${this.dir}: ${describeError(err)}`,
        this.dir,
        err,
      );
    }
    const runs = new Map<string, RunRecord>();
    const results = new Map<string, JobResultReport>();
    const quarantined: { file: string; why: string }[] = [];
    for (const e of entries) {
      const file = path.join(this.dir, e.name);
      if (e.name.startsWith(STATE_TEMP_PREFIX)) {
        await this.fs.unlink(file).catch(() => undefined);
        continue;
      }
      const kind = recordKindOf(e.name);
      if (kind === null || !e.isFile) continue; // lock, pid file, quarantine/, an admin's notes
      const key = `${kind.jobId}/${kind.attempt}`;
      try {
        const text = await this.fs.readFile(file);
        if (kind.kind === "run") {
          const r = parseRunRecord(text);
          checkNamed(r, kind);
          runs.set(key, r);
        } else {
          const r = parseResultRecord(text);
          checkNamed(r, kind);
          results.set(key, r);
        }
      } catch (err) {
        if (!(err instanceof ShapeError)) {
          throw stateDirError(`cannot read ${file}: ${describeError(err)}`, file, err);
        }
        const why = err.message;
        await this.quarantine(e.name);
        logger.error(`state directory: ${file}: ${why}; moved to ${STATE_QUARANTINE_DIR}/`, {
          job: kind.jobId,
        });
        quarantined.push({ file, why });
      }
    }
    // A run record beside its result: the slave stopped between writing the
    // result and removing the record. The result is what happened.
    for (const key of results.keys()) {
      const run = runs.get(key);
      if (run !== undefined) {
        runs.delete(key);
        await this.removeRun(run.jobId, run.attempt);
      }
    }
    const byJob = (a: { jobId: number; attempt: number }, b: { jobId: number; attempt: number }) =>
      a.jobId - b.jobId || a.attempt - b.attempt;
    return {
      running: [...runs.values()].sort(byJob),
      results: [...results.values()].sort(byJob),
      quarantined,
    };
  }

  /** Records a job this slave runs, durably. */
  writeRun(r: RunRecord): Promise<void> {
    return this.write(runFileName(r.jobId, r.attempt), serializeRunRecord(r));
  }

  /** Records a finished attempt durably, then forgets that it runs. */
  async writeResult(r: JobResultReport): Promise<void> {
    await this.write(resultFileName(r.jobId, r.attempt), serializeResultRecord(r));
    await this.removeRun(r.jobId, r.attempt);
  }

  /** Forgets an acknowledged result. */
  removeResult(jobId: number, attempt: number): Promise<void> {
    // No fsync of the directory: a removal lost in a crash only makes the
    // slave report the result again, which the master acknowledges again
    // without a second change.
    return this.remove(resultFileName(jobId, attempt));
  }

  /** Forgets a run record (its job is over and its result is elsewhere, or it never started). */
  removeRun(jobId: number, attempt: number): Promise<void> {
    return this.remove(runFileName(jobId, attempt));
  }

  async close(): Promise<void> {
    await this.lock.release().catch(() => undefined);
  }

  private async write(name: string, data: string): Promise<void> {
    const file = path.join(this.dir, name);
    try {
      await replaceFile(this.fs, file, data, STATE_TEMP_PREFIX);
    } catch (err) {
      throw stateDirError(`cannot write ${file}: ${describeError(err)}`, file, err);
    }
  }

  private async remove(name: string): Promise<void> {
    const file = path.join(this.dir, name);
    try {
      await this.fs.unlink(file);
    } catch (err) {
      if (!hasCode(err, "ENOENT")) {
        throw stateDirError(`cannot remove ${file}: ${describeError(err)}`, file, err);
      }
    }
  }

  private async quarantine(name: string): Promise<void> {
    const qdir = path.join(this.dir, STATE_QUARANTINE_DIR);
    const from = path.join(this.dir, name);
    try {
      await mkdir(qdir, { recursive: true, mode: 0o700 });
      await this.fs.rename(from, path.join(qdir, `${name}.${Date.now()}`));
      await this.fs.fsyncDir(this.dir);
    } catch (err) {
      throw stateDirError(`cannot move ${from} to ${qdir}: ${describeError(err)}`, from, err);
    }
  }
}

/** The record must be the attempt its file name says. */
function checkNamed(
  r: { jobId: number; attempt: number },
  named: { jobId: number; attempt: number },
): void {
  if (r.jobId !== named.jobId || r.attempt !== named.attempt) {
    throw new ShapeError(
      "record",
      `holds job ${r.jobId} attempt ${r.attempt}, but its name says job ${named.jobId} attempt ${named.attempt}`,
    );
  }
}
