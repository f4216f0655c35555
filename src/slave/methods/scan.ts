// The scan of a tar backup's sources: lstat only (symlinks are archived as
// links, never followed), depth first with each directory before its
// contents and names in byte order, so the archive extracts in one pass.
//
// Paths are relative to "/": the source /home/alice gives entries
// "home/alice", "home/alice/notes.txt", ... as GNU tar names them when given
// absolute paths. Synchronous fs calls with a yield every 256 entries.
// Sockets, FIFOs and devices are left out with a note; a
// path that vanishes while the tree is walked is left out with a warning.

import type { Stats } from "node:fs";
import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import path from "node:path";
import { AbsError } from "../../errors.js";
import type { ManifestEntry } from "../manifest.js";
import type { ExcludeMatcher } from "./exclude.js";
import { throwIfCanceled } from "./method.js";

export interface ScanResult {
  entries: ManifestEntry[];
  /** Paths left out because they are sockets, FIFOs or devices. */
  special: string[];
  /** Paths that vanished or could not be read during the scan, with why. */
  warnings: string[];
  /** Paths left out by an exclude pattern (or being the destination). */
  excluded: number;
}

export function relativeOf(abs: string): string {
  return abs.replace(/^\/+/, "");
}

function vanished(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

export function entryOf(rel: string, st: Stats, target: string | null): ManifestEntry | null {
  // Literal objects, not spreads: this runs for every path of every scan.
  // The key order is the manifest's.
  const mtime = Math.floor(st.mtimeMs);
  const mode = st.mode & 0o7777;
  if (st.isFile())
    return { path: rel, mtime, mode, sha256: null, type: "file", size: st.size, target: null };
  if (st.isDirectory())
    return { path: rel, mtime, mode, sha256: null, type: "directory", size: 0, target: null };
  if (st.isSymbolicLink())
    return { path: rel, mtime, mode, sha256: null, type: "symlink", size: 0, target };
  return null;
}

/**
 * Walks `sources` (absolute, normalized). A source missing at the start is
 * SOURCE_MISSING; `skip` says whether an absolute path is left out.
 */
export async function scanSources(
  sources: readonly string[],
  skip: ExcludeMatcher,
  signal: AbortSignal,
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
        `tar.sources: "${abs}" cannot be read: ${(err as Error).message}`,
        {
          cause: err,
          context: { file: abs, field: "tar.sources" },
        },
      );
    }
  }
  let visited = 0;
  const visit = async (abs: string, st: Stats): Promise<void> => {
    if ((++visited & 255) === 0) {
      // The calls below are synchronous (a thread-pool round trip per lstat
      // costs more than the lstat): let timers and sockets run now and then.
      await new Promise((r) => setImmediate(r));
      throwIfCanceled(signal, "tar backup");
    }
    if (skip(abs)) {
      result.excluded++;
      return;
    }
    const rel = relativeOf(abs);
    let target: string | null = null;
    if (st.isSymbolicLink()) {
      try {
        target = readlinkSync(abs);
      } catch (err) {
        if (!vanished(err)) throw err;
        result.warnings.push(`${abs}: vanished during the scan`);
        return;
      }
    }
    const entry = rel === "" ? null : entryOf(rel, st, target);
    if (entry === null && rel !== "") {
      result.special.push(abs);
      return;
    }
    if (entry !== null) result.entries.push(entry);
    if (!st.isDirectory()) return;
    let names: string[];
    try {
      names = readdirSync(abs);
    } catch (err) {
      if (!vanished(err)) throw err;
      result.warnings.push(`${abs}: vanished during the scan`);
      return;
    }
    names.sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : a === b ? 0 : 1));
    for (const name of names) {
      const child = abs === "/" ? `/${name}` : `${abs}/${name}`;
      let cst: Stats;
      try {
        cst = lstatSync(child);
      } catch (err) {
        if (!vanished(err)) throw err;
        result.warnings.push(`${child}: vanished during the scan`);
        continue;
      }
      await visit(child, cst);
    }
  };
  for (const { abs, st } of starts) await visit(path.resolve(abs), st);
  return result;
}
