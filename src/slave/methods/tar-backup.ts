// The `tar` method: a full or incremental backup of source paths into a
// destination directory, as a standard tar (pax/ustar, optionally gzip)
// written with node-tar's Pack, and a manifest beside it (see manifest.ts
// and backup-set.ts for the names).
//
// Steps, and why in this order:
//  1. Check the paths against the allowed list; remove partial files left by
//     an earlier crashed run of the same definition.
//  2. Scan (lstat) and plan against the newest manifest of the definition in
//     the destination: unchanged files keep their sha256 and are not read.
//     That manifest is the one this process wrote last, kept in memory,
//     unless the file changed on disk since (manifest-cache.ts).
//  3. Archive each stored entry into `.<archive>.partial` (tar-writer.ts:
//     headers and bytes batched into large writes). A file is opened once,
//     and its bytes are hashed as they are written: one read per file. The
//     header's size comes from the open file's fstat, so a file that changed
//     since the scan is still archived consistently; one that vanished is
//     skipped with a warning.
//  4. Write the manifest beside the partial archive and fsync both (the two
//     fsyncs at once), rename the archive, then the manifest, then fsync the
//     directory. A manifest exists only for a complete archive, so a crash
//     leaves at most partial files or an archive without a manifest, never a
//     backup that looks complete.
// Cancel (the signal) stops between entries and between buffers of a big
// file, and removes the partial file. Memory is bounded by the writer's
// buffers, whatever the tree.

