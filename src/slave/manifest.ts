// The manifest written beside every tar backup: what the archive's tree held
// (path, type, size, mtime, mode, owner, group, sha256) and, for an
// incremental, what was deleted since the previous backup. Pure: entries in, entries out. The
// scanner and the archiver do the I/O.
//
// An incremental holds the entries whose type, size, mtime, mode or link
// target changed since the previous manifest, and lists deleted paths. The
// sha256 of an unchanged file is carried over from the previous manifest
// rather than read again: that is what keeps an incremental of an unchanged
// tree cheap (the same quick check as rsync and GNU tar's --listed-incremental).
//
// Owner and group (`uid`, `gid`) are those of the stored copy, written with
// the same stat as its tar header, so the two agree; a restore checks that
// they do and, as root, takes them from the manifest. Manifests written
// before they were recorded lack them: they are read as before (format 1
// still, the fields optional), and a root restore then takes the owner from
// the tar header. An unchanged entry carries the fields (or their absence)
// over from the previous manifest: a change of owner alone, which leaves the
// mtime, is not seen by an incremental, as GNU tar's is not without ctime.

import { Fields, ShapeError } from "../json-shape.js";
import { AbsError, describeError } from "../errors.js";

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
  /** Owner of the stored copy; absent in manifests written before it was recorded. */
  uid?: number;
  /** Group of the stored copy; absent as `uid`. */
  gid?: number;
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
 *
 * An unchanged entry is the previous manifest's own object: it holds the
 * same fields and the sha256 to carry over, and a copy per entry is what an
 * unchanged tree of many files would pay for. `deleted` is in the previous
 * tree's order.
 */
export function planBackup(previous: Manifest | null, scanned: readonly ManifestEntry[]): Plan {
  if (previous === null) return { store: [...scanned], unchanged: [], deleted: [] };
  return planInPlace(previous.tree, scanned) ?? planByPath(previous.tree, scanned);
}

/**
 * The plan when the tree holds the same paths in the same order as before
 * (the scan's order is stable, so this is any backup where nothing was added
 * or deleted), found without a lookup; null otherwise.
 */
function planInPlace(
  tree: readonly ManifestEntry[],
  scanned: readonly ManifestEntry[],
): Plan | null {
  if (tree.length !== scanned.length) return null;
  const plan: Plan = { store: [], unchanged: [], deleted: [] };
  for (let i = 0; i < scanned.length; i++) {
    const old = tree[i];
    const entry = scanned[i];
    if (old.path !== entry.path) return null;
    if (changed(old, entry)) plan.store.push(entry);
    else plan.unchanged.push(old);
  }
  return plan;
}

function planByPath(tree: readonly ManifestEntry[], scanned: readonly ManifestEntry[]): Plan {
  const before = new Map<string, ManifestEntry>();
  for (const e of tree) before.set(e.path, e);
  const plan: Plan = { store: [], unchanged: [], deleted: [] };
  const seen = new Set<string>();
  for (const entry of scanned) {
    seen.add(entry.path);
    const old = before.get(entry.path);
    if (old === undefined || changed(old, entry)) plan.store.push(entry);
    else plan.unchanged.push(old);
  }
  for (const e of tree) if (!seen.has(e.path)) plan.deleted.push(e.path);
  return plan;
}

export function serializeManifest(m: Manifest): string {
  return JSON.stringify(m) + "\n";
}

/**
 * Parses a manifest file's text; throws AbsError BAD_ARGUMENT naming the file
 * and field.
 *
 * A manifest holds an entry per path of the tree, and an incremental reads
 * one before anything else: a well-formed one is checked in one pass with
 * plain comparisons (`readManifest`). Anything that pass does not accept is
 * read again field by field (`readManifestByField`), which throws the error
 * naming the field; the two accept the same manifests.
 */
export function parseManifest(text: string, file: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AbsError("BAD_ARGUMENT", `${file}: not a manifest (${describeError(err)})`, {
      context: { file },
    });
  }
  const manifest = readManifest(value);
  if (manifest !== null) return manifest;
  try {
    return readManifestByField(value);
  } catch (err) {
    if (err instanceof ShapeError) {
      throw new AbsError("BAD_ARGUMENT", `${file}: ${err.field}: ${err.why}`, {
        context: { file, field: err.field },
      });
    }
    throw err;
  }
}

