// The temp files of the jobs directory's atomic writes (realFsOps's
// writeSynced), on ext4 without a journal, created unnamed: open(2) with
// O_TMPFILE in the file's directory, write, linkat(2) to the temp name
// (native/link-fd.c), fsync. The caller then renames the temp file into
// place and fsyncs the directory, as DESIGN.md says; what changes is only how
// the temp file comes to exist.
//
// Why: creating a named file holds its directory's lock for the whole inode
// allocation. On ext4 without a journal, that allocation passes over every
// recently freed inode (file-system-journal.ts), so under churn the master's
// I/O threads queue on the jobs directory's lock. O_TMPFILE allocates the
// inode without that lock; the link holds it only briefly. Elsewhere the
// allocation is quick and named files stay: nothing to gain, and on some file
// systems (ZFS) linking an unnamed file waits for a whole transaction group.
//
// The fsync comes after the link, not before: it is what makes the link
// count durable. An fsync before the link would leave the inode on disk with
// no links, under a name that only the directory's fsync wrote, and after a
// crash that inode reads as deleted (btrfs even skips such an fsync).
//
// Named temp files ("wx") remain the fallback: when the C module is not
// built, /proc/self/fd is missing, or the unnamed create or the link fails
// for a reason a named file might not have (EOPNOTSUPP, EISDIR before Linux
// 3.11, EACCES or EPERM from a security module, ...). Such a directory is
// remembered, and its files are named from the start.

import { constants, existsSync } from "node:fs";
import { open } from "node:fs/promises";
import path from "node:path";
import { errorCode } from "../errors.js";
import { loadNativeFunction, systemError } from "../native.js";
import { journalOf } from "./file-system-journal.js";

/** linkFd(fd, path) from native/link-fd.c, with the O_TMPFILE flag of this machine. */
export type LinkFd = ((fd: number, file: string) => Promise<void>) & { O_TMPFILE: number };

const loaded = loadNativeFunction<LinkFd>("link_fd", "linkFd");

/** The native linkFd where it loaded and /proc/self/fd (which it links through) exists; else null. */
export const linkFdNative: LinkFd | null =
  loaded.fn !== null && existsSync("/proc/self/fd") ? loaded.fn : null;

/** How temp files are created in a directory, and why, for the daemon's log. */
export interface TempFiles {
  /** "named, slower": on ext4 without a journal, but the C module is missing. */
  how: "unnamed" | "named" | "named, slower";
  why: string;
}

/** How temp files are created in `dir` (before any refusal; see linkFdFor). */
export function tempFilesIn(dir: string, sysfs = "/sys"): TempFiles {
  if (journalOf(dir, sysfs).kind !== "none") {
    return { how: "named", why: "temp files are created named (not ext4 without a journal)" };
  }
  if (linkFdNative !== null) {
    return {
      how: "unnamed",
      why: `temp files are created unnamed (O_TMPFILE), outside the directory's lock (${loaded.file})`,
    };
  }
  const missing =
    loaded.fn === null
      ? `${loaded.file} did not load (${loaded.error}); \`npm run build:native\` builds it`
      : "/proc/self/fd is missing";
  return {
    how: "named, slower",
    why: `temp files are created named, which holds the directory's lock longer on ext4 without a journal: ${missing}`,
  };
}

/** Per directory: the linkFd to create its temp files with, or null for named ones. */
const linkFdByDir = new Map<string, LinkFd | null>();

/**
 * The linkFd for temp files in `dir`: the native one on ext4 without a
 * journal, until the directory refuses an unnamed file; else null. Found
 * once per directory.
 */
export function linkFdFor(dir: string, sysfs = "/sys"): LinkFd | null {
  let linkFd = linkFdByDir.get(dir);
  if (linkFd === undefined) {
    linkFd = tempFilesIn(dir, sysfs).how === "unnamed" ? linkFdNative : null;
    linkFdByDir.set(dir, linkFd);
  }
  return linkFd;
}

/**
 * Errors of the unnamed create or the link that a named file would meet
 * too (or that say nothing of the directory): thrown, not a reason to name
 * the directory's files from now on.
 */
const SAME_FOR_NAMED: ReadonlySet<string | undefined> = new Set([
  "EEXIST",
  "ENOENT",
  "ENOTDIR",
  "ENOSPC",
  "EDQUOT",
  "EIO",
  "EROFS",
  "EMFILE",
  "ENFILE",
  "ENOMEM",
  "EMLINK",
]);

/**
 * Creates `file` (which must not exist) holding `data`, fsynced: unnamed and
 * linked with `linkFd` once written, or named from the start when `linkFd`
 * is null. When the unnamed create or the link fails for a reason of its
 * own, the file is written named instead, and the directory is remembered
 * (linkFdFor then answers null for it).
 */
export async function writeSyncedFile(
  file: string,
  data: string,
  linkFd: LinkFd | null,
): Promise<void> {
  if (linkFd !== null) {
    try {
      await writeUnnamed(file, data, linkFd);
      return;
    } catch (err) {
      if (SAME_FOR_NAMED.has(errorCode(err))) throw err;
      linkFdByDir.set(path.dirname(file), null);
    }
  }
  const handle = await open(file, "wx", 0o640);
  try {
    await handle.writeFile(data, "utf8");
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeUnnamed(file: string, data: string, linkFd: LinkFd): Promise<void> {
  const handle = await open(path.dirname(file), linkFd.O_TMPFILE | constants.O_WRONLY, 0o640);
  try {
    await handle.writeFile(data, "utf8");
    await linkFd(handle.fd, file).catch((errno: number) => {
      throw systemError(errno, "link", `/proc/self/fd/${handle.fd}`, file);
    });
    // After the link: see the header.
    await handle.sync();
  } finally {
    await handle.close();
  }
}