import { type BigIntStats, lstatSync } from "node:fs";
import { mkdir, readdir, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { AbsError, errorCode, describeError } from "../../errors.js";
import type { JsonObject } from "../../json-shape.js";
import type { TarLevel } from "../../config/job-definition.js";
import {
  MANIFEST_VERSION,
  type Manifest,
  type ManifestEntry,
  planBackup,
  serializeManifest,
} from "../manifest.js";
import { checkAllowed } from "./allowed-paths.js";
import {
  PARTIAL_SUFFIX,
  archiveName,
  checkDefinitionName,
  isPartialOf,
  manifestNameOf,
  newestManifest,
  rememberManifest,
} from "./backup-set.js";
import { fsyncDir } from "../../storage/durable-file.js";
import { removeQuietly } from "./durable.js";
import { compileExclude } from "./exclude.js";
import { openArchiveOutput } from "./archive-output.js";
import { ManifestCache } from "./manifest-cache.js";
import { type FileOpener, type ReadableFile, openForReading } from "./source-file-reader.js";
import { type MethodContext, type MethodResult, throwIfCanceled } from "./method-context.js";
import { absolute, absolutePath, readParams, stringArray } from "./params.js";
import { ProgressThrottle } from "./progress.js";
import { entryOfStats, scanSources } from "./scan.js";
import { TarWriter } from "./tar-writer.js";

/** The `tar` parameters, as `TarMethod` without `kind`. */
export interface TarParams {
  sources: string[];
  destination: string;
  exclude: string[];
  level: TarLevel;
  gzip: boolean;
}

export function readTarParams(params: JsonObject): TarParams {
  return readParams("tar", params, (f) => {
    const sources = stringArray(f, "sources").map((s, i) =>
      absolutePath(s, `params.sources[${i}]`),
    );
    return {
      sources,
      destination: absolute(f, "destination"),
      exclude: f.has("exclude") ? stringArray(f, "exclude") : [],
      level: f.has("level") ? f.oneOf("level", ["full", "incremental"] as const) : "full",
      gzip: f.has("gzip") ? f.boolean("gzip") : false,
    };
  });
}

function ioError(what: string, file: string, err: unknown): AbsError {
  if (err instanceof AbsError) return err;
  const code = errorCode(err);
  const why =
    code === "ENOSPC"
      ? "no space left on the device"
      : code === "EROFS"
        ? "the file system is read-only"
        : code === "EACCES" || code === "EPERM"
          ? "permission denied"
          : describeError(err);
  return new AbsError("BACKUP_IO", `${what} "${file}": ${why}`, { cause: err, context: { file } });
}

/**
 * The manifests this process wrote last, one per destination and
 * definition: the next incremental's base, unless changed on disk since.
 */
const writtenManifests = new ManifestCache();

export async function tarBackup(params: TarParams, ctx: MethodContext): Promise<MethodResult> {
  const definition = checkDefinitionName(ctx.definition);
  const { destination } = params;
  if (params.sources.length === 0) {
    throw new AbsError("BAD_ARGUMENT", "tar: tar.sources is empty", {
      context: { field: "tar.sources" },
    });
  }
  for (const s of params.sources) await checkAllowed(s, "tar.sources", ctx.allowedPaths);
  await checkAllowed(destination, "tar.destination", ctx.allowedPaths);
  const exclude = compileExclude(params.exclude);
  // The destination is never archived into itself.
  const inDestination = destination + "/";
  const skip = (abs: string): boolean =>
    abs === destination || abs.startsWith(inDestination) || exclude(abs);

  try {
    await mkdir(destination, { recursive: true });
    if (!(await stat(destination)).isDirectory()) {
      throw new AbsError("BACKUP_IO", `tar.destination "${destination}" is not a directory`, {
        context: { file: destination, field: "tar.destination" },
      });
    }
    for (const n of await readdir(destination)) {
      if (isPartialOf(n, definition)) await removeQuietly(path.join(destination, n));
    }
  } catch (err) {
    throw ioError("tar.destination", destination, err);
  }

  const manifests = ctx.manifestCache ?? writtenManifests;
  const createdAt = Math.floor(ctx.now());
  throwIfCanceled(ctx.signal, "tar backup");
  const previous =
    params.level === "incremental"
      ? await newestManifest(destination, definition, manifests)
      : null;
  const level = previous === null ? "full" : "incremental";
  const scan = await scanSources(params.sources, skip, ctx.signal, previous?.manifest.tree).catch(
    (err: unknown) => {
      throw ioError("tar: scanning", params.sources.join(", "), err);
    },
  );
  const plan = planBackup(previous?.manifest ?? null, scan.entries);

  const archive = archiveName(definition, createdAt, level, params.gzip);
  const archiveFile = path.join(destination, archive);
  const partial = path.join(destination, `.${archive}${PARTIAL_SUFFIX}`);
  const progress = new ProgressThrottle(
    (p) => ctx.onProgress(p),
    () => ctx.now(),
  );
  const warnings = [...scan.warnings];
  let writer: TarWriter;
  try {
    writer = new TarWriter(openArchiveOutput(partial, params.gzip), ctx.signal);
  } catch (err) {
    throw ioError("tar: cannot write", partial, err);
  }

  // What was archived, in plan order, with the values read: a planned entry
  // that vanished or is no longer a regular file is not among them.
  const stored: ManifestEntry[] = [];
  let bytes = 0;
  const openFile = ctx.openFile ?? openForReading;
  try {
    for (const planned of plan.store) {
      writer.check();
      const abs = "/" + planned.path;
      const r =
        planned.type === "file"
          ? await archiveFile1(writer, planned, abs, openFile, (n) => {
              bytes += n;
              progress.add(0, n, abs);
            })
          : await archiveHeaderOnly(writer, planned, abs);
      if (typeof r === "string") {
        warnings.push(r);
        continue;
      }
      if (r.warning !== null) warnings.push(r.warning);
      stored.push(r.entry);
      progress.add(1, 0, abs);
    }
  } catch (err) {
    await writer.abort();
    if (err instanceof AbsError) throw err;
    throw ioError("tar: cannot write", partial, err);
  }

  // The tree as archived: what was stored now and what is unchanged, in scan
  // order; deletions are the rest of the previous tree.
  const tree = treeAsArchived(scan.entries, plan.unchanged, stored);
  const deleted =
    stored.length === plan.store.length
      ? plan.deleted
      : deletedSince(previous?.manifest.tree ?? [], tree);
  const manifest: Manifest = {
    version: MANIFEST_VERSION,
    level,
    createdAt,
    archive,
    previous: previous === null ? null : path.basename(previous.file),
    tree,
    stored: stored.map((e) => e.path),
    deleted,
  };
  const manifestName = manifestNameOf(archive);
  const manifestFile = path.join(destination, manifestName);
  const manifestPartial = path.join(destination, `.${manifestName}${PARTIAL_SUFFIX}`);
  // The file a failure is reported on, and what is in place so far.
  let failing = partial;
  let archiveRenamed = false;
  let manifestRenamed = false;
  let writtenManifest: BigIntStats | null = null;
  try {
    throwIfCanceled(ctx.signal, "tar backup");
    const text = serializeManifest(manifest);
    // Both files are made durable at once (their fsyncs in flight together),
    // and only then renamed into place, the archive first: a manifest is
    // never in place for an archive that is not.
    const [archiveDone, manifestDone] = await Promise.allSettled([
      writer.finish(),
      writeFile(manifestPartial, text, { flag: "wx", flush: true, mode: 0o600 }),
    ]);
    if (archiveDone.status === "rejected") throw archiveDone.reason;
    failing = manifestPartial;
    if (manifestDone.status === "rejected") throw manifestDone.reason;
    // What was written, to know it again once renamed (rememberManifest).
    writtenManifest = await stat(manifestPartial, { bigint: true }).catch(() => null);
    failing = partial;
    await rename(partial, archiveFile);
    archiveRenamed = true;
    failing = manifestPartial;
    await rename(manifestPartial, manifestFile);
    manifestRenamed = true;
    await fsyncDir(destination);
  } catch (err) {
    manifests.forget(destination, definition);
    // An archive without its manifest is not a backup, and a manifest
    // without its archive is a broken one: remove both, the manifest first.
    if (manifestRenamed) await removeQuietly(manifestFile);
    await removeQuietly(manifestPartial);
    await writer.abort();
    if (archiveRenamed) await removeQuietly(archiveFile);
    throw ioError("tar: cannot write", failing, err);
  }
  progress.flush();
  await rememberManifest(manifests, definition, manifestFile, manifest, writtenManifest);

  const archiveBytes = (await stat(archiveFile)).size;
  const files = manifest.stored.length;
  const notes: string[] = [];
  if (scan.special.length > 0) notes.push(`${scan.special.length} special files skipped`);
  if (warnings.length > 0) notes.push(`${warnings.length} warnings`);
  return {
    message:
      `${level} backup ${archive}: ${files} ${files === 1 ? "entry" : "entries"} stored (${bytes} bytes), ` +
      `${plan.unchanged.length} unchanged, ${deleted.length} deleted` +
      (notes.length > 0 ? `; ${notes.join(", ")}` : ""),
    data: {
      level,
      archive,
      manifest: manifestName,
      destination,
      previous: manifest.previous,
      stored: files,
      unchanged: plan.unchanged.length,
      deleted: deleted.length,
      bytes,
      archiveBytes,
      excluded: scan.excluded,
      skippedSpecial: scan.special.slice(0, 100),
      warnings: warnings.slice(0, 100),
    },
  };
}

/**
 * The entries of `scanned` (in its order) that are in `unchanged` or
 * `stored`, both in scan order (a plan keeps it), taken from those: a merge,
 * without a map of either.
 */
function treeAsArchived(
  scanned: readonly ManifestEntry[],
  unchanged: ManifestEntry[],
  stored: ManifestEntry[],
): ManifestEntry[] {
  if (stored.length === 0 && unchanged.length === scanned.length) return unchanged;
  if (unchanged.length === 0 && stored.length === scanned.length) return stored;
  const tree: ManifestEntry[] = [];
  let u = 0;
  let s = 0;
  for (const e of scanned) {
    if (u < unchanged.length && unchanged[u].path === e.path) tree.push(unchanged[u++]);
    else if (s < stored.length && stored[s].path === e.path) tree.push(stored[s++]);
  }
  return tree;
}

/** Paths of `before` not in `tree`, in `before`'s order. */
function deletedSince(before: readonly ManifestEntry[], tree: readonly ManifestEntry[]): string[] {
  const inTree = new Set(tree.map((e) => e.path));
  return before.map((e) => e.path).filter((p) => !inTree.has(p));
}

function closeQuietly(handle: ReadableFile | null | undefined): void {
  try {
    handle?.close();
  } catch {
    // Closing a file only read cannot lose data.
  }
}

function isVanished(err: unknown): boolean {
  const code = errorCode(err);
  return code === "ENOENT" || code === "ENOTDIR";
}

/** The outcome of archiving one entry; a string is a warning (it was skipped). */
type Archived = string | { entry: ManifestEntry; warning: string | null };

/**
 * A directory or symlink: its header, with owners from a fresh lstat
 * (the scan does not read them), recorded in the manifest entry as well.
 */
async function archiveHeaderOnly(
  writer: TarWriter,
  planned: ManifestEntry,
  abs: string,
): Promise<Archived> {
  let st;
  try {
    st = lstatSync(abs);
  } catch (err) {
    if (isVanished(err)) return `${abs}: vanished before it was archived; skipped`;
    throw ioError("tar: cannot read", abs, err);
  }
  await writer.addHeaderOnly(planned, st.uid, st.gid);
  return { entry: { ...planned, uid: st.uid, gid: st.gid }, warning: null };
}

/**
 * Archives one file: open, fstat, its bytes read into the writer and hashed
 * as they are written (one read per file), close. Returns the entry as
 * archived. Errors of the file are "cannot read"; the writer's pass through.
 */
async function archiveFile1(
  writer: TarWriter,
  planned: ManifestEntry,
  abs: string,
  openFile: FileOpener,
  onBytes: (n: number) => void,
): Promise<Archived> {
  let handle: ReadableFile;
  try {
    handle = openFile(abs);
  } catch (err) {
    if (isVanished(err)) return `${abs}: vanished before it was read; skipped`;
    throw ioError("tar: cannot read", abs, err);
  }
  const fileOp = <T>(op: () => T): T => {
    try {
      return op();
    } catch (err) {
      throw ioError("tar: cannot read", abs, err);
    }
  };
  try {
    const st = fileOp(() => handle.stat());
    const entry = entryOfStats(planned.path, st, null);
    if (entry === null || entry.type !== "file") return `${abs}: no longer a regular file; skipped`;
    const { sha256, short } = await writer.addFile(
      entry,
      st.uid,
      st.gid,
      (buf, position) => fileOp(() => handle.read(buf, 0, buf.length, position)),
      onBytes,
    );
    // Changed since the scan, or while it was read (GNU tar's "file changed
    // as we read it"): archived as read, with a warning.
    const after = fileOp(() => handle.stat());
    const changed =
      short ||
      after.size !== st.size ||
      after.mtimeMs !== st.mtimeMs ||
      entry.size !== planned.size ||
      entry.mtime !== planned.mtime;
    return {
      entry: { ...entry, sha256, uid: st.uid, gid: st.gid },
      warning: changed ? `${abs}: changed while it was archived` : null,
    };
  } finally {
    closeQuietly(handle);
  }
}
