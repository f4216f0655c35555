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

t.test("each hostile field is refused by name", (t) => {
  const bad = (
    change: (m: Record<string, unknown>, e: Record<string, unknown>) => void,
  ): string => {
    const m = JSON.parse(serializeManifest(full)) as Record<string, unknown>;
    change(m, (m.tree as Record<string, unknown>[])[1]);
    return JSON.stringify(m);
  };
  const cases: Array<
    [string, (m: Record<string, unknown>, e: Record<string, unknown>) => void, string]
  > = [
    ["tree not an array", (m) => (m.tree = 1), "tree: expected an array, got 1"],
    [
      "level",
      (m) => (m.level = "partial"),
      'level: expected one of full, incremental, got "partial"',
    ],
    ["createdAt < 0", (m) => (m.createdAt = -1), "createdAt: expected an integer >= 0, got -1"],
    [
      "createdAt not an integer",
      (m) => (m.createdAt = 1.5),
      "createdAt: expected an integer >= 0, got 1.5",
    ],
    ["archive empty", (m) => (m.archive = ""), 'archive: expected a non-empty string, got ""'],
    ["previous empty", (m) => (m.previous = ""), 'previous: expected a non-empty string, got ""'],
    ["previous missing", (m) => delete m.previous, "previous: expected a string, got nothing"],
    ["stored not an array", (m) => (m.stored = "a"), 'stored: expected an array, got "a"'],
    ["stored item", (m) => (m.stored = ["a", null]), "stored[1]: expected a string"],
    [
      "entry not an object",
      (m) => ((m.tree as unknown[])[2] = ["docs"]),
      'tree[2]: expected an object, got ["docs"]',
    ],
    [
      "entry null",
      (m) => ((m.tree as unknown[])[0] = null),
      "tree[0]: expected an object, got null",
    ],
    ["path missing", (_, e) => delete e.path, "tree[1].path: expected a string, got nothing"],
    ["path empty", (_, e) => (e.path = ""), 'tree[1].path: expected a non-empty string, got ""'],
    [
      "path absolute",
      (_, e) => (e.path = "/etc/passwd"),
      'tree[1].path: "/etc/passwd" is not a safe relative path',
    ],
    [
      "path with an empty component",
      (_, e) => (e.path = "a//b"),
      'tree[1].path: "a//b" is not a safe relative path',
    ],
    [
      "path ending in ..",
      (_, e) => (e.path = "a/.."),
      'tree[1].path: "a/.." is not a safe relative path',
    ],
    [
      "type",
      (_, e) => (e.type = "fifo"),
      'tree[1].type: expected one of file, directory, symlink, got "fifo"',
    ],
    ["size < 0", (_, e) => (e.size = -1), "tree[1].size: expected an integer >= 0, got -1"],
    [
      "size too big",
      (_, e) => (e.size = 2 ** 53),
      "tree[1].size: expected an integer >= 0, got 9007199254740992",
    ],
    ["mtime a string", (_, e) => (e.mtime = "10"), 'tree[1].mtime: expected an integer, got "10"'],
    [
      "mode above 0o7777",
      (_, e) => (e.mode = 0o10000),
      "tree[1].mode: expected an integer from 0 to 4095, got 4096",
    ],
    ["sha256 a number", (_, e) => (e.sha256 = 1), "tree[1].sha256: expected a string, got 1"],
    ["sha256 missing", (_, e) => delete e.sha256, "tree[1].sha256: expected a string, got nothing"],
    ["target a number", (_, e) => (e.target = 0), "tree[1].target: expected a string, got 0"],
    [
      "uid < 0",
      (_, e) => (e.uid = -1),
      "tree[1].uid: expected an integer from 0 to 4294967294, got -1",
    ],
    [
      "uid (uid_t)-1",
      (_, e) => (e.uid = 2 ** 32 - 1),
      "tree[1].uid: expected an integer from 0 to 4294967294, got 4294967295",
    ],
    [
      "gid a string",
      (_, e) => (e.gid = "0"),
      'tree[1].gid: expected an integer from 0 to 4294967294, got "0"',
    ],
  ];
  for (const [name, change, message] of cases) {
    t.throws(
      () => parseManifest(bad(change), "m.json"),
      { code: "BAD_ARGUMENT", message: `m.json: ${message}` },
      name,
    );
  }
  t.throws(() => parseManifest("[]", "m.json"), {
    message: "m.json: (top level): expected an object, got []",
  });
  t.end();
});

