// The `restore` method: extracts a chain (the full backup and the
// incrementals after it, found through the manifests' `previous` links) into
// a target directory, applying each incremental's deletions, so the target
// holds the sources as they were at the chosen backup (under their archive
// paths: /home/alice is restored as <target>/home/alice). Files already in
// the target and not in the backup are left alone; directories already there
// are kept.
//
// Steps, and why in this order. Everything that can refuse the restore is
// done before the first write (1-3), on the whole chain:
//  1. Every archive of the chain is verified against its manifest (content,
//     types, sizes, modes, owners: archive-reader.ts), and the order of its
//     entries noted.
//  2. The target is opened from "/" one directory at a time, never through a
//     symlink; as root, a directory on the way that a user other than root
//     could change is refused (UNSAFE_TARGET, pinned-dir.ts).
//  3. A dry run of every deletion and entry, in that order, on a model of
//     the target (restore-plan.ts): an entry through a symlink or below a
//     file, whether the archive or the target put it there, is UNSAFE_ENTRY.
//  4. The missing directories of the target are made, then each link's
//     deletions, then its entries, the archive checked again as it is read
//     (it must not have changed since step 1).
//  5. The directories' modes, owners and times, deepest first: extracting
//     their contents changed the times, and a read-only directory must stay
//     writable until everything inside it is in place.
// Every write is done on a name inside a directory held open and opened
// with O_NOFOLLOW, and modes, owners and times through a descriptor, or for
// a symlink in a private directory before it is renamed into place
// (pinned-dir.ts says why this and not a staging directory): a user who can
// write in the target and swaps a directory for a symlink while the restore
// runs makes it fail (UNSAFE_ENTRY, "no longer a directory"), never reach
// outside. Refusals are errors, never silent skips.
//
// As root, owners are restored: from the manifest, whose owners the archive
// was checked against, or, for a manifest written before they were recorded,
// from the tar header as before (the result says how many).

import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import {
  lchown,
  lstat,
  lutimes,
  mkdir,
  open,
  readdir,
  rename,
  rmdir,
  symlink,
  unlink,
} from "node:fs/promises";
import path from "node:path";
import type { ReadEntry } from "tar";
import { AbsError, describeError } from "../../errors.js";
import type { JsonObject } from "../../json-shape.js";
import { type ManifestEntry, isSafeRelativePath } from "../manifest.js";
import { checkAllowed, realOfExisting } from "./allowed-paths.js";
import { ArchiveChecker, entryPath, hashEntry, invalid, readArchive } from "./archive-reader.js";
import { type ChainLink, loadChain, resolveManifestPath } from "./backup-set.js";
import { type MethodContext, type MethodResult, throwIfCanceled } from "./method-context.js";
import { absolute, readParams } from "./params.js";
import { PinnedDir, errnoCode, makeMissing, openTarget } from "./pinned-dir.js";
import { ProgressThrottle } from "./progress.js";
import { RestorePlan, type TargetLookup, refused } from "./restore-plan.js";
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

const isRoot = process.getuid?.() === 0;

interface Owner {
  uid: number;
  gid: number;
}

/**
 * The directories below the target on the way to the entry being restored,
 * held open: the archive is in tree order, so the next entry mostly shares
 * them. Each is opened from the one above, never through a symlink.
 */
class TreeWalker {
  private readonly dirs: PinnedDir[] = [];
  private readonly names: string[] = [];

  constructor(private readonly target: PinnedDir) {}

