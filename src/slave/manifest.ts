// The manifest written beside every tar backup: what the archive's tree held
// (path, type, size, mtime, mode, sha256) and, for an incremental, what was
// deleted since the previous backup. Pure: entries in, entries out. The
// scanner and the archiver do the I/O.
//
// An incremental holds the entries whose type, size, mtime, mode or link
// target changed since the previous manifest, and lists deleted paths. The
// sha256 of an unchanged file is carried over from the previous manifest
// rather than read again: that is what keeps an incremental of an unchanged
// tree cheap (the same quick check as rsync and GNU tar's --listed-incremental).

import { Fields, ShapeError } from "../json-shape.js";
import { AbsError } from "../errors.js";

export const MANIFEST_VERSION = 1;

export type EntryType = "file" | "directory" | "symlink";

export interface ManifestEntry {
  /** Relative to the backup root, "/"-separated, no leading "/" or "..". */
  path: string;
  type: EntryType;
  /** Bytes; 0 for directories and symlinks. */
  size: number;
  /** Modification time, ms since the epoch. */
  mtime: number;
  /** Permission bits (e.g. 0o644). */
  mode: number;
  /** Hex SHA-256 of a file's content; null for directories and symlinks. */
  sha256: string | null;
  /** A symlink's target; null otherwise. */
  target: string | null;
}

export interface Manifest {
  version: number;
  level: "full" | "incremental";
  /** When the backup started, ms since the epoch. */
  createdAt: number;
  /** The archive this manifest describes (its file name). */
  archive: string;
  /** The manifest this incremental builds on (its file name); null for a full. */
  previous: string | null;
  /** The whole tree as it was at this backup (so the next incremental can compare). */
  tree: ManifestEntry[];
  /** Paths of `tree` whose content is in this archive. */
  stored: string[];
  /** Paths present at the previous backup and gone now. */
  deleted: string[];
}

/** Whether `now` differs from `before` in a way that needs it stored again. */
export function changed(before: ManifestEntry, now: ManifestEntry): boolean {
  return (
    before.type !== now.type ||
    before.size !== now.size ||
    before.mtime !== now.mtime ||
    before.mode !== now.mode ||
    before.target !== now.target
  );
}

export interface Plan {
  /** Entries to store in the archive, in tree order. */
  store: ManifestEntry[];
  /** Entries unchanged since the previous backup, with the sha256 carried over. */
  unchanged: ManifestEntry[];
  deleted: string[];
}

/**
 * What an incremental against `previous` must store, given the tree as
 * scanned now (entries without sha256 yet). With no previous manifest,
 * everything is stored (a full backup).
 */
export function planBackup(previous: Manifest | null, scanned: readonly ManifestEntry[]): Plan {
  if (previous === null) return { store: [...scanned], unchanged: [], deleted: [] };
  const before = new Map(previous.tree.map((e) => [e.path, e]));
  const plan: Plan = { store: [], unchanged: [], deleted: [] };
  const seen = new Set<string>();
  for (const entry of scanned) {
    seen.add(entry.path);
    const old = before.get(entry.path);
    if (old === undefined || changed(old, entry)) plan.store.push(entry);
    else plan.unchanged.push({ ...entry, sha256: old.sha256 });
  }
  for (const e of previous.tree) if (!seen.has(e.path)) plan.deleted.push(e.path);
  return plan;
}

export function serializeManifest(m: Manifest): string {
  return JSON.stringify(m) + "\n";
}

/** Parses a manifest file's text; throws AbsError BAD_ARGUMENT naming the file and field. */
export function parseManifest(text: string, file: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AbsError("BAD_ARGUMENT", `${file}: not a manifest (${(err as Error).message})`, {
      context: { file },
    });
  }
  try {
    const f = new Fields(value);
    const version = f.int("version", { min: 1 });
    if (version !== MANIFEST_VERSION) {
      throw new ShapeError("version", `manifest format ${version} is not ${MANIFEST_VERSION}`);
    }
    return {
      version,
      level: f.oneOf("level", ["full", "incremental"] as const),
      createdAt: f.int("createdAt", { min: 0 }),
      archive: f.string("archive", { nonEmpty: true }),
      previous: f.raw.previous === null ? null : f.string("previous", { nonEmpty: true }),
      tree: f.objects("tree", readEntry),
      stored: strings(f, "stored"),
      deleted: strings(f, "deleted"),
    };
  } catch (err) {
    if (err instanceof ShapeError) {
      throw new AbsError("BAD_ARGUMENT", `${file}: ${err.field}: ${err.why}`, {
        context: { file, field: err.field },
      });
    }
    throw err;
  }
}

function strings(f: Fields, key: string): string[] {
  return f.array(key).map((v, i) => {
    if (typeof v !== "string") throw new ShapeError(`${key}[${i}]`, "expected a string");
    return v;
  });
}

/** A relative path that cannot step outside the root it is joined to. */
export function isSafeRelativePath(p: string): boolean {
  if (p === "" || p.startsWith("/") || p.includes("\0")) return false;
  return p.split("/").every((part) => part !== "" && part !== "." && part !== "..");
}

function readEntry(f: Fields): ManifestEntry {
  const path = f.string("path", { nonEmpty: true });
  if (!isSafeRelativePath(path))
    throw new ShapeError(`${f.prefix}.path`, `"${path}" is not a safe relative path`);
  const type = f.oneOf("type", ["file", "directory", "symlink"] as const);
  return {
    path,
    type,
    size: f.int("size", { min: 0 }),
    mtime: f.int("mtime"),
    mode: f.int("mode", { min: 0, max: 0o7777 }),
    sha256: f.raw.sha256 === null ? null : f.string("sha256"),
    target: f.raw.target === null ? null : f.string("target"),
  };
}
