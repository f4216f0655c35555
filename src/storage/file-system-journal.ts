// Whether a directory is on a file system that the ext4 driver runs without
// a journal, so that abs-master can say so at startup of its jobs directory.
//
// The jobs directory counts on a replaced file surviving a crash of the
// machine: temp file, fsync, rename, fsync of the directory. ext4 made
// without a journal (`mkfs.ext4 -O ^has_journal`, found on some VM images and
// flash storage; also ext2, and ext4 mounted with `noload`) does not order
// its metadata writes: the replaced file's freed inode can reach the disk
// before the directory block that no longer names it, and after a power loss
// e2fsck then drops the name, so a job file being replaced at that moment is
// lost. Creating files there also costs more the more files were replaced
// recently: without a journal, ext4's inode allocator passes over each inode
// freed in the last 60 s (360 s while its inode table block is unwritten),
// checking each one under the directory's lock, up to a block group's worth.
// The master replaces a file per job at least once, so this is what limits
// its dispatch rate there (see the dispatch benchmark's fileSystem field);
// unnamed-files.ts keeps that search out of the directory's lock.
//
// (The slave's state directory is not checked: it never replaces a file, it
// writes records under new names and removes them.)
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
 * The startup warning for a jobs directory on ext4 without a journal, or
 * null. `sysfs` is only named in it, as where the finding comes from.
 */
export function noJournalWarning(
  jobsDir: string,
  state: JournalState,
  sysfs = "/sys",
): string | null {
  if (state.kind !== "none") return null;
  const evidence = path.join(sysfs, "fs", "ext4", state.device, "journal_task");
  return (
    `jobs directory ${jobsDir} (jobs_dir) is on ext4 without a journal (${evidence}: <none>): ` +
    "after a power loss or an OS crash, a job file that was being replaced can be lost, " +
    "and creating files there costs more the more files were replaced in the last minutes; " +
    "move jobs_dir to a file system that journals its metadata, such as ext4 with its journal or XFS"
  );
}

/** Logs the warning above if `jobsDir` is on ext4 without a journal; called once at startup. */
export function warnIfNoJournal(
  logger: Pick<Logger, "warn">,
  jobsDir: string,
  sysfs = "/sys",
): void {
  const warning = noJournalWarning(jobsDir, journalOf(jobsDir, sysfs), sysfs);
  if (warning !== null) logger.warn(warning);
}
