// The `verify` method: re-reads an archive (through its gzip layer, if
// any), recomputes the sha256 of every stored file and compares the whole
// archive with its manifest. Any difference is ARCHIVE_INVALID naming the
// archive, the entry and the mismatch.

import path from "node:path";
import type { ReadEntry } from "tar";
import type { JsonObject } from "../../json-shape.js";
import type { ManifestEntry } from "../manifest.js";
import { checkAllowed } from "./allowed-paths.js";
import { ArchiveChecker, entryPath, hashEntry, readArchive } from "./archive-reader.js";
import { type ChainLink, loadChain, loadLink, resolveManifestPath } from "./backup-set.js";
import type { MethodContext, MethodResult } from "./method-context.js";
import { absolute, readParams } from "./params.js";
import { ProgressThrottle } from "./progress.js";

/** The `verify` parameters, as `VerifyMethod` without `kind`. */
export interface VerifyParams {
  /**
   * An archive or its manifest (that archive alone), or a directory (its
   * newest backup and every archive of the chain it needs).
   */
  archive: string;
}

export function readVerifyParams(params: JsonObject): VerifyParams {
  return readParams("verify", params, (f) => ({ archive: absolute(f, "archive") }));
}

/**
 * Checks one archive against its manifest; returns the files and bytes read.
 * `onEntry` gets each entry's manifest entry and header, in archive order,
 * once checked.
 */
export async function verifyArchive(
  link: ChainLink,
  signal: AbortSignal,
  progress: ProgressThrottle,
  onEntry?: (want: ManifestEntry, header: ReadEntry) => void,
): Promise<{ entries: number; bytes: number }> {
  const checker = new ArchiveChecker(link.archiveFile, link.manifest);
  let entries = 0;
  let bytes = 0;
  await readArchive(link.archiveFile, signal, async (entry) => {
    const want = checker.header(entry);
    onEntry?.(want, entry);
    const where = "/" + entryPath(entry);
    if (want.type === "file") {
      checker.content(
        want,
        await hashEntry(entry, (c) => {
          bytes += c.length;
          progress.add(0, c.length, where);
        }),
      );
    } else {
      entry.resume();
    }
    entries++;
    progress.add(1, 0, where);
  });
  checker.finish();
  return { entries, bytes };
}

export async function verify(params: VerifyParams, ctx: MethodContext): Promise<MethodResult> {
  await checkAllowed(params.archive, "verify.archive", ctx.allowedPaths);
  const resolved = await resolveManifestPath(params.archive, "verify.archive");
  // A directory verifies the whole chain its newest backup needs; a named
  // archive only itself.
  const links = resolved.fromDirectory
    ? await loadChain(resolved.file)
    : [await loadLink(resolved.file)];
  const progress = new ProgressThrottle(
    (p) => ctx.onProgress(p),
    () => ctx.now(),
  );
  let entries = 0;
  let bytes = 0;
  for (const link of links) {
    const r = await verifyArchive(link, ctx.signal, progress);
    entries += r.entries;
    bytes += r.bytes;
  }
  progress.flush();
  const names = links.map((l) => path.basename(l.archiveFile));
  return {
    message: `verified ${names.length === 1 ? names[0] : `${names.length} archives (${names.join(", ")})`}: ${entries} entries, ${bytes} bytes match the manifest`,
    data: { archives: names, entries, bytes },
  };
}
