// The exclusive lock of a daemon's directory: at most one master uses a jobs
// directory, at most one slave a state directory.
//
// Node has no flock(), so the lock is a file created atomically with link(2)
// (which fails with EEXIST when the lock exists) holding the holder's pid,
// host, boot id and process start time. A second daemon fails at once with
// the holder's pid. A lock left by a daemon that died is stale when its
// process is gone, the machine has rebooted since, or its pid now belongs to
// a process that started at another time; a stale lock is moved aside and
// taken. A lock from another host cannot be checked from here and is never
// taken: the admin removes it by hand, as the error message says.

import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type AbsError, type ErrorContext, describeError } from "../errors.js";
import { type FsOps, hasCode } from "./fs-ops.js";

export interface LockOwner {
  pid: number;
  host: string;
  /** Linux boot id; null where unknown. */
  bootId: string | null;
  /** Process start time in clock ticks since boot (Linux /proc/PID/stat); null where unknown. */
  startTime: string | null;
  /** When the lock was taken, ms since the epoch. */
  since: number;
}

/** How the lock finds out about processes; tests pass their own. */
export interface ProcessProbe {
  hostname(): string;
  bootId(): string | null;
  /** The start time of `pid`, "" when the process exists but its start time is unknown, null when it does not exist. */
  startTimeOf(pid: number): string | null;
}

export const linuxProcessProbe: ProcessProbe = {
  hostname: () => os.hostname(),
  bootId() {
    try {
      return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    } catch {
      return null;
    }
  },
  startTimeOf(pid) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // Field 22; the command name (field 2) is in parentheses and may hold spaces.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return fields[19] ?? "";
    } catch {
      try {
        process.kill(pid, 0);
        return "";
      } catch (err) {
        return hasCode(err, "EPERM") ? "" : null;
      }
    }
  },
};

/** What a kind of lock is called in messages, its file names and the errors it throws. */
export interface LockKind {
  /** The daemon that holds it: "abs-master". */
  holder: string;
  /** The directory it guards: "jobs directory". */
  what: string;
  /** Name of the lock file in the directory. */
  file: string;
  /** Prefix of temp files in the directory (removed by the directory's owner). */
  tempPrefix: string;
  /** Thrown when another daemon holds the lock. */
  locked(message: string, context: ErrorContext): AbsError;
  /** Thrown when the lock file cannot be read or written. */
  io(message: string, file: string, cause: unknown): AbsError;
}

export class DirLock {
  private constructor(
    private readonly fs: FsOps,
    private readonly kind: LockKind,
    private readonly file: string,
    readonly owner: LockOwner,
  ) {}

  /**
   * Takes the lock of `dir` or throws `kind.locked` naming the holder.
   * `onStale` is told about a stale lock that was taken over.
   */
  static async acquire(
    fs: FsOps,
    dir: string,
    kind: LockKind,
    probe: ProcessProbe = linuxProcessProbe,
    onStale: (previous: LockOwner | null) => void = () => undefined,
    now: number = Date.now(),
  ): Promise<DirLock> {
    const file = path.join(dir, kind.file);
    const owner: LockOwner = {
      pid: process.pid,
      host: probe.hostname(),
      bootId: probe.bootId(),
      startTime: probe.startTimeOf(process.pid),
      since: now,
    };
    const temp = path.join(dir, `${kind.tempPrefix}lock-${process.pid}-${now}`);
    try {
      await fs.writeSynced(temp, JSON.stringify(owner) + "\n");
    } catch (err) {
      throw kind.io(`cannot create a lock in ${dir}: ${describeError(err)}`, dir, err);
    }
    try {
      // Two rounds: a stale lock is moved aside in the first, taken in the second.
      for (let round = 0; round < 3; round++) {
        try {
          await fs.link(temp, file);
          await fs.fsyncDir(dir);
          return new DirLock(fs, kind, file, owner);
        } catch (err) {
          if (!hasCode(err, "EEXIST")) {
            throw kind.io(`cannot create ${file}: ${describeError(err)}`, file, err);
          }
        }
        const holder = await readOwner(fs, kind, file);
        if (holder === "gone") continue;
        if (holder === "unreadable") {
          throw kind.locked(
            `${file} exists but does not name a process; if no ${kind.holder} uses ${dir}, remove ${file}`,
            { file },
          );
        }
        const verdict = judge(holder, owner, probe);
        if (verdict !== "stale") {
          throw kind.locked(
            `${kind.what} ${dir} is locked by ${kind.holder} pid ${holder.pid} on ${holder.host}` +
              ` since ${new Date(holder.since).toISOString()}` +
              (verdict === "foreign-host"
                ? `; if that ${kind.holder} is gone, remove ${file}`
                : ""),
            { file, pid: holder.pid },
          );
        }
        // Move the stale lock aside rather than unlinking it by name, so that a
        // lock another starting master has just taken is not the one removed.
        const aside = path.join(dir, `${kind.tempPrefix}stale-lock-${process.pid}-${round}`);
        try {
          await fs.rename(file, aside);
          await fs.unlink(aside);
        } catch (err) {
          if (!hasCode(err, "ENOENT")) {
            throw kind.io(`cannot remove stale ${file}: ${describeError(err)}`, file, err);
          }
        }
        onStale(holder);
      }
      throw kind.locked(`cannot take ${file}: another ${kind.holder} keeps taking it`, { file });
    } finally {
      await fs.unlink(temp).catch(() => undefined);
    }
  }

  /** Releases the lock if it is still ours. */
  async release(): Promise<void> {
    const holder = await readOwner(this.fs, this.kind, this.file);
    if (
      typeof holder === "string" ||
      holder.pid !== this.owner.pid ||
      holder.since !== this.owner.since
    ) {
      return;
    }
    await this.fs.unlink(this.file);
    await this.fs.fsyncDir(path.dirname(this.file));
  }
}

async function readOwner(
  fs: FsOps,
  kind: LockKind,
  file: string,
): Promise<LockOwner | "gone" | "unreadable"> {
  let text: string;
  try {
    text = await fs.readFile(file);
  } catch (err) {
    if (hasCode(err, "ENOENT")) return "gone";
    throw kind.io(`cannot read ${file}: ${describeError(err)}`, file, err);
  }
  try {
    const v = JSON.parse(text) as Partial<LockOwner>;
    if (typeof v.pid !== "number" || typeof v.host !== "string" || typeof v.since !== "number") {
      return "unreadable";
    }
    return {
      pid: v.pid,
      host: v.host,
      bootId: typeof v.bootId === "string" ? v.bootId : null,
      startTime: typeof v.startTime === "string" ? v.startTime : null,
      since: v.since,
    };
  } catch {
    return "unreadable";
  }
}

function judge(
  holder: LockOwner,
  self: LockOwner,
  probe: ProcessProbe,
): "live" | "stale" | "foreign-host" {
  if (holder.host !== self.host) return "foreign-host";
  if (holder.bootId !== null && self.bootId !== null && holder.bootId !== self.bootId)
    return "stale";
  const startTime = probe.startTimeOf(holder.pid);
  if (startTime === null) return "stale";
  if (
    holder.startTime !== null &&
    holder.startTime !== "" &&
    startTime !== "" &&
    startTime !== holder.startTime
  ) {
    return "stale";
  }
  return "live";
}