  /**
   * The directory `parts` below the target, open; a missing one is made
   * (mode 0700 until step 5) when `create`, else the answer is null. A
   * symlink or a file on the way is UNSAFE_ENTRY for `rel` of `file`: the
   * dry run found none, so it took that place during the restore.
   */
  async dir(
    parts: string[],
    rel: string,
    file: string,
    create: boolean,
  ): Promise<PinnedDir | null> {
    let same = 0;
    while (same < parts.length && same < this.names.length && parts[same] === this.names[same])
      same++;
    await this.closeFrom(same);
    for (let i = same; i < parts.length; i++) {
      const parent = i === 0 ? this.target : this.dirs[i - 1];
      const shown = parts.slice(0, i + 1).join("/");
      let child = await openOrNull(parent, parts[i], file, rel, shown);
      if (child === null) {
        if (!create) return null;
        try {
          await mkdir(parent.at(parts[i]), { mode: 0o700 });
        } catch (err) {
          if (errnoCode(err) !== "EEXIST") throw err;
        }
        child = await openOrNull(parent, parts[i], file, rel, shown);
        if (child === null) throw refused(file, rel, `"${shown}" vanished as it was made`);
      }
      this.dirs.push(child);
      this.names.push(parts[i]);
    }
    return parts.length === 0 ? this.target : this.dirs[parts.length - 1];
  }

  /** The parent directory of `rel`, as `dir`. */
  parentOf(rel: string, file: string, create: boolean): Promise<PinnedDir | null> {
    return this.dir(rel.split("/").slice(0, -1), rel, file, create);
  }

  async closeFrom(n: number): Promise<void> {
    while (this.dirs.length > n) {
      this.names.pop();
      await this.dirs.pop()?.close();
    }
  }
}

async function openOrNull(
  parent: PinnedDir,
  name: string,
  file: string,
  rel: string,
  shown: string,
): Promise<PinnedDir | null> {
  try {
    return await parent.open(name);
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ENOENT") return null;
    if (code === "ELOOP" || code === "ENOTDIR") {
      throw refused(
        file,
        rel,
        `"${shown}" is no longer a directory in the target (a symlink or a file took its place during the restore); nothing is done through it`,
      );
    }
    throw err;
  }
}

async function lstatOrNull(p: string): Promise<Awaited<ReturnType<typeof lstat>> | null> {
  try {
    return await lstat(p);
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw err;
  }
}

/**
 * Removes entry `name` of `dir` and everything under it, never following a
 * symlink: a directory is opened with O_NOFOLLOW and emptied through its
 * descriptor. Returns whether there was something.
 */
async function removeEntry(dir: PinnedDir, name: string): Promise<boolean> {
  const st = await lstatOrNull(dir.at(name));
  if (st === null) return false;
  if (st.isDirectory()) {
    let sub: PinnedDir | null = null;
    try {
      sub = await dir.open(name);
    } catch (err) {
      const code = errnoCode(err);
      if (code === "ENOENT") return false;
      // Swapped for a symlink or a file since the lstat: removed as one, below.
      if (code !== "ELOOP" && code !== "ENOTDIR") throw err;
    }
    if (sub !== null) {
      try {
        for (const n of await readdir(sub.self)) await removeEntry(sub, n);
      } finally {
        await sub.close();
      }
      await rmdir(dir.at(name));
      return true;
    }
  }
  await unlink(dir.at(name));
  return true;
}

/** Removes what is at `name` in `dir`, unless it is a directory and `keepDir`; returns whether one was kept. */
async function clear(dir: PinnedDir, name: string, keepDir: boolean): Promise<boolean> {
  if (keepDir) {
    const st = await lstatOrNull(dir.at(name));
    if (st?.isDirectory() === true) return true;
  }
  await removeEntry(dir, name);
  return false;
}

/** What the target holds at `rel` before the restore (the dry run's view; read only). */
function lookupIn(target: PinnedDir): TargetLookup {
  return async (rel) => {
    const st = await lstatOrNull(target.at(rel));
    if (st === null) return null;
    if (st.isDirectory()) return "directory";
    if (st.isSymbolicLink()) return "symlink";
    if (st.isFile()) return "file";
    return "other";
  };
}

/** Counts what a root restore takes from tar headers, for manifests that record no owners. */
class Owners {
  fromHeaders = 0;
  /** Header owners of directories whose manifest entry has none, for step 5. */
  readonly dirsFromHeaders = new Map<string, Owner>();

