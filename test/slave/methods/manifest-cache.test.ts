import t from "tap";
import type { Manifest, ManifestEntry } from "../../../src/slave/manifest.js";
import { ManifestCache } from "../../../src/slave/methods/manifest-cache.js";

function manifest(entries: number): Manifest {
  const tree: ManifestEntry[] = Array.from({ length: entries }, (_, i) => ({
    path: `src/f${i}`,
    mtime: 1,
    mode: 0o644,
    sha256: null,
    type: "file" as const,
    size: 0,
    target: null,
  }));
  return {
    version: 1,
    level: "full",
    createdAt: 0,
    archive: "a.tar",
    previous: null,
    tree,
    stored: [],
    deleted: [],
  };
}

t.test("a manifest is found only under its slot, file and identity", (t) => {
  const c = new ManifestCache();
  const m = manifest(3);
  c.remember("/d", "home", "/d/a.json", "1:2:3", m);
  t.equal(c.lookup("/d", "home", "/d/a.json", "1:2:3"), m, "the same object");
  t.equal(c.lookup("/d", "home", "/d/a.json", "1:2:4"), null, "the file changed");
  t.equal(c.lookup("/d", "home", "/d/b.json", "1:2:3"), null, "another file");
  t.equal(c.lookup("/d", "etc", "/d/a.json", "1:2:3"), null, "another definition");
  t.equal(c.lookup("/e", "home", "/d/a.json", "1:2:3"), null, "another destination");
  t.equal(c.size, 3);
  t.end();
});

t.test("a new manifest replaces its slot's last one; forget drops it", (t) => {
  const c = new ManifestCache();
  c.remember("/d", "home", "/d/a.json", "x", manifest(3));
  const b = manifest(5);
  c.remember("/d", "home", "/d/b.json", "y", b);
  t.equal(c.lookup("/d", "home", "/d/a.json", "x"), null);
  t.equal(c.lookup("/d", "home", "/d/b.json", "y"), b);
  t.equal(c.size, 5);
  c.forget("/d", "home");
  c.forget("/d", "never");
  t.equal(c.lookup("/d", "home", "/d/b.json", "y"), null);
  t.equal(c.size, 0);
  t.end();
});

t.test("at most maxEntries in all: the oldest slots go first", (t) => {
  const c = new ManifestCache(10);
  const a = manifest(4);
  const b = manifest(4);
  const d = manifest(4);
  c.remember("/d", "a", "/d/a", "1", a);
  c.remember("/d", "b", "/d/b", "1", b);
  t.equal(c.size, 8);
  c.remember("/d", "d", "/d/d", "1", d);
  t.equal(c.lookup("/d", "a", "/d/a", "1"), null, "the oldest dropped");
  t.equal(c.lookup("/d", "b", "/d/b", "1"), b);
  t.equal(c.lookup("/d", "d", "/d/d", "1"), d);
  t.equal(c.size, 8);
  c.remember("/d", "big", "/d/big", "1", manifest(11));
  t.equal(c.lookup("/d", "big", "/d/big", "1"), null, "a tree over the limit is not kept");
  t.equal(c.size, 8, "and drops nothing else");
  c.remember("/d", "b", "/d/b2", "1", manifest(11));
  t.equal(c.lookup("/d", "b", "/d/b", "1"), null, "its slot's old manifest is gone all the same");
  t.equal(c.size, 4);
  // The night the source was not mounted: one entry, and every path before deleted.
  const emptied = { ...manifest(1), deleted: Array.from({ length: 20 }, (_, i) => `src/f${i}`) };
  c.remember("/d", "e", "/d/e", "1", emptied);
  t.equal(c.lookup("/d", "e", "/d/e", "1"), null, "deleted paths count too");
  c.remember("/d", "s", "/d/s", "1", { ...manifest(3), stored: ["src/f0", "src/f1"] });
  t.equal(c.size, 9, "and stored ones");
  t.end();
});
