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
//  3. Archive each stored entry into `.<archive>.partial`. A file is opened
//     once, and its bytes are hashed as they are written: one read per file.
//     The header's size comes from the open file's fstat, so a file that
//     changed since the scan is still archived consistently; one that
//     vanished is skipped with a warning.
//  4. fsync the archive, rename it, then write, fsync and rename the
//     manifest, then fsync the directory. A manifest exists only for a
//     complete archive, so a crash leaves at most a partial file or an
//     archive without a manifest, never a backup that looks complete.
// Cancel (the signal) stops between chunks and removes the partial file.
// Memory is bounded by one chunk per file plus the streams' buffers.

import { createHash } from "node:crypto";
import { type Stats, createWriteStream, type WriteStream } from "node:fs";
import { lstat, mkdir, readdir, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Header, Pack, ReadEntry } from "tar";
import { AbsError } from "../../errors.js";
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
} from "./backup-set.js";
import { fsyncDir, removeQuietly } from "./durable.js";
import { compileExclude } from "./exclude.js";
import { type FileOpener, type ReadableFile, openForReading } from "./file-reader.js";
import { type MethodContext, type MethodResult, canceledError, throwIfCanceled } from "./method.js";
import { absolute, absolutePath, readParams, stringArray } from "./params.js";
import { ProgressThrottle } from "./progress.js";
import { entryOf, scanSources } from "./scan.js";

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

/** Bytes read from a file per step. */
const CHUNK = 256 * 1024;

