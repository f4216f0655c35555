// Reading an archive back, entry by entry, and checking it against its
// manifest: shared by verify (read and compare) and restore (compare while
// extracting). node-tar's Parser in strict mode turns a bad header checksum,
// a truncated archive or a broken gzip stream into an error; the checker
// adds what only the manifest knows: the set of entries, types, sizes,
// modes, owners (when the manifest records them), symlink targets and the
// sha256 of every file. Header and manifest are written from the same stat
// (tar-backup.ts): where they disagree, one of them was changed since.
//
// Entries are handled one at a time: the parser emits the next entry only
// after the current one is consumed, so memory stays at one chunk.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { Parser, type ReadEntry } from "tar";
import { AbsError, describeError } from "../../errors.js";
import { type Manifest, type ManifestEntry, isSafeRelativePath } from "../manifest.js";
import { canceledError } from "./method-context.js";

function octal(mode: number): string {
  return mode.toString(8).padStart(4, "0");
}

export function invalid(archive: string, why: string): AbsError {
  return new AbsError("ARCHIVE_INVALID", `${archive}: ${why}`, { context: { file: archive } });
}

/** Reads `file`, calling `handle` for each entry in order; the entry must be consumed. */
export async function readArchive(
  file: string,
  signal: AbortSignal,
  handle: (entry: ReadEntry) => Promise<void>,
): Promise<void> {
  if (signal.aborted) throw canceledError(signal, `reading ${file}`);
  await new Promise<void>((resolve, reject) => {
    const input = createReadStream(file);
    const parser = new Parser({ strict: true });
    let done = false;
    let chain: Promise<void> = Promise.resolve();
    const fail = (err: unknown): void => {
      if (done) return;
      done = true;
      signal.removeEventListener("abort", onAbort);
      input.destroy();
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    const onAbort = (): void => fail(canceledError(signal, `reading ${file}`));
    signal.addEventListener("abort", onAbort, { once: true });
    input.on("error", (err) => fail(invalid(file, `cannot read: ${err.message}`)));
    parser.on("error", (err: unknown) =>
      fail(invalid(file, `not a valid archive: ${describeError(err)}`)),
    );
    parser.on("entry", (entry: ReadEntry) => {
      chain = chain.then(async () => {
        if (done) {
          entry.resume();
          return;
        }
        await handle(entry);
      });
      chain.catch(fail);
    });
    parser.on("end", () => {
      chain.then(() => {
        if (done) return;
        done = true;
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, fail);
    });
    input.pipe(parser);
  });
}

/** The path of an entry as the manifest names it (no trailing "/"). */
export function entryPath(entry: ReadEntry): string {
  return entry.path.replace(/\/+$/, "");
}

const TYPES: Record<string, ManifestEntry["type"]> = {
  File: "file",
  OldFile: "file",
  ContiguousFile: "file",
  Directory: "directory",
  SymbolicLink: "symlink",
};

/** Compares the entries of one archive with its manifest as they go by. */
export class ArchiveChecker {
  private readonly expected: Map<string, ManifestEntry>;
  private readonly seen = new Set<string>();

  constructor(
    private readonly archive: string,
    manifest: Manifest,
  ) {
    const tree = new Map(manifest.tree.map((e) => [e.path, e]));
    this.expected = new Map();
    for (const p of manifest.stored) {
      const e = tree.get(p);
      if (e === undefined) throw invalid(archive, `manifest stores "${p}" but its tree lacks it`);
      this.expected.set(p, e);
    }
  }

  /** Checks an entry's header; returns what the manifest says of it. */
  header(entry: ReadEntry): ManifestEntry {
    const p = entryPath(entry);
    if (!isSafeRelativePath(p)) {
      throw new AbsError(
        "UNSAFE_ENTRY",
        `${this.archive}: entry "${entry.path}" is not a safe relative path (absolute, empty, "." or "..")`,
        { context: { file: this.archive } },
      );
    }
    const want = this.expected.get(p);
    if (want === undefined)
      throw invalid(this.archive, `entry "${p}" is not in the manifest (extra entry)`);
    if (this.seen.has(p)) throw invalid(this.archive, `entry "${p}" appears twice`);
    this.seen.add(p);
    const type = TYPES[entry.type];
    if (type !== want.type) {
      throw invalid(
        this.archive,
        `entry "${p}" is a ${entry.type}, the manifest says ${want.type}`,
      );
    }
    if (type === "file" && entry.size !== want.size) {
      throw invalid(
        this.archive,
        `entry "${p}" has ${entry.size} bytes, the manifest says ${want.size}`,
      );
    }
    if (type === "symlink" && (entry.linkpath ?? "") !== want.target) {
      throw invalid(
        this.archive,
        `entry "${p}" links to "${entry.linkpath ?? ""}", the manifest says "${want.target ?? ""}"`,
      );
    }
    const mode = (entry.mode ?? 0) & 0o7777;
    if (mode !== want.mode) {
      throw invalid(
        this.archive,
        `entry "${p}" has mode ${octal(mode)} in the archive, the manifest says ${octal(want.mode)}`,
      );
    }
    if (want.uid !== undefined && entry.uid !== want.uid) {
      throw invalid(
        this.archive,
        `entry "${p}" is owned by uid ${entry.uid ?? "(none)"} in the archive, the manifest says ${want.uid}`,
      );
    }
    if (want.gid !== undefined && entry.gid !== want.gid) {
      throw invalid(
        this.archive,
        `entry "${p}" has gid ${entry.gid ?? "(none)"} in the archive, the manifest says ${want.gid}`,
      );
    }
    return want;
  }

  /** Checks a file's content hash once it has been read. */
  content(want: ManifestEntry, sha256: string): void {
    if (want.sha256 !== sha256) {
      throw invalid(
        this.archive,
        `entry "${want.path}": sha256 ${sha256} does not match the manifest's ${want.sha256 ?? "(none)"}`,
      );
    }
  }

  /** After the last entry: every stored path must have been seen. */
  finish(): void {
    const missing = [...this.expected.keys()].filter((p) => !this.seen.has(p));
    if (missing.length > 0) {
      const shown = missing
        .slice(0, 5)
        .map((p) => `"${p}"`)
        .join(", ");
      throw invalid(
        this.archive,
        `missing ${missing.length} entr${missing.length === 1 ? "y" : "ies"} of the manifest: ${shown}${missing.length > 5 ? ", ..." : ""}`,
      );
    }
  }
}

/** Reads an entry's content to its end, hashing it. */
export async function hashEntry(
  entry: ReadEntry,
  onChunk?: (c: Buffer) => Promise<void> | void,
): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of entry as AsyncIterable<Buffer>) {
    hash.update(chunk);
    if (onChunk !== undefined) await onChunk(chunk);
  }
  return hash.digest("hex");
}
