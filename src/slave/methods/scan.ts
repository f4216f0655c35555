// The scan of a tar backup's sources: lstat only (symlinks are archived as
// links, never followed), depth first with each directory before its
// contents and names in byte order, so the archive extracts in one pass.
//
// Paths are relative to "/": the source /home/alice gives entries
// "home/alice", "home/alice/notes.txt", ... as GNU tar names them when given
// absolute paths. Synchronous fs calls with a yield every 256 entries.
// Sockets, FIFOs and devices are left out with a note; a
// path that vanishes while the tree is walked is left out with a warning.
// An excluded path is left out before its lstat: excluding a big or slow
// subtree costs nothing.
//
// The lstat of every path is most of an incremental's time when little
// changed (the mtime, size and mode of each file are needed, so it cannot be
// skipped). So a directory's children are lstat in one call (lstat-names.ts,
// in C where it is built), their numbers kept on the stack with no object
// per path, and around it the walk makes no promise, closure or buffer per
// path.

import type { Stats } from "node:fs";
import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { AbsError, describeError } from "../../errors.js";
import { type ManifestEntry, changed } from "../manifest.js";
import type { ExcludeMatcher } from "./exclude.js";
import {
  LSTAT_ERRNO,
  LSTAT_FIELDS,
  LSTAT_MODE,
  LSTAT_MTIME,
  LSTAT_SIZE,
  type LstatNames,
  lstatError,
  lstatNames,
} from "./lstat-names.js";
import { throwIfCanceled } from "./method-context.js";

export interface ScanResult {
  /**
   * The tree in walk order, without sha256; an entry the same as the
   * `previous` entry at its position (see `changed`) is that entry, sha256
   * included.
   */
  entries: ManifestEntry[];
  /** Paths left out because they are sockets, FIFOs or devices. */
  special: string[];
  /** Paths that vanished or could not be read during the scan, with why. */
  warnings: string[];
  /** Paths left out by an exclude pattern (or being the destination). */
  excluded: number;
}

const { ENOENT, ENOTDIR } = os.constants.errno;

/** Whether a failure with this errno means the path vanished while the tree was walked. */
function vanishedErrno(errno: number): boolean {
  return errno === ENOENT || errno === ENOTDIR;
}

