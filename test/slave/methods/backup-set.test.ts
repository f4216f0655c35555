import { renameSync, statSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { type Manifest, serializeManifest } from "../../../src/slave/manifest.js";
import {
  archiveName,
  manifestNameOf,
  newestManifest,
  rememberManifest,
} from "../../../src/slave/methods/backup-set.js";
import { ManifestCache } from "../../../src/slave/methods/manifest-cache.js";
import { tempDir } from "../../helpers/tmp.js";

/** Writes the manifest of a backup of `definition` made at `createdAt`; returns its name. */
function put(
  dir: string,
  definition: string,
  createdAt: number,
  level: Manifest["level"] = "full",
): string {
  const archive = archiveName(definition, createdAt, level, false);
  const m: Manifest = {
    version: 1,
    level,
    createdAt,
    archive,
    previous: null,
    tree: [],
    stored: [],
    deleted: [],
  };
  const name = manifestNameOf(archive);
  writeFileSync(path.join(dir, name), serializeManifest(m));
  return name;
}

const T = Date.parse("2026-03-01T00:00:00Z");

t.test("the newest manifest is the latest createdAt, of the definition or of any", async (t) => {
  const dir = tempDir(t);
  t.equal(await newestManifest(dir, "home"), null);
  put(dir, "home", T);
  const newest = put(dir, "home", T + 86_400_000, "incremental");
  put(dir, "home", T + 1000);
  const other = put(dir, "a-other", T + 2 * 86_400_000);
  writeFileSync(path.join(dir, "notes.txt"), "not a manifest");
  t.equal(path.basename((await newestManifest(dir, "home"))?.file ?? ""), newest);
  t.equal(
    path.basename((await newestManifest(dir, null))?.file ?? ""),
    other,
    "names of other definitions sort before, yet are newer",
  );
  t.equal((await newestManifest(dir, "home"))?.manifest.level, "incremental");
});

t.test("only the newest is read while it agrees with its name", async (t) => {
  const dir = tempDir(t);
  const old = put(dir, "home", T);
  writeFileSync(path.join(dir, old), "{ not json");
  const newest = put(dir, "home", T + 1000);
  t.equal(path.basename((await newestManifest(dir, "home"))?.file ?? ""), newest);
  // A broken newest is an error, as before.
  writeFileSync(path.join(dir, newest), "{ not json");
  await t.rejects(newestManifest(dir, "home"), { code: "BAD_ARGUMENT", message: /not a manifest/ });
});

t.test(
  "a newest manifest that disagrees with its name: all are compared by createdAt",
  async (t) => {
    const dir = tempDir(t);
    const a = put(dir, "home", T + 5000);
    const b = put(dir, "home", T);
    // b's content, under a name newer than a's.
    const renamed = manifestNameOf(archiveName("home", T + 9000, "full", false));
    renameSync(path.join(dir, b), path.join(dir, renamed));
    const r = await newestManifest(dir, "home");
    t.equal(path.basename(r?.file ?? ""), a);
    t.equal(r?.manifest.createdAt, T + 5000);
  },
);

t.test(
  "with a cache: the remembered manifest while its file is unchanged, else the file",
  async (t) => {
    const dir = tempDir(t);
    put(dir, "home", T);
    const newest = path.join(dir, put(dir, "home", T + 1000));
    const cache = new ManifestCache();
    // What the cache holds differs from the file only so that the test can tell them apart.
    const remembered: Manifest = {
      ...(await newestManifest(dir, "home"))!.manifest,
      stored: ["x"],
    };
    const older = path.join(dir, put(dir, "home", T + 500));
    await rememberManifest(cache, "home", newest, remembered, statSync(older, { bigint: true }));
    t.equal(cache.size, 0, "not kept: the file in place is not the one written");
    await rememberManifest(cache, "home", newest, remembered, statSync(newest, { bigint: true }));
    t.equal((await newestManifest(dir, "home", cache))?.manifest, remembered, "from the cache");
    t.same((await newestManifest(dir, "home"))?.manifest.stored, [], "without one, from the file");
    t.same(
      (await newestManifest(dir, null, cache))?.manifest.stored,
      [],
      "any definition's newest: from the file",
    );
    utimesSync(newest, new Date(T), new Date(T));
    t.same(
      (await newestManifest(dir, "home", cache))?.manifest.stored,
      [],
      "the file touched since: read again",
    );
    const later = path.join(dir, put(dir, "home", T + 2000));
    t.equal(
      (await newestManifest(dir, "home", cache))?.file,
      later,
      "a newer manifest than the remembered one is read",
    );
  },
);
