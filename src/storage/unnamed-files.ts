// The temp files of the daemons' atomic writes (FsOps.writeSynced), created
// unnamed: open(2) with O_TMPFILE in the file's directory, write, linkat(2)
// to the temp name (native/link-fd.c), fsync. The caller then renames the
// temp file into place and fsyncs the directory, as DESIGN.md says; what
// changes is only how the temp file comes to exist.
//
// Why: creating a named file holds its directory's lock for the whole inode
// allocation. On ext4 without a journal that allocation passes over every
// recently freed inode (file-system-journal.ts), so under churn the master's
// I/O threads queue on the jobs directory's lock. O_TMPFILE allocates the
// inode without that lock; the link holds it only briefly.
//
// The fsync comes after the link, not before: it is what makes the link
// count durable. On ext4 without a journal, an fsync before the link would
// leave the file's inode on disk with no links, under a name that only the
// directory's fsync wrote, and after a crash that inode reads as deleted.
//
// Named temp files ("wx") remain the fallback: when the C module is not built,
// /proc/self/fd is missing, or the kernel or file system refuses O_TMPFILE
// (EOPNOTSUPP; EISDIR before Linux 3.11; EINVAL). A directory found without
// it is remembered, and its files are named from the start.

import { constants, existsSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import path from "node:path";
import { loadNativeFunction, systemError } from "../native.js";

/** linkFd(fd, path) from native/link-fd.c, with the O_TMPFILE flag of this machine. */
export type LinkFd = ((fd: number, file: string) => Promise<void>) & { O_TMPFILE: number };

const loaded = loadNativeFunction<LinkFd>("link_fd", "linkFd");

/** The native linkFd where it loaded and /proc/self/fd (which it links through) exists; else null. */
export const linkFdNative: LinkFd | null =
  loaded.fn !== null && existsSync("/proc/self/fd") ? loaded.fn : null;

/** How new files are written, and why, for the daemon's log at startup. */
export const unnamedFilesUsed: string =
  linkFdNative !== null
    ? `temp files are created unnamed (O_TMPFILE), outside the directory's lock (${loaded.file})`
    : loaded.fn === null
      ? `temp files are written named, which holds the directory's lock longer: ${loaded.file} did not load (${loaded.error}); \`npm run build:native\` builds it`
      : "temp files are written named: /proc/self/fd is missing";

/** Directories where O_TMPFILE was refused. */
const refusedIn = new Set<string>();

/** Codes with which open(2) says that it cannot make an unnamed file here. */
const NO_TMPFILE: ReadonlySet<string | undefined> = new Set(["EOPNOTSUPP", "EISDIR", "EINVAL"]);

/**
 * Creates `file` (which must not exist) holding `data`, fsynced: unnamed,
 * linked with `linkFd` once written, or named from the start when `linkFd`
 * is null or the directory refuses O_TMPFILE.
 */
export async function writeSyncedFile(
  file: string,
  data: string,
  linkFd: LinkFd | null,
): Promise<void> {
  const dir = path.dirname(file);
  const unnamed = linkFd === null || refusedIn.has(dir) ? null : await openUnnamed(dir, linkFd);
  const handle = unnamed ?? (await open(file, "wx", 0o640));
  try {
    await handle.writeFile(data, "utf8");
    if (unnamed !== null && linkFd !== null) {
      await linkFd(unnamed.fd, file).catch((errno: number) => {
        throw systemError(errno, "link", `/proc/self/fd/${unnamed.fd}`, file);
      });
    }
    // After the link: see the header.
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** An unnamed file in `dir`, or null (remembered) when `dir` refuses O_TMPFILE. */
async function openUnnamed(dir: string, linkFd: LinkFd): Promise<FileHandle | null> {
  try {
    return await open(dir, linkFd.O_TMPFILE | constants.O_WRONLY, 0o640);
  } catch (err) {
    if (!NO_TMPFILE.has((err as NodeJS.ErrnoException).code)) throw err;
    refusedIn.add(dir);
    return null;
  }
}