/** vanishedErrno for a thrown system error (Node's errno is negative). */
function vanished(err: unknown): boolean {
  const errno = (err as NodeJS.ErrnoException).errno;
  return errno !== undefined && vanishedErrno(-errno);
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/**
 * The manifest entry of a path from its lstat numbers (`mtime` in whole
 * milliseconds); null for sockets, FIFOs and devices.
 */
export function entryOf(
  rel: string,
  mode: number,
  size: number,
  mtime: number,
  target: string | null,
): ManifestEntry | null {
  // Literal objects, not spreads: this runs for every path of every scan.
  // The key order is the manifest's.
  const perm = mode & 0o7777;
  switch (mode & S_IFMT) {
    case S_IFREG:
      return { path: rel, mtime, mode: perm, sha256: null, type: "file", size, target: null };
    case S_IFDIR:
      return {
        path: rel,
        mtime,
        mode: perm,
        sha256: null,
        type: "directory",
        size: 0,
        target: null,
      };
    case S_IFLNK:
      return { path: rel, mtime, mode: perm, sha256: null, type: "symlink", size: 0, target };
    default:
      return null;
  }
}

/** entryOf from a Stats (an fstat of a file being archived). */
export function entryOfStats(rel: string, st: Stats, target: string | null): ManifestEntry | null {
  return entryOf(rel, st.mode, st.size, Math.floor(st.mtimeMs), target);
}

/**
 * `names` in the byte order of their UTF-8 (GNU tar's and `LC_ALL=C ls`'s).
 * JavaScript compares UTF-16 code units, which is the same order unless a
 * name holds a character from U+D800 up (surrogate pairs sort below
 * U+E000-U+FFFF in UTF-16, above them in UTF-8): only those directories pay
 * for a comparison of bytes.
 */
export function sortByBytes(names: string[]): string[] {
  for (const n of names) {
    if (HIGH_UTF16.test(n))
      return names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  }
  return names.sort();
}

const HIGH_UTF16 = /[\uD800-\uFFFF]/;

/**
 * Walks `sources` (absolute, normalized). A source missing at the start is
 * SOURCE_MISSING; `skip` says whether an absolute path is left out.
 *
 * `previous` is the tree of the backup before, if any: a tree walked twice
 * comes out in the same order, and an unchanged entry is taken from it, so
 * that of an unchanged tree nothing the walk makes outlives it (the garbage
 * collector copies what lives, and would copy a second tree).
 */
export async function scanSources(
  sources: readonly string[],
  skip: ExcludeMatcher,
  signal: AbortSignal,
  previous: readonly ManifestEntry[] = [],
  lstat: LstatNames = lstatNames,
): Promise<ScanResult> {
  const result: ScanResult = { entries: [], special: [], warnings: [], excluded: 0 };
  // A source inside another source would be archived twice.
  const sorted = [...new Set(sources)].sort();
  const roots = sorted.filter(
    (s) => !sorted.some((o) => o !== s && (o === "/" || s.startsWith(o + "/"))),
  );
  const starts: Array<{ abs: string; st: Stats }> = [];
  for (const abs of roots) {
    try {
      starts.push({ abs, st: lstatSync(abs) });
    } catch (err) {
      throw new AbsError(
        "SOURCE_MISSING",
        `tar.sources: "${abs}" cannot be read: ${describeError(err)}`,
        {
          cause: err,
          context: { file: abs, field: "tar.sources" },
        },
      );
    }
  }
  // Depth first without recursion: the paths still to visit, the next one
  // last, and their lstat (TODO_FIELDS numbers each). A directory's children
  // are lstat in byte order, then turned around on the stack so that they
  // come off in that order, each before the children it pushes in turn.
  const todo: string[] = [];
  const todoStat: number[] = [];
  for (let i = starts.length - 1; i >= 0; i--) {
    const abs = path.resolve(starts[i].abs);
    if (skip(abs)) {
      result.excluded++;
      continue;
    }
    const st = starts[i].st;
    todo.push(abs);
    todoStat.push(st.mode, st.size, Math.floor(st.mtimeMs));
  }
  let visited = 0;
  for (;;) {
    const abs = todo.pop();
    if (abs === undefined) break;
    // Popped in the reverse of the order they were pushed in. todoStat has
    // TODO_FIELDS numbers for each path of todo, so these are never undefined.
    const mtime = todoStat.pop() as number;
    const size = todoStat.pop() as number;
    const mode = todoStat.pop() as number;
    if ((++visited & 255) === 0) {
      // The calls below are synchronous (a thread-pool round trip per lstat
      // costs more than the lstat): let timers and sockets run now and then.
      await new Promise((r) => setImmediate(r));
      throwIfCanceled(signal, "tar backup");
    }
    // `abs` is normalized: one leading "/", which GNU tar strips.
    const rel = abs.slice(1);
    let target: string | null = null;
    if ((mode & S_IFMT) === S_IFLNK) {
      try {
        target = readlinkSync(abs);
      } catch (err) {
        if (!vanished(err)) throw err;
        result.warnings.push(`${abs}: vanished during the scan`);
        continue;
      }
    }
    if (rel !== "") {
      const entry = entryOf(rel, mode, size, mtime, target);
      if (entry === null) {
        result.special.push(abs);
        continue;
      }
      const old = previous[result.entries.length] as ManifestEntry | undefined;
      const same = old !== undefined && old.path === entry.path && !changed(old, entry);
      result.entries.push(same ? old : entry);
    }
    if ((mode & S_IFMT) !== S_IFDIR) continue;
    let names: string[];
    try {
      names = readdirSync(abs);
    } catch (err) {
      if (!vanished(err)) throw err;
      result.warnings.push(`${abs}: vanished during the scan`);
      continue;
    }
    sortByBytes(names);
    const base = abs === "/" ? "/" : `${abs}/`;
    // Excluded names are left out before the lstat.
    let kept = 0;
    for (const name of names) {
      if (skip(base + name)) result.excluded++;
      else names[kept++] = name;
    }
    names.length = kept;
    // No call for an empty directory: the C version would open it for nothing.
    if (kept === 0) continue;
    const stats = lstat(abs, names);
    const from = todo.length;
    for (let i = 0; i < names.length; i++) {
      const child = base + names[i];
      const f = i * LSTAT_FIELDS;
      const errno = stats[f + LSTAT_ERRNO];
      if (errno !== 0) {
        if (!vanishedErrno(errno)) throw lstatError(errno, child);
        result.warnings.push(`${child}: vanished during the scan`);
        continue;
      }
      todo.push(child);
      todoStat.push(stats[f + LSTAT_MODE], stats[f + LSTAT_SIZE], stats[f + LSTAT_MTIME]);
    }
    reverseFrom(todo, from, 1);
    reverseFrom(todoStat, from * TODO_FIELDS, TODO_FIELDS);
  }
  return result;
}

/** Numbers per path on the scan's stack: mode, size, mtime. */
const TODO_FIELDS = 3;

/**
 * Reverses the order of the records of `a` from index `from` to its end, a
 * record being `width` consecutive items that keep their order.
 */
function reverseFrom<T>(a: T[], from: number, width: number): void {
  for (let i = from, j = a.length - width; i < j; i += width, j -= width) {
    for (let k = 0; k < width; k++) {
      const x = a[i + k];
      a[i + k] = a[j + k];
      a[j + k] = x;
    }
  }
}
