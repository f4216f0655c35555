// Whether a daemon's directory (the master's jobs directory, a slave's state
// directory) is on ext4 without a journal, so that the daemon can say so at
// startup.
//
// Both directories count on a replaced file surviving a crash: temp file,
// fsync, rename, fsync of the directory. ext4 created without a journal
// (`mkfs.ext4 -O ^has_journal`, found on some VM images and flash storage)
// does not order its metadata writes: the old file's freed inode can reach
// the disk before the directory block that no longer names it, and after a
// crash e2fsck then drops the name, so a job file being replaced at that
// moment is lost. It is also slow where files are replaced often: without a
// journal, ext4's inode allocator passes over every inode freed in the last
// 60 s (more while its block is unwritten), checking each one under the
// directory's lock, so each new file costs more than the one before. On the
// VM this project is tested on, the master dispatched 850 to 2,000 jobs/s on
// such a file system, and 2,300 to 2,800 on a journaled ext4 of the same disk.
//
// Linux says which ext4 has no journal: /sys/fs/ext4/<device>/journal_task
// reads "<none>" (the journal thread's pid otherwise). The device is found
// from the directory's st_dev through /sys/dev/block/<major>:<minor>.
// Anything else (another file system, a kernel without that file, no /sys)
// is "unknown", and nothing is said.

import { readFileSync, readlinkSync, statSync } from "node:fs";
import path from "node:path";
import type { Logger } from "../log.js";

export type JournalState =
  { kind: "journaled"; device: string } | { kind: "none"; device: string } | { kind: "unknown" };

/** Major and minor numbers of a Linux st_dev, in glibc's encoding (gnu_dev_major/minor). */
export function deviceNumbers(dev: bigint): { major: number; minor: number } {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n);
  const minor = (dev & 0xffn) | ((dev >> 12n) & 0xffffff00n);
  return { major: Number(major), minor: Number(minor) };
}

/** What /sys/fs/ext4/<device>/journal_task says: "journaled", "none", or null if neither. */
export function parseJournalTask(text: string): "journaled" | "none" | null {
  const value = text.trim();
  if (value === "<none>") return "none";
  return /^\d+$/.test(value) ? "journaled" : null;
}

/**
 * Whether `dir` is on ext4 with or without a journal. `sysfs` is where sysfs
 * is mounted; tests pass a tree of their own. Never throws: whatever cannot
 * be read makes the answer "unknown".
 */
export function journalOf(dir: string, sysfs = "/sys"): JournalState {
  try {
    const { major, minor } = deviceNumbers(statSync(dir, { bigint: true }).dev);
    const device = path.basename(
      readlinkSync(path.join(sysfs, "dev", "block", `${major}:${minor}`)),
    );
    const task = readFileSync(path.join(sysfs, "fs", "ext4", device, "journal_task"), "utf8");
    const kind = parseJournalTask(task);
    return kind === null ? { kind: "unknown" } : { kind, device };
  } catch {
    return { kind: "unknown" };
  }
}

/**
 * The startup warning for a directory on ext4 without a journal, or null.
 * `what` names the directory as the daemon's config does ("jobs directory").
 */
export function noJournalWarning(what: string, dir: string, state: JournalState): string | null {
  if (state.kind !== "none") return null;
  return (
    `${what} ${dir} is on ext4 without a journal (device ${state.device}): ` +
    "a crash while a file there is being replaced can lose it, and creating files there " +
    "slows down while files are being replaced; move it to a journaled file system " +
    "(ext4 with its journal, XFS)"
  );
}

/** Logs the warning above if `dir` is on ext4 without a journal; called once at startup. */
export function warnIfNoJournal(
  logger: Pick<Logger, "warn">,
  what: string,
  dir: string,
  sysfs = "/sys",
): void {
  const warning = noJournalWarning(what, dir, journalOf(dir, sysfs));
  if (warning !== null) logger.warn(warning);
}
