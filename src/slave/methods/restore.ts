// The `restore` method: extracts a chain (the full backup and the
// incrementals after it, found through the manifests' `previous` links) into
// a target directory, applying each incremental's deletions, so the target
// holds the sources as they were at the chosen backup (under their archive
// paths: /home/alice is restored as <target>/home/alice).
//
// Every archive of the chain is verified against its manifest before
// anything is written, and checked again while it is extracted. The
// extraction is done here, not by node-tar's extract, so that each entry is
// checked the same way whatever node-tar does: its path must be a safe
// relative path, and each of its parent directories is lstat'ed inside the
// target and must be a real directory, never a symlink (an archive holding
// `link -> /etc` and then `link/passwd` is refused). Refusals are errors
// (UNSAFE_ENTRY), never silent skips. Files already in the target and not in
// the backup are left alone.

import { constants } from "node:fs";
import { chmod, lchown, lstat, lutimes, mkdir, open, rm, symlink, utimes } from "node:fs/promises";
import path from "node:path";
import type { ReadEntry } from "tar";
import { AbsError } from "../../errors.js";
import type { JsonObject } from "../../json-shape.js";
import { type ManifestEntry, isSafeRelativePath } from "../manifest.js";
import { checkAllowed } from "./allowed-paths.js";
import { ArchiveChecker, entryPath, hashEntry, readArchive } from "./archive-reader.js";
import { type ChainLink, loadChain, resolveManifestPath } from "./backup-set.js";
import { type MethodContext, type MethodResult, throwIfCanceled } from "./method.js";
import { absolute, readParams } from "./params.js";
import { ProgressThrottle } from "./progress.js";
import { verifyArchive } from "./verify.js";

/** The `restore` parameters, as `RestoreMethod` without `kind`. */
export interface RestoreParams {
  /** An archive or its manifest (restore up to it), or a directory (up to its newest backup). */
  source: string;
  /** The directory to extract into; created if missing. */
  target: string;
}

export function readRestoreParams(params: JsonObject): RestoreParams {
  return readParams("restore", params, (f) => ({
    source: absolute(f, "source"),
    target: absolute(f, "target"),
  }));
}

function unsafe(archive: string, entry: string, why: string): AbsError {
  return new AbsError("UNSAFE_ENTRY", `${archive}: entry "${entry}" refused: ${why}`, {
    context: { file: archive },
  });
}

