// The manifest a tar backup has just written, kept parsed in memory for the
// next incremental of the same definition into the same destination, which
// would otherwise read it back and parse it: for 10,000 files, 2 MB of JSON,
// 7 to 25 ms, and 10,000 objects for the collector, in a backup that with
// nothing changed takes 50 ms in all.
//
// A manifest is taken from here only while the file on disk is still the one
// written: its identity (device, inode, size, mtime and ctime, in
// nanoseconds), read from the open file, is compared first, so a manifest
// that was replaced, edited, copied back or restored by hand is read from
// disk again. (The times are only as fine as the file system's clock: on one
// that keeps whole seconds, an edit in place that keeps the size, made within
// the second the backup wrote the file, would go unseen.) Only the base of
// an incremental comes from here: `verify` and `restore` check what is on
// disk, and always read it.
//
// One manifest per destination and definition (a new one replaces the one
// before), and at most `maxPaths` paths (tree, stored and deleted) in all,
// the oldest dropped first: a tree of millions of files is not held between
// backups.

import type { BigIntStats } from "node:fs";
import type { Manifest } from "../manifest.js";

/** About 25 MB at most, held between backups. */
export const MAX_CACHED_PATHS = 100_000;

/** What says that a file is still the one that was written. */
export function fileIdentity(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

interface Cached {
  file: string;
  identity: string;
  manifest: Manifest;
}

export class ManifestCache {
  /** By `slotOf(dir, definition)`, oldest first (a Map keeps insertion order). */
  private readonly slots = new Map<string, Cached>();
  private paths = 0;

  constructor(private readonly maxPaths = MAX_CACHED_PATHS) {}

  /** The manifest of `file` if it is the one remembered for the slot and is still `identity`. */
  lookup(dir: string, definition: string, file: string, identity: string): Manifest | null {
    const c = this.slots.get(slotOf(dir, definition));
    return c !== undefined && c.file === file && c.identity === identity ? c.manifest : null;
  }

  /** Keeps `manifest`, just written to `file` (now `identity`), in place of the slot's last one. */
  remember(
    dir: string,
    definition: string,
    file: string,
    identity: string,
    manifest: Manifest,
  ): void {
    this.forget(dir, definition);
    const size = pathsOf(manifest);
    if (size > this.maxPaths) return;
    for (const [slot, c] of this.slots) {
      if (this.paths + size <= this.maxPaths) break;
      this.slots.delete(slot);
      this.paths -= pathsOf(c.manifest);
    }
    this.slots.set(slotOf(dir, definition), { file, identity, manifest });
    this.paths += size;
  }

  /** Drops the slot's manifest, if any. */
  forget(dir: string, definition: string): void {
    const slot = slotOf(dir, definition);
    const c = this.slots.get(slot);
    if (c === undefined) return;
    this.slots.delete(slot);
    this.paths -= pathsOf(c.manifest);
  }

  /** Paths held, in all. */
  get size(): number {
    return this.paths;
  }
}

/** What a manifest holds: a tree entry or a path of `stored` or `deleted` each. */
function pathsOf(m: Manifest): number {
  return m.tree.length + m.stored.length + m.deleted.length;
}

function slotOf(dir: string, definition: string): string {
  // A NUL is in neither a path nor a definition name.
  return `${dir}\0${definition}`;
}