function ioError(what: string, file: string, err: unknown): AbsError {
  if (err instanceof AbsError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === "ENOSPC"
      ? "no space left on the device"
      : code === "EROFS"
        ? "the file system is read-only"
        : code === "EACCES" || code === "EPERM"
          ? "permission denied"
          : (err as Error).message;
  return new AbsError("BACKUP_IO", `${what} "${file}": ${why}`, { cause: err, context: { file } });
}

/** The archive being written: Pack → (gzip) → partial file, with its first error kept. */
class ArchiveSink {
  private readonly pack: Pack;
  private readonly out: WriteStream;
  private failure: Error | null = null;
  private readonly failed: Promise<never>;
  private readonly closed: Promise<void>;
  private rejectFailed: (e: Error) => void = () => undefined;

  constructor(
    readonly file: string,
    gzip: boolean,
    private readonly signal: AbortSignal,
  ) {
    this.pack = new Pack({ gzip, portable: false, noDirRecurse: true });
    // flush: fsync before close, so the rename below publishes durable bytes.
    // A large buffer lets the stream batch many small entries into one writev.
    this.out = createWriteStream(file, {
      flags: "wx",
      flush: true,
      mode: 0o600,
      highWaterMark: 1 << 20,
    });
    this.failed = new Promise<never>((_, reject) => {
      this.rejectFailed = reject;
    });
    this.failed.catch(() => undefined);
    const fail = (e: Error): void => {
      if (this.failure === null) {
        this.failure = e;
        this.rejectFailed(e);
      }
    };
    this.out.on("error", fail);
    this.pack.on("error", (e: unknown) => fail(e as Error));
    this.closed = new Promise<void>((resolve) => this.out.once("close", resolve));
    this.pack.pipe(this.out);
  }

  check(): void {
    if (this.failure !== null) throw this.failure;
    if (this.signal.aborted) throw canceledError(this.signal, "tar backup");
  }

  /** Waits until `entry` accepts more data, the sink fails, or the job is canceled. */
  private async drain(entry: ReadEntry): Promise<void> {
    let onAbort = (): void => undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(canceledError(this.signal, "tar backup"));
      this.signal.addEventListener("abort", onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    try {
      await Promise.race([new Promise<void>((r) => entry.once("drain", r)), this.failed, aborted]);
    } finally {
      this.signal.removeEventListener("abort", onAbort);
    }
  }

  private entry(e: ManifestEntry, size: number, uid: number, gid: number): ReadEntry {
    const type = e.type === "file" ? "File" : e.type === "directory" ? "Directory" : "SymbolicLink";
    const header = new Header({
      path: e.type === "directory" ? e.path + "/" : e.path,
      type,
      mode: e.mode,
      size,
      mtime: new Date(e.mtime),
      uid,
      gid,
      linkpath: e.target ?? undefined,
    });
    const entry = new ReadEntry(header);
    this.pack.write(entry);
    return entry;
  }

  /** A directory or symlink: a header only. */
  addHeaderOnly(e: ManifestEntry, uid: number, gid: number): void {
    this.check();
    this.entry(e, 0, uid, gid).end();
  }

  /**
   * A file's header, then its content: `first` (already read), then chunks
   * from `read` until exactly `e.size` bytes are written.
   */
  async addFile(
    e: ManifestEntry,
    uid: number,
    gid: number,
    first: Buffer,
    read: (buf: Buffer) => number,
    onChunk: (chunk: Buffer) => void,
  ): Promise<{ short: boolean }> {
    this.check();
    const entry = this.entry(e, e.size, uid, gid);
    let left = e.size;
    let short = false;
    let pending: Buffer | null = first.length > 0 ? first.subarray(0, left) : null;
    while (left > 0) {
      this.check();
      let chunk: Buffer;
      if (pending !== null) {
        chunk = pending;
        pending = null;
      } else {
        const buf = Buffer.allocUnsafe(Math.min(CHUNK, left));
        const n = short ? 0 : read(buf);
        if (n === 0) {
          // The file shrank since its fstat: pad with zeros so the archive
          // stays well formed; the hash is of what the archive holds.
          short = true;
          chunk = buf.fill(0);
        } else {
          chunk = n === buf.length ? buf : buf.subarray(0, n);
        }
      }
      left -= chunk.length;
      onChunk(chunk);
      if (!entry.write(chunk)) await this.drain(entry);
    }
    entry.end();
    return { short };
  }

  async finish(): Promise<void> {
    this.check();
    this.pack.end();
    await Promise.race([this.closed, this.failed]);
    this.check();
  }

  async abort(): Promise<void> {
    this.pack.unpipe(this.out);
    this.out.destroy();
    await this.closed;
    await removeQuietly(this.file);
  }
}

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
  const skip = (abs: string): boolean =>
    abs === destination || abs.startsWith(destination + "/") || exclude(abs);

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

  const createdAt = Math.floor(ctx.now());
  throwIfCanceled(ctx.signal, "tar backup");
  const previous =
    params.level === "incremental" ? await newestManifest(destination, definition) : null;
  const level = previous === null ? "full" : "incremental";
  const scan = await scanSources(params.sources, skip, ctx.signal).catch((err: unknown) => {
    throw ioError("tar: scanning", params.sources.join(", "), err);
  });
  const plan = planBackup(previous?.manifest ?? null, scan.entries);

  const archive = archiveName(definition, createdAt, level, params.gzip);
  const archiveFile = path.join(destination, archive);
  const partial = path.join(destination, `.${archive}${PARTIAL_SUFFIX}`);
  const progress = new ProgressThrottle(
    (p) => ctx.onProgress(p),
    () => ctx.now(),
  );
  const warnings = [...scan.warnings];
  let sink: ArchiveSink;
  try {
    sink = new ArchiveSink(partial, params.gzip, ctx.signal);
  } catch (err) {
    throw ioError("tar: cannot write", partial, err);
  }

  const stored = new Map<string, ManifestEntry>();
  let bytes = 0;
  const openFile = ctx.openFile ?? openForReading;
  // Opening, fstat and the first read of the next entries overlap the
  // archiving of the current one (a window of PREFETCH entries, at most
  // PREFETCH_BYTES each): with many small files the cost is the round trips
  // of those calls, not the bytes.
  const window: Array<Promise<Prepared>> = [];
  let next = 0;
  const fill = (): void => {
    while (window.length < PREFETCH && next < plan.store.length) {
      const p = prepare(plan.store[next++], openFile);
      p.catch(() => undefined);
      window.push(p);
    }
  };
  try {
    fill();
    while (window.length > 0) {
      const prepared = await (window.shift() as Promise<Prepared>);
      fill();
      // File reads are synchronous: let timers and sockets run now and then.
      if (next % 256 === 0) await new Promise((r) => setImmediate(r));
      if (typeof prepared === "string") {
        warnings.push(prepared);
        continue;
      }
      const abs = "/" + prepared.entry.path;
      if (prepared.entry.type !== "file") {
        sink.addHeaderOnly(prepared.entry, prepared.st.uid, prepared.st.gid);
        stored.set(prepared.entry.path, prepared.entry);
        progress.add(1, 0, abs);
        continue;
      }
      const r = await archiveFile1(sink, prepared, abs, (n) => {
        bytes += n;
        progress.add(0, n, abs);
      });
      if (r.warning !== null) warnings.push(r.warning);
      stored.set(r.entry.path, r.entry);
      progress.add(1, 0, abs);
    }
    await sink.finish();
    await rename(partial, archiveFile);
  } catch (err) {
    // Close what the window opened ahead.
    for (const p of window) {
      const prepared = await p.catch(() => null);
      if (prepared !== null && typeof prepared !== "string") closeQuietly(prepared.handle);
    }
    await sink.abort();
    if (err instanceof AbsError) throw err;
    throw ioError("tar: cannot write", partial, err);
  }

  // The tree as archived: what was stored now (with the values read) and
  // what is unchanged, in scan order; deletions are the rest of the previous tree.
  const unchanged = new Map(plan.unchanged.map((e) => [e.path, e]));
  const tree: ManifestEntry[] = [];
  for (const e of scan.entries) {
    const kept = stored.get(e.path) ?? unchanged.get(e.path);
    if (kept !== undefined) tree.push(kept);
  }
  const inTree = new Set(tree.map((e) => e.path));
  const deleted = (previous?.manifest.tree ?? []).map((e) => e.path).filter((p) => !inTree.has(p));
  const manifest: Manifest = {
    version: MANIFEST_VERSION,
    level,
    createdAt,
    archive,
    previous: previous === null ? null : path.basename(previous.file),
    tree,
    stored: [...stored.keys()],
    deleted,
  };
  const manifestName = manifestNameOf(archive);
  const manifestFile = path.join(destination, manifestName);
  const manifestPartial = path.join(destination, `.${manifestName}${PARTIAL_SUFFIX}`);
  try {
    throwIfCanceled(ctx.signal, "tar backup");
    await writeFile(manifestPartial, serializeManifest(manifest), {
      flag: "wx",
      flush: true,
      mode: 0o600,
    });
    await rename(manifestPartial, manifestFile);
    await fsyncDir(destination);
  } catch (err) {
    // Without its manifest the archive is not a backup: remove both.
    await removeQuietly(manifestPartial);
    await removeQuietly(archiveFile);
    if (err instanceof AbsError) throw err;
    throw ioError("tar: cannot write", manifestPartial, err);
  }
  progress.flush();

  const archiveBytes = (await stat(archiveFile)).size;
  const files = manifest.stored.length;
  const notes: string[] = [];
  if (scan.special.length > 0) notes.push(`${scan.special.length} special files skipped`);
  if (warnings.length > 0) notes.push(`${warnings.length} warnings`);
  return {
    message:
      `${level} backup ${archive}: ${files} entries stored (${bytes} bytes), ` +
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

function closeQuietly(handle: ReadableFile | null | undefined): void {
  try {
    handle?.close();
  } catch {
    // Closing a file only read cannot lose data.
  }
}

/** Entries prepared ahead of the archiver. */
const PREFETCH = 16;
/** Bytes read ahead per file (the whole of a small file). */
const PREFETCH_BYTES = 256 * 1024;

/**
 * An entry ready to archive: its lstat (directories, symlinks) or its open
 * file, fstat and first bytes (files; `handle` null when the whole file was
 * read and closed already). A string is a warning: it vanished.
 */
type Prepared =
  | string
  | {
      entry: ManifestEntry;
      planned: ManifestEntry;
      st: Stats;
      handle: ReadableFile | null;
      first: Buffer;
      /** Whether the file changed while it was read (known when `handle` is null). */
      changedWhileRead: boolean;
    };

function isVanished(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

async function prepare(planned: ManifestEntry, openFile: FileOpener): Promise<Prepared> {
  const abs = "/" + planned.path;
  if (planned.type !== "file") {
    // Owners are not in the manifest: one more lstat, no content read.
    try {
      return {
        entry: planned,
        planned,
        st: await lstat(abs),
        handle: null,
        first: Buffer.alloc(0),
        changedWhileRead: false,
      };
    } catch (err) {
      if (isVanished(err)) return `${abs}: vanished before it was archived; skipped`;
      throw ioError("tar: cannot read", abs, err);
    }
  }
  let handle: ReadableFile;
  try {
    handle = openFile(abs);
  } catch (err) {
    if (isVanished(err)) return `${abs}: vanished before it was read; skipped`;
    throw ioError("tar: cannot read", abs, err);
  }
  try {
    const st = handle.stat();
    const entry = entryOf(planned.path, st, null);
    if (entry === null || entry.type !== "file") {
      handle.close();
      return `${abs}: no longer a regular file; skipped`;
    }
    const want = Math.min(st.size, PREFETCH_BYTES);
    const buf = Buffer.allocUnsafe(want);
    let got = 0;
    while (got < want) {
      const bytesRead = handle.read(buf, got, want - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    const first = buf.subarray(0, got);
    if (got < st.size && got === want) {
      return { entry, planned, st, handle, first, changedWhileRead: false };
    }
    // The whole file is read: check it did not change meanwhile, and close it.
    const after = handle.stat();
    handle.close();
    const changedWhileRead =
      got < st.size || after.size !== st.size || after.mtimeMs !== st.mtimeMs;
    return { entry, planned, st, handle: null, first, changedWhileRead };
  } catch (err) {
    closeQuietly(handle);
    throw ioError("tar: cannot read", abs, err);
  }
}

/**
 * Archives one prepared file, hashing its bytes as they are written (one
 * read per file). Returns the entry as archived.
 */
async function archiveFile1(
  sink: ArchiveSink,
  p: Exclude<Prepared, string>,
  abs: string,
  onBytes: (n: number) => void,
): Promise<{ entry: ManifestEntry; warning: string | null }> {
  const { handle, st, planned } = p;
  try {
    const hash = createHash("sha256");
    let position = p.first.length;
    const { short } = await sink.addFile(
      p.entry,
      st.uid,
      st.gid,
      p.first,
      (buf) => {
        if (handle === null) return 0;
        const bytesRead = handle.read(buf, 0, buf.length, position);
        position += bytesRead;
        return bytesRead;
      },
      (chunk) => {
        hash.update(chunk);
        onBytes(chunk.length);
      },
    );
    const entry: ManifestEntry = { ...p.entry, sha256: hash.digest("hex") };
    // Changed since the scan, or while it was read (GNU tar's "file changed
    // as we read it"): archived as read, with a warning.
    let changed =
      short || p.changedWhileRead || entry.size !== planned.size || entry.mtime !== planned.mtime;
    if (handle !== null) {
      const after = handle.stat();
      changed ||= after.size !== st.size || after.mtimeMs !== st.mtimeMs;
    }
    return { entry, warning: changed ? `${abs}: changed while it was archived` : null };
  } catch (err) {
    if (err instanceof AbsError) throw err;
    throw ioError("tar: cannot read", abs, err);
  } finally {
    closeQuietly(handle);
  }
}
