import t from "tap";
import {
  type Manifest,
  type ManifestEntry,
  isSafeRelativePath,
  parseManifest,
  planBackup,
  serializeManifest,
} from "../../src/slave/manifest.js";

const file = (
  path: string,
  size: number,
  mtime: number,
  sha256: string | null = null,
): ManifestEntry => ({
  path,
  type: "file",
  size,
  mtime,
  mode: 0o644,
  sha256,
  target: null,
});

const full: Manifest = {
  version: 1,
  level: "full",
  createdAt: 1000,
  archive: "home-1.tar",
  previous: null,
  tree: [
    {
      path: "docs",
      type: "directory",
      size: 0,
      mtime: 10,
      mode: 0o755,
      sha256: null,
      target: null,
    },
    file("docs/a.txt", 5, 10, "aa"),
    file("docs/b.txt", 7, 10, "bb"),
    {
      path: "link",
      type: "symlink",
      size: 0,
      mtime: 10,
      mode: 0o777,
      sha256: null,
      target: "docs/a.txt",
    },
  ],
  stored: ["docs", "docs/a.txt", "docs/b.txt", "link"],
  deleted: [],
};

t.test("a full backup stores everything", (t) => {
  const plan = planBackup(null, full.tree);
  t.equal(plan.store.length, 4);
  t.same(plan.deleted, []);
  t.end();
});

t.test("an incremental stores what changed, carries hashes over and records deletions", (t) => {
  const now: ManifestEntry[] = [
    {
      path: "docs",
      type: "directory",
      size: 0,
      mtime: 10,
      mode: 0o755,
      sha256: null,
      target: null,
    },
    file("docs/a.txt", 5, 10), // unchanged
    file("docs/c.txt", 1, 20), // new
    {
      path: "link",
      type: "symlink",
      size: 0,
      mtime: 10,
      mode: 0o777,
      sha256: null,
      target: "docs/c.txt",
    }, // retargeted
  ];
  const plan = planBackup(full, now);
  t.same(
    plan.store.map((e) => e.path),
    ["docs/c.txt", "link"],
  );
  t.same(
    plan.unchanged.map((e) => [e.path, e.sha256]),
    [
      ["docs", null],
      ["docs/a.txt", "aa"],
    ],
  );
  t.same(plan.deleted, ["docs/b.txt"]);
  t.end();
});

t.test("size, mtime, mode or type changes each count", (t) => {
  const base = file("f", 1, 1, "x");
  for (const [name, now] of [
    ["size", { ...base, size: 2 }],
    ["mtime", { ...base, mtime: 2 }],
    ["mode", { ...base, mode: 0o600 }],
    ["type", { ...base, type: "directory" as const }],
  ] as const) {
    const plan = planBackup({ ...full, tree: [base] }, [{ ...now, sha256: null }]);
    t.equal(plan.store.length, 1, name);
  }
  t.end();
});

t.test("manifests round-trip; hostile ones are refused by field", (t) => {
  t.same(parseManifest(serializeManifest(full), "m.json"), full);
  const bad = (change: (m: Record<string, unknown>) => void): string => {
    const m = JSON.parse(serializeManifest(full)) as Record<string, unknown>;
    change(m);
    return JSON.stringify(m);
  };
  t.throws(() => parseManifest("{", "m.json"), {
    code: "BAD_ARGUMENT",
    message: /^m\.json: not a manifest/,
  });
  t.throws(
    () =>
      parseManifest(
        bad((m) => (m.version = 2)),
        "m.json",
      ),
    {
      message: "m.json: version: manifest format 2 is not 1",
    },
  );
  t.throws(
    () =>
      parseManifest(
        bad((m) => ((m.tree as ManifestEntry[])[1].path = "../../etc/passwd")),
        "m.json",
      ),
    { message: 'm.json: tree[1].path: "../../etc/passwd" is not a safe relative path' },
  );
  t.throws(
    () =>
      parseManifest(
        bad((m) => (m.deleted = [1])),
        "m.json",
      ),
    { message: "m.json: deleted[0]: expected a string" },
  );
  t.end();
});

t.test("safe relative paths", (t) => {
  for (const p of ["a", "a/b", "a.b/.c", "..a"]) t.ok(isSafeRelativePath(p), p);
  for (const p of ["", "/etc", "a/../b", "..", "./a", "a//b", "a/", "a\0b"])
    t.notOk(isSafeRelativePath(p), JSON.stringify(p));
  t.end();
});