async function lstatOrNull(p: string): Promise<Awaited<ReturnType<typeof lstat>> | null> {
  try {
    return await lstat(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    throw err;
  }
}

/**
 * Makes sure every parent of `rel` inside `target` is a real directory
 * (creating missing ones when `create`); returns false when one is missing
 * and `create` is false. A symlink or a file on the way is UNSAFE_ENTRY.
 */
async function checkParents(
  target: string,
  rel: string,
  archive: string,
  create: boolean,
): Promise<boolean> {
  const parts = rel.split("/").slice(0, -1);
  let dir = target;
  for (const part of parts) {
    dir = path.join(dir, part);
    const st = await lstatOrNull(dir);
    if (st === null) {
      if (!create) return false;
      await mkdir(dir, { mode: 0o700 });
      continue;
    }
    if (st.isSymbolicLink()) {
      throw unsafe(
        archive,
        rel,
        `"${path.relative(target, dir)}" is a symlink in the target; nothing is extracted through a symlink`,
      );
    }
    if (!st.isDirectory()) {
      throw unsafe(
        archive,
        rel,
        `"${path.relative(target, dir)}" is not a directory in the target`,
      );
    }
  }
  return true;
}

/** Removes whatever is at `dest` (never following a symlink), unless it is a directory and `keepDir`. */
async function clear(dest: string, keepDir: boolean): Promise<boolean> {
  const st = await lstatOrNull(dest);
  if (st === null) return false;
  if (keepDir && st.isDirectory()) return true;
  await rm(dest, { recursive: true, force: true });
  return false;
}

const isRoot = process.getuid?.() === 0;

async function extractEntry(
  entry: ReadEntry,
  want: ManifestEntry,
  target: string,
  link: ChainLink,
  checker: ArchiveChecker,
  onBytes: (n: number) => void,
): Promise<void> {
  const rel = entryPath(entry);
  await checkParents(target, rel, link.archiveFile, true);
  const dest = path.join(target, rel);
  const mtime = new Date(want.mtime);
  switch (want.type) {
    case "directory": {
      // Mode and mtime are set once the whole chain is extracted.
      if (!(await clear(dest, true))) await mkdir(dest, { mode: 0o700 });
      entry.resume();
      break;
    }
    case "symlink": {
      await clear(dest, false);
      await symlink(want.target ?? "", dest);
      if (isRoot && entry.uid !== undefined && entry.gid !== undefined)
        await lchown(dest, entry.uid, entry.gid);
      await lutimes(dest, mtime, mtime);
      entry.resume();
      break;
    }
    case "file": {
      await clear(dest, false);
      // O_EXCL and O_NOFOLLOW: never write through something that appeared meanwhile.
      const h = await open(
        dest,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
      try {
        const sha = await hashEntry(entry, async (c) => {
          await h.write(c);
          onBytes(c.length);
        });
        checker.content(want, sha);
      } finally {
        await h.close();
      }
      if (isRoot && entry.uid !== undefined && entry.gid !== undefined)
        await lchown(dest, entry.uid, entry.gid);
      await chmod(dest, want.mode);
      await utimes(dest, mtime, mtime);
      break;
    }
  }
}

export async function restore(params: RestoreParams, ctx: MethodContext): Promise<MethodResult> {
  const { target } = params;
  await checkAllowed(params.source, "restore.source", ctx.allowedPaths);
  await checkAllowed(target, "restore.target", ctx.allowedPaths);
  const { file: manifestFile } = await resolveManifestPath(params.source, "restore.source");
  const chain = await loadChain(manifestFile);
  const progress = new ProgressThrottle(
    (p) => ctx.onProgress(p),
    () => ctx.now(),
  );

  // Refuse a damaged chain before writing anything.
  for (const link of chain) await verifyArchive(link, ctx.signal, progress);

  try {
    await mkdir(target, { recursive: true });
  } catch (err) {
    throw new AbsError("BACKUP_IO", `restore.target "${target}": ${(err as Error).message}`, {
      cause: err,
      context: { file: target },
    });
  }
  const tst = await lstat(target);
  if (!tst.isDirectory()) {
    throw new AbsError("BACKUP_IO", `restore.target "${target}" is not a directory`, {
      context: { file: target },
    });
  }

  let entries = 0;
  let bytes = 0;
  let deletions = 0;
  try {
    for (const link of chain) {
      // Deletions first: a path deleted and then re-created with another type
      // is in `stored`, not in `deleted`.
      for (const rel of link.manifest.deleted) {
        throwIfCanceled(ctx.signal, "restore");
        if (!isSafeRelativePath(rel))
          throw unsafe(link.manifestFile, rel, "not a safe relative path");
        if (!(await checkParents(target, rel, link.manifestFile, false))) continue;
        await rm(path.join(target, rel), { recursive: true, force: true });
        deletions++;
      }
      const checker = new ArchiveChecker(link.archiveFile, link.manifest);
      await readArchive(link.archiveFile, ctx.signal, async (entry) => {
        const want = checker.header(entry);
        await extractEntry(entry, want, target, link, checker, (n) => {
          bytes += n;
          progress.add(0, n, "/" + want.path);
        });
        entries++;
        progress.add(1, 0, "/" + want.path);
      });
      checker.finish();
    }
    // Directory modes and mtimes last, deepest first: extracting their
    // contents changed the mtimes, and a read-only directory must stay
    // writable until everything inside it is in place.
    const last = chain[chain.length - 1]?.manifest;
    const dirs = (last?.tree ?? []).filter((e) => e.type === "directory");
    dirs.sort((a, b) => b.path.split("/").length - a.path.split("/").length);
    for (const d of dirs) {
      const dest = path.join(target, d.path);
      await chmod(dest, d.mode);
      await utimes(dest, new Date(d.mtime), new Date(d.mtime));
    }
  } catch (err) {
    if (err instanceof AbsError) throw err;
    throw new AbsError("BACKUP_IO", `restore into "${target}": ${(err as Error).message}`, {
      cause: err,
      context: { file: target },
    });
  }
  progress.flush();
  const names = chain.map((l) => path.basename(l.archiveFile));
  return {
    message: `restored ${names.length} archive${names.length === 1 ? "" : "s"} up to ${names[names.length - 1]} into ${target}: ${entries} entries, ${bytes} bytes, ${deletions} deletions`,
    data: { archives: names, target, entries, bytes, deletions },
  };
}