  /** The owner to give `want` (null: none, not root), counting a fallback to `header`. */
  of(want: ManifestEntry, header: ReadEntry | null): Owner | null {
    if (!isRoot) return null;
    if (want.uid !== undefined && want.gid !== undefined) return { uid: want.uid, gid: want.gid };
    if (header === null) return this.dirsFromHeaders.get(want.path) ?? null;
    if (header.uid === undefined || header.gid === undefined) return null;
    this.fromHeaders++;
    return { uid: header.uid, gid: header.gid };
  }
}

/**
 * Makes symlink `name` in `dir`, with its owner and times. There is no
 * descriptor of a symlink to set them through, and lchown and lutimes go by
 * name: in a directory another user can write, the name could by then be
 * a hard link to a file of theirs' choosing. So the symlink is made and set
 * up in a fresh 0700 directory beside it, which no one else can enter (it
 * is checked to be ours once open: someone could have put theirs in its
 * place), then renamed into place.
 */
async function makeSymlink(
  dir: PinnedDir,
  name: string,
  target: string,
  owner: Owner | null,
  mtime: Date,
  rel: string,
  link: ChainLink,
): Promise<void> {
  const privName = `.abs-restore-${randomBytes(8).toString("hex")}`;
  await mkdir(dir.at(privName), { mode: 0o700 });
  try {
    const priv = await dir.open(privName);
    try {
      const st = await priv.handle.stat();
      if (st.uid !== process.geteuid?.() || (st.mode & 0o077) !== 0) {
        throw refused(
          link.archiveFile,
          rel,
          `the private directory "${privName}" made beside it was replaced during the restore`,
        );
      }
      await symlink(target, priv.at(name));
      if (owner !== null) await lchown(priv.at(name), owner.uid, owner.gid);
      await lutimes(priv.at(name), mtime, mtime);
      await rename(priv.at(name), dir.at(name));
    } finally {
      await priv.close();
    }
  } finally {
    // Gone or another's when someone moved it meanwhile: nothing of ours is left in it.
    await rmdir(dir.at(privName)).catch(() => undefined);
  }
}