/**
 * A path component that is empty, "." or "..", or a NUL anywhere: "", "/a",
 * "a//b", "a/", "./a", "a/../b" all hold one.
 */
const UNSAFE_PATH = /(?:^|\/)\.{0,2}(?:\/|$)|\0/;

/** A relative path that cannot step outside the root it is joined to. */
export function isSafeRelativePath(p: string): boolean {
  return !UNSAFE_PATH.test(p);
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max;
}

function isStrings(v: unknown): v is string[] {
  if (!Array.isArray(v)) return false;
  for (const s of v) if (typeof s !== "string") return false;
  return true;
}

const MAX = Number.MAX_SAFE_INTEGER;
const MIN = Number.MIN_SAFE_INTEGER;
/** The largest uid or gid chown(2) takes ((uid_t)-1 means "unchanged"). */
const MAX_ID = 0xfffffffe;

/** The manifest if `value` is a valid one, else null (see `readManifestByField` for why). */
function readManifest(value: unknown): Manifest | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const { version, level, createdAt, archive, previous, tree, stored, deleted } = value as Record<
    string,
    unknown
  >;
  if (
    version !== MANIFEST_VERSION ||
    (level !== "full" && level !== "incremental") ||
    !isInt(createdAt, 0, MAX) ||
    typeof archive !== "string" ||
    archive === "" ||
    (previous !== null && (typeof previous !== "string" || previous === "")) ||
    !Array.isArray(tree) ||
    !isStrings(stored) ||
    !isStrings(deleted)
  ) {
    return null;
  }
  const entries: ManifestEntry[] = [];
  for (const item of tree as unknown[]) {
    const entry = readEntry(item);
    if (entry === null) return null;
    entries.push(entry);
  }
  return { version, level, createdAt, archive, previous, tree: entries, stored, deleted };
}

/** A tree entry if `item` is a valid one, else null. A new object: unknown keys are dropped. */
function readEntry(item: unknown): ManifestEntry | null {
  if (typeof item !== "object" || item === null || Array.isArray(item)) return null;
  const { path, type, size, mtime, mode, sha256, target, uid, gid } = item as Record<
    string,
    unknown
  >;
  if (
    typeof path !== "string" ||
    !isSafeRelativePath(path) ||
    (type !== "file" && type !== "directory" && type !== "symlink") ||
    !isInt(size, 0, MAX) ||
    !isInt(mtime, MIN, MAX) ||
    !isInt(mode, 0, 0o7777) ||
    (sha256 !== null && typeof sha256 !== "string") ||
    (target !== null && typeof target !== "string") ||
    (uid !== undefined && !isInt(uid, 0, MAX_ID)) ||
    (gid !== undefined && !isInt(gid, 0, MAX_ID))
  ) {
    return null;
  }
  const entry: ManifestEntry = { path, type, size, mtime, mode, sha256, target };
  if (uid !== undefined) entry.uid = uid;
  if (gid !== undefined) entry.gid = gid;
  return entry;
}

/** The manifest read field by field: throws ShapeError naming the first bad field. */
function readManifestByField(value: unknown): Manifest {
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
    tree: f.objects("tree", readEntryByField),
    stored: strings(f, "stored"),
    deleted: strings(f, "deleted"),
  };
}

function strings(f: Fields, key: string): string[] {
  return f.array(key).map((v, i) => {
    if (typeof v !== "string") throw new ShapeError(`${key}[${i}]`, "expected a string");
    return v;
  });
}

function readEntryByField(f: Fields): ManifestEntry {
  const path = f.string("path", { nonEmpty: true });
  if (!isSafeRelativePath(path))
    throw new ShapeError(`${f.prefix}.path`, `"${path}" is not a safe relative path`);
  const type = f.oneOf("type", ["file", "directory", "symlink"] as const);
  const entry: ManifestEntry = {
    path,
    type,
    size: f.int("size", { min: 0 }),
    mtime: f.int("mtime"),
    mode: f.int("mode", { min: 0, max: 0o7777 }),
    sha256: f.raw.sha256 === null ? null : f.string("sha256"),
    target: f.raw.target === null ? null : f.string("target"),
  };
  if (f.has("uid")) entry.uid = f.int("uid", { min: 0, max: MAX_ID });
  if (f.has("gid")) entry.gid = f.int("gid", { min: 0, max: MAX_ID });
  return entry;
}