t.test("unknown fields are dropped; entries are new objects in the manifest's key order", (t) => {
  const m = JSON.parse(serializeManifest(full)) as Record<string, unknown>;
  m.extra = 1;
  (m.tree as Record<string, unknown>[])[1].note = "x";
  const parsed = parseManifest(JSON.stringify(m), "m.json");
  t.same(parsed, full);
  t.same(Object.keys(parsed), Object.keys(full));
  t.same(Object.keys(parsed.tree[1]), [
    "path",
    "type",
    "size",
    "mtime",
    "mode",
    "sha256",
    "target",
  ]);
  t.end();
});

t.test("a tree scanned in another order, or with paths added and removed, plans the same", (t) => {
  const now = full.tree.map((e) => ({ ...e, sha256: null }));
  const inOrder = planBackup(full, now);
  t.same(inOrder, { store: [], unchanged: full.tree, deleted: [] });
  t.equal(inOrder.unchanged[1], full.tree[1], "the previous entry itself, sha256 and all");
  const reversed = planBackup(full, [...now].reverse());
  t.same(reversed, { store: [], unchanged: [...full.tree].reverse(), deleted: [] });
  const added = file("docs/a0.txt", 1, 30);
  const moved = planBackup(full, [now[0], now[1], added, now[3]]);
  t.same(moved, {
    store: [added],
    unchanged: [full.tree[0], full.tree[1], full.tree[3]],
    deleted: ["docs/b.txt"],
  });
  const gone = planBackup(full, [now[0], now[1]]);
  t.same(gone, {
    store: [],
    unchanged: [full.tree[0], full.tree[1]],
    deleted: ["docs/b.txt", "link"],
  });
  const dup = planBackup({ ...full, tree: [file("f", 1, 1, "first"), file("f", 1, 1, "last")] }, [
    file("f", 1, 1),
  ]);
  t.same(
    dup,
    { store: [], unchanged: [file("f", 1, 1, "last")], deleted: [] },
    "a path listed twice: the last",
  );
  t.end();
});

t.test("safe relative paths", (t) => {
  for (const p of ["a", "a/b", "a.b/.c", "..a", "a..", "...", "a/.../b", ".a/b.", "a b/\\/c"])
    t.ok(isSafeRelativePath(p), p);
  for (const p of [
    "",
    "/",
    "/etc",
    "a/../b",
    "..",
    ".",
    "./a",
    "a/.",
    "a/..",
    "a//b",
    "a/",
    "a\0b",
    "\0",
  ])
    t.notOk(isSafeRelativePath(p), JSON.stringify(p));
  t.end();
});

t.test("owner and group: read when present; a manifest without them (older) still reads", (t) => {
  const withOwners: Manifest = {
    ...full,
    tree: full.tree.map((e, i) => ({ ...e, uid: 1000 + i, gid: 0 })),
  };
  const parsed = parseManifest(serializeManifest(withOwners), "m.json");
  t.same(parsed, withOwners);
  t.same(Object.keys(parsed.tree[1]), [
    "path",
    "type",
    "size",
    "mtime",
    "mode",
    "sha256",
    "target",
    "uid",
    "gid",
  ]);
  const older = parseManifest(serializeManifest(full), "m.json");
  t.equal(older.tree[1].uid, undefined, "no owner: a root restore takes the tar header's");
  t.notOk("uid" in older.tree[1]);
  t.end();
});
