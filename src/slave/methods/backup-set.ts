// Names of the files a tar backup leaves in its destination, and how the
// previous backup and a restore chain are found from them.
//
//   <definition>-<UTC stamp>-<level>.tar[.gz]                the archive
//   <definition>-<UTC stamp>-<level>.tar[.gz].manifest.json  its manifest
//   .<final name>.partial                                    while being written
//
// The stamp is `YYYYMMDDTHHMMSSmmmZ` (UTC, milliseconds), so names sort in
// time order and two backups in the same second do not collide. The previous
// backup of a definition is the manifest with the latest `createdAt` among
// the names of that definition; a chain is followed through each manifest's
// `previous` link back to a full, all in the same directory.

import type { BigIntStats } from "node:fs";
import { open, readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { AbsError, describeError } from "../../errors.js";
import { type Manifest, parseManifest } from "../manifest.js";
import { type ManifestCache, fileIdentity } from "./manifest-cache.js";

export const MANIFEST_SUFFIX = ".manifest.json";
export const PARTIAL_SUFFIX = ".partial";

const NAME_RE = /^[A-Za-z0-9_.-]{1,255}$/;
const STAMP = "\\d{8}T\\d{9}Z";

export function checkDefinitionName(name: string | undefined): string {
  if (name === undefined || !NAME_RE.test(name) || name.startsWith(".")) {
    throw new AbsError(
      "BAD_ARGUMENT",
      `tar: the job definition name ${JSON.stringify(name ?? null)} cannot name an archive (letters, digits, - _ . expected)`,
    );
  }
  return name;
}

export function utcStamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, "0");
  return (
    `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}T` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}${p(d.getUTCMilliseconds(), 3)}Z`
  );
}

export function archiveName(
  definition: string,
  createdAt: number,
  level: "full" | "incremental",
  gzip: boolean,
): string {
  return `${definition}-${utcStamp(createdAt)}-${level}.tar${gzip ? ".gz" : ""}`;
}

export function manifestNameOf(archive: string): string {
  return archive + MANIFEST_SUFFIX;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function manifestRe(definition: string | null): RegExp {
  const name = definition === null ? "[A-Za-z0-9_.-]+" : escapeRe(definition);
  return new RegExp(`^${name}-${STAMP}-(?:full|incremental)\\.tar(?:\\.gz)?\\.manifest\\.json$`);
}

/** Leftover partial files of earlier runs of `definition` (a crash leaves only these). */
export function isPartialOf(file: string, definition: string): boolean {
  return new RegExp(
    `^\\.${escapeRe(definition)}-${STAMP}-(?:full|incremental)\\.tar(?:\\.gz)?(?:\\.manifest\\.json)?\\.partial$`,
  ).test(file);
}

export async function readManifestFile(file: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new AbsError(
      "ARCHIVE_INVALID",
      `${file}: cannot read the manifest: ${describeError(err)}`,
      {
        cause: err,
        context: { file },
      },
    );
  }
  return parseManifest(text, file);
}

/** The stamp in a manifest's name (see `manifestRe`). */
const NAME_STAMP = new RegExp(
  `-(${STAMP})-(?:full|incremental)\\.tar(?:\\.gz)?\\.manifest\\.json$`,
);

function stampOf(name: string): string {
  return NAME_STAMP.exec(name)?.[1] ?? "";
}

/**
 * The newest manifest in `dir` (of `definition`, or of any definition when
 * null), or null when there is none: the one with the latest `createdAt`, the
 * last by name among equals.
 *
 * A destination gathers one manifest per backup, each listing the whole
 * tree, and a manifest's name holds its `createdAt` (`archiveName`): the
 * newest by name is read alone, and taken when its `createdAt` is the one its
 * name says. When it is not (a manifest renamed or edited by hand), all of
 * them are read to compare their `createdAt`.
 *
 * With a `cache` (and a definition), the newest by name is taken from it
 * when it is the manifest remembered there and unchanged on disk
 * (manifest-cache.ts).
 */
export async function newestManifest(
  dir: string,
  definition: string | null,
  cache?: ManifestCache,
): Promise<{ file: string; manifest: Manifest } | null> {
  const re = manifestRe(definition);
  const names = (await readdir(dir)).filter((n) => re.test(n)).sort();
  if (names.length === 0) return null;
  // Sorted by name, then (stable) by stamp: the last is the newest by name.
  const byStamp = names.map((n) => ({ n, stamp: stampOf(n) }));
  byStamp.sort((a, b) => (a.stamp < b.stamp ? -1 : a.stamp > b.stamp ? 1 : 0));
  const last = byStamp[byStamp.length - 1];
  const file = path.join(dir, last.n);
  const manifest =
    cache === undefined || definition === null
      ? await readManifestFile(file)
      : await readThroughCache(cache, dir, definition, file);
  if (utcStamp(manifest.createdAt) === last.stamp) return { file, manifest };
  let best: { file: string; manifest: Manifest } | null = null;
  for (const n of names) {
    const file = path.join(dir, n);
    const manifest = await readManifestFile(file);
    if (best === null || manifest.createdAt >= best.manifest.createdAt) best = { file, manifest };
  }
  return best;
}

/** `file`'s manifest from `cache` when it is the one remembered there and unchanged, else from disk. */
async function readThroughCache(
  cache: ManifestCache,
  dir: string,
  definition: string,
  file: string,
): Promise<Manifest> {
  // Its identity from the open file: on NFS an open checks with the server,
  // where a stat may answer from attributes cached for up to a minute.
  let cached: Manifest | null = null;
  try {
    const handle = await open(file, "r");
    try {
      cached = cache.lookup(
        dir,
        definition,
        file,
        fileIdentity(await handle.stat({ bigint: true })),
      );
    } finally {
      await handle.close();
    }
  } catch {
    // Read below, which says why the file cannot be read.
  }
  return cached ?? readManifestFile(file);
}

/**
 * Keeps `manifest`, just written durably to `file` by a backup of
 * `definition`, in `cache`, in place of the one before: if `file` is still
 * the file that was written (`written`: its stat before it was renamed into
 * place; null if that failed), with its identity now (a rename changes its
 * ctime). Never throws: a manifest it cannot check is not kept, and the next
 * incremental reads it from disk.
 */
export async function rememberManifest(
  cache: ManifestCache,
  definition: string,
  file: string,
  manifest: Manifest,
  written: BigIntStats | null,
): Promise<void> {
  const dir = path.dirname(file);
  cache.forget(dir, definition);
  if (written === null) return;
  const now = await stat(file, { bigint: true }).catch(() => null);
  const same =
    now !== null && now.dev === written.dev && now.ino === written.ino && now.size === written.size;
  if (same) cache.remember(dir, definition, file, fileIdentity(now), manifest);
}

/**
 * Resolves a restore or verify `source`: an archive, its manifest, or a
 * directory (its newest backup). Returns the manifest's path.
 */
export async function resolveManifestPath(
  source: string,
  role: string,
): Promise<{ file: string; fromDirectory: boolean }> {
  let st;
  try {
    st = await stat(source);
  } catch (err) {
    throw new AbsError("SOURCE_MISSING", `${role} "${source}" does not exist`, {
      cause: err,
      context: { file: source, field: role },
    });
  }
  if (st.isDirectory()) {
    const newest = await newestManifest(source, null);
    if (newest === null) {
      throw new AbsError(
        "SOURCE_MISSING",
        `${role} "${source}" holds no backup (no *${MANIFEST_SUFFIX})`,
        {
          context: { file: source, field: role },
        },
      );
    }
    return { file: newest.file, fromDirectory: true };
  }
  const file = source.endsWith(MANIFEST_SUFFIX) ? source : manifestNameOf(source);
  return { file, fromDirectory: false };
}

export interface ChainLink {
  manifestFile: string;
  archiveFile: string;
  manifest: Manifest;
}

/** One backup: its manifest, checked to name the archive beside it. */
export async function loadLink(manifestFile: string): Promise<ChainLink> {
  const manifest = await readManifestFile(manifestFile);
  const archiveFile = path.join(path.dirname(manifestFile), manifest.archive);
  if (
    path.basename(manifest.archive) !== manifest.archive ||
    manifestNameOf(archiveFile) !== manifestFile
  ) {
    throw new AbsError(
      "ARCHIVE_INVALID",
      `${manifestFile}: names archive "${manifest.archive}", expected "${path.basename(manifestFile).slice(0, -MANIFEST_SUFFIX.length)}"`,
      { context: { file: manifestFile } },
    );
  }
  return { manifestFile, archiveFile, manifest };
}

/** The chain ending at `manifestFile`, full first, through the `previous` links. */
export async function loadChain(manifestFile: string): Promise<ChainLink[]> {
  const dir = path.dirname(manifestFile);
  const chain: ChainLink[] = [];
  const seen = new Set<string>();
  let file: string | null = manifestFile;
  while (file !== null) {
    if (seen.has(file)) {
      throw new AbsError(
        "ARCHIVE_INVALID",
        `${manifestFile}: the chain of previous backups loops at ${file}`,
        {
          context: { file },
        },
      );
    }
    seen.add(file);
    const link = await loadLink(file);
    const { manifest } = link;
    chain.unshift(link);
    if (manifest.level === "full") return chain;
    if (manifest.previous === null || path.basename(manifest.previous) !== manifest.previous) {
      throw new AbsError(
        "ARCHIVE_INVALID",
        `${file}: an incremental without a valid previous manifest`,
        {
          context: { file },
        },
      );
    }
    file = path.join(dir, manifest.previous);
  }
  return chain;
}