async function extractEntry(
  entry: ReadEntry,
  want: ManifestEntry,
  walker: TreeWalker,
  link: ChainLink,
  checker: ArchiveChecker,
  owners: Owners,
  onBytes: (n: number) => void,
): Promise<void> {
  const rel = entryPath(entry);
  const dir = await walker.parentOf(rel, link.archiveFile, true);
  if (dir === null) throw new Error(`no parent directory for "${rel}"`); // create: never null
  const name = path.basename(rel);
  const dest = dir.at(name);
  const mtime = new Date(want.mtime);
  switch (want.type) {
    case "directory": {
      // Mode, owner and mtime are set once the whole chain is extracted.
      if (!(await clear(dir, name, true))) await mkdir(dest, { mode: 0o700 });
      if (want.uid === undefined || want.gid === undefined) {
        const owner = owners.of(want, entry);
        if (owner !== null) owners.dirsFromHeaders.set(want.path, owner);
      }
      entry.resume();
      break;
    }
    case "symlink": {
      await clear(dir, name, false);
      await makeSymlink(dir, name, want.target ?? "", owners.of(want, entry), mtime, rel, link);
      entry.resume();
      break;
    }
    case "file": {
      await clear(dir, name, false);
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
        // The owner first: chown clears the set-user-ID and set-group-ID bits.
        const owner = owners.of(want, entry);
        if (owner !== null) await h.chown(owner.uid, owner.gid);
        await h.chmod(want.mode);
        await h.utimes(mtime, mtime);
      } finally {
        await h.close();
      }
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

  // 1. Refuse a damaged chain before writing anything; note each archive's order.
  const orders: ManifestEntry[][] = [];
  for (const link of chain) {
    const order: ManifestEntry[] = [];
    await verifyArchive(link, ctx.signal, progress, (want) => order.push(want));
    orders.push(order);
  }

  let entries = 0;
  let bytes = 0;
  let deletions = 0;
  const owners = new Owners();
  let held: PinnedDir | null = null;
  let walker: TreeWalker | null = null;
  try {
    // 2. The target, as far as it exists, checked.
    const tst = await lstatOrNull(target);
    if (tst !== null && !tst.isDirectory()) {
      throw new AbsError("BACKUP_IO", `restore.target "${target}" is not a directory`, {
        context: { file: target },
      });
    }
    const opened = await openTarget(target, await realOfExisting(path.resolve(target)), isRoot);
    held = opened.dir;

    // 3. The dry run of the whole chain.
    const plan = new RestorePlan(opened.missing.length > 0 ? null : lookupIn(opened.dir));
    for (const [i, link] of chain.entries()) {
      for (const rel of link.manifest.deleted) {
        if (!isSafeRelativePath(rel))
          throw refused(link.manifestFile, rel, "not a safe relative path");
        await plan.delete(rel, link.manifestFile);
      }
      for (const want of orders[i]) await plan.write(want.path, want.type, link.archiveFile);
    }

    // 4. The writes.
    held = null; // makeMissing closes opened.dir, or returns it as the target
    held = await makeMissing(target, opened, isRoot);
    const w = new TreeWalker(held);
    walker = w;
    for (const [i, link] of chain.entries()) {
      // Deletions first: a path deleted and then re-created with another type
      // is in `stored`, not in `deleted`.
      for (const rel of link.manifest.deleted) {
        throwIfCanceled(ctx.signal, "restore");
        const dir = await w.parentOf(rel, link.manifestFile, false);
        if (dir === null) continue;
        await removeEntry(dir, path.basename(rel));
        deletions++;
      }
      const checker = new ArchiveChecker(link.archiveFile, link.manifest);
      const order = orders[i];
      let k = 0;
      await readArchive(link.archiveFile, ctx.signal, async (entry) => {
        const want = checker.header(entry);
        if (want !== order[k++]) {
          throw invalid(
            link.archiveFile,
            `entry "${want.path}" is not where it was when the archive was verified: the archive changed since`,
          );
        }
        await extractEntry(entry, want, w, link, checker, owners, (n) => {
          bytes += n;
          progress.add(0, n, "/" + want.path);
        });
        entries++;
        progress.add(1, 0, "/" + want.path);
      });
      checker.finish();
    }

    // 5. Directory modes, owners and mtimes, deepest first, each directory
    // opened again from the target: one swapped meanwhile is refused.
    await w.closeFrom(0);
    const last = chain[chain.length - 1];
    const dirs = last.manifest.tree.filter((e) => e.type === "directory");
    dirs.sort((a, b) => b.path.split("/").length - a.path.split("/").length);
    for (const d of dirs) {
      const dir = await w.dir(d.path.split("/"), d.path, last.archiveFile, false);
      if (dir === null) {
        throw new AbsError(
          "BACKUP_IO",
          `restore into "${target}": directory "${d.path}" vanished during the restore`,
          { context: { file: target } },
        );
      }
      const owner = owners.of(d, null);
      if (owner !== null) await dir.handle.chown(owner.uid, owner.gid);
      await dir.handle.chmod(d.mode);
      await dir.handle.utimes(new Date(d.mtime), new Date(d.mtime));
    }
  } catch (err) {
    if (err instanceof AbsError) throw err;
    throw new AbsError("BACKUP_IO", `restore into "${target}": ${describeError(err)}`, {
      cause: err,
      context: { file: target },
    });
  } finally {
    await walker?.closeFrom(0);
    await held?.close();
  }
  progress.flush();
  const names = chain.map((l) => path.basename(l.archiveFile));
  const fromHeaders =
    owners.fromHeaders > 0
      ? `; the owners of ${owners.fromHeaders} taken from their tar headers (the manifest records none)`
      : "";
  return {
    message: `restored ${names.length} archive${names.length === 1 ? "" : "s"} up to ${names[names.length - 1]} into ${target}: ${entries} entries, ${bytes} bytes, ${deletions} deletions${fromHeaders}`,
    data: {
      archives: names,
      target,
      entries,
      bytes,
      deletions,
      ownersFromHeaders: owners.fromHeaders,
    },
  };
}
