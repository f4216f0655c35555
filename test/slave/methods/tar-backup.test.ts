import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
  unlinkSync,
} from "node:fs";
import {
  type ReadableFile,
  openForReading,
} from "../../../src/slave/methods/source-file-reader.js";
import path from "node:path";
import t from "tap";
import { AbsError } from "../../../src/errors.js";
import { runMethod } from "../../../src/slave/methods/method.js";
import { tarBackup } from "../../../src/slave/methods/tar-backup.js";
import { restore } from "../../../src/slave/methods/restore.js";
import { readManifestFile } from "../../../src/slave/methods/backup-set.js";
import { serializeManifest } from "../../../src/slave/manifest.js";
import { ManifestCache } from "../../../src/slave/methods/manifest-cache.js";
import { gnuTar, makeCtx, makeTree, snapshot } from "../../fixtures/backup-tree.js";
import { tempDir } from "../../helpers/tmp.js";

const str = (v: unknown): string => {
  if (typeof v !== "string") throw new Error(`expected a string, got ${JSON.stringify(v)}`);
  return v;
};

const params = (src: string, dest: string, more: object = {}) => ({
  sources: [src],
  destination: dest,
  exclude: [] as string[],
  level: "full" as const,
  gzip: false,
  ...more,
});

for (const gzip of [false, true]) {
  t.test(`full backup (gzip ${gzip}): GNU tar lists and extracts it byte for byte`, async (t) => {
    const dir = tempDir(t);
    const src = path.join(dir, "src");
    const dest = path.join(dir, "dest");
    makeTree(src);
    const ctx = makeCtx([dir]);
    const r = await tarBackup(params(src, dest, { gzip }), ctx);
    t.match(r.message, /^full backup home-\d{8}T\d{9}Z-full\.tar/);
    const archive = path.join(dest, str(r.data.archive));
    t.ok(existsSync(archive + ".manifest.json"));
    t.same(
      readdirSync(dest).filter((n) => n.startsWith(".")),
      [],
      "no partial files left",
    );
    const listed = gnuTar(["-tf", archive]).trim().split("\n");
    const rel = src.slice(1);
    t.ok(listed.includes(`${rel}/`), "source directory listed");
    for (const p of ["docs/a.txt", "docs/deep/b.bin", "empty", "script.sh", "link"]) {
      t.ok(listed.includes(`${rel}/${p}`), `lists ${p}`);
    }
    const out = path.join(dir, "out");
    mkdirSync(out);
    gnuTar(["-xpf", archive, "-C", out]);
    t.same(snapshot(path.join(out, rel)), snapshot(src));
    t.ok(ctx.progress.length >= 1, "progress reported");
  });
}

t.test(
  "incremental: only changes stored, deletions recorded, chain restores the tree",
  async (t) => {
    const dir = tempDir(t);
    const src = path.join(dir, "src");
    const dest = path.join(dir, "dest");
    makeTree(src);
    let clock = Date.parse("2026-01-01T00:00:00Z");
    const ctx = () => makeCtx([dir], { now: () => (clock += 1000) });
    const full = await tarBackup(params(src, dest, { level: "incremental" }), ctx());
    t.equal(full.data.level, "full", "no previous backup: a full one");
    const atFull = snapshot(src);

    writeFileSync(path.join(src, "docs/a.txt"), "alpha changed\n");
    unlinkSync(path.join(src, "empty"));
    rmSync(path.join(src, "docs/deep"), { recursive: true });
    writeFileSync(path.join(src, "new.txt"), "new\n");
    const inc = await tarBackup(params(src, dest, { level: "incremental" }), ctx());
    t.equal(inc.data.level, "incremental");
    const rel = src.slice(1);
    const m = await readManifestFile(path.join(dest, str(inc.data.manifest)));
    t.equal(m.previous, full.data.manifest);
    t.same(
      [...m.deleted].sort(),
      [`${rel}/docs/deep`, `${rel}/docs/deep/b.bin`, `${rel}/empty`].sort(),
    );
    const listed = gnuTar(["-tf", path.join(dest, str(inc.data.archive))])
      .trim()
      .split("\n");
    t.ok(listed.includes(`${rel}/docs/a.txt`) && listed.includes(`${rel}/new.txt`));
    t.notOk(listed.includes(`${rel}/script.sh`), "unchanged file not stored");
    t.notOk(listed.some((p) => p.includes("b.bin")));
    const atInc = snapshot(src);

    // Restore the chain up to the incremental, and the full alone.
    const out = path.join(dir, "out");
    await restore({ source: dest, target: out }, makeCtx([dir]));
    t.same(snapshot(path.join(out, rel)), atInc, "chain equals the source at the incremental");
    const out2 = path.join(dir, "out2");
    await restore(
      { source: path.join(dest, str(full.data.archive)), target: out2 },
      makeCtx([dir]),
    );
    t.same(snapshot(path.join(out2, rel)), atFull, "the full alone equals the source at the full");
  },
);

t.test("a big file's backup lets the event loop turn at every buffer", async (t) => {
  // Heartbeats, a cancel from the master and progress reports all need the
  // event loop; the file reads between two buffers are synchronous, and the
  // writer thread's answers can be taken without a turn of the loop.
  const dir = tempDir(t);
  const src = path.join(dir, "src");
  mkdirSync(src);
  const mib = 32;
  writeFileSync(path.join(src, "big"), "");
  truncateSync(path.join(src, "big"), mib << 20);
  let turns = 0;
  let turnsAtLastRead = -1;
  let streak = 0;
  let longestStreak = 0;
  let counting = true;
  const count = (): void => {
    turns++;
    if (counting) setImmediate(count);
  };
  // Reads slower than the writer thread's writes (some hashing each time,
  // no sleep), as from a slow disk: its answers are then always waiting.
  const openFile = (p: string): ReadableFile => {
    const f = openForReading(p);
    return {
      ...f,
      read: (buf, off, len, pos) => {
        // Reads (a buffer each) in a row with no turn of the loop between.
        streak = turns === turnsAtLastRead ? streak + 1 : 1;
        turnsAtLastRead = turns;
        longestStreak = Math.max(longestStreak, streak);
        const n = f.read(buf, off, len, pos);
        for (let i = 0; i < 4; i++) createHash("sha256").update(buf.subarray(off, off + n));
        return n;
      },
    };
  };
  setImmediate(count);
  await tarBackup(params(src, path.join(dir, "dest")), makeCtx([dir], { openFile }));
  counting = false;
  t.ok(longestStreak > 0, "the file was read");
  t.ok(longestStreak <= 2, `at most 2 buffers read with no turn of the loop, saw ${longestStreak}`);
});

t.test("an incremental with nothing changed stores nothing and reads no file", async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, "src");
  const dest = path.join(dir, "dest");
  makeTree(src);
  let opens = 0;
  const openFile = (p: string) => {
    opens++;
    return openForReading(p);
  };
  await tarBackup(params(src, dest), makeCtx([dir], { openFile }));
  t.equal(opens, 5, "the full opens each file once");
  opens = 0;
  const r = await tarBackup(
    params(src, dest, { level: "incremental" }),
    makeCtx([dir], { openFile }),
  );
  t.equal(opens, 0, "no file opened");
  t.equal(r.data.stored, 0);
  t.equal(r.data.deleted, 0);
});

/** A cache that counts the manifests it gives back. */
class CountingCache extends ManifestCache {
  hits = 0;
  override lookup(dir: string, definition: string, file: string, identity: string) {
    const m = super.lookup(dir, definition, file, identity);
    if (m !== null) this.hits++;
    return m;
  }
}

t.test(
  "an incremental's base: the manifest written last, from memory; one edited on disk since, from disk",
  async (t) => {
    const dir = tempDir(t);
    const src = path.join(dir, "src");
    const dest = path.join(dir, "dest");
    makeTree(src);
    let clock = Date.parse("2026-01-01T00:00:00Z");
    const manifestCache = new CountingCache();
    const ctx = () => makeCtx([dir], { now: () => (clock += 1000), manifestCache });
    await tarBackup(params(src, dest), ctx());
    const unchanged = await tarBackup(params(src, dest, { level: "incremental" }), ctx());
    t.equal(manifestCache.hits, 1, "the full's manifest, from memory");
    t.equal(unchanged.data.stored, 0);
    // As if docs/a.txt had been a different file: the edited manifest says it
    // must be stored again, the one in memory that it need not. The edit keeps
    // the size and the file's mtime: only its ctime tells.
    const file = path.join(dest, str(unchanged.data.manifest));
    const before = statSync(file, { bigint: true });
    const times = path.join(dir, "times");
    writeFileSync(times, "");
    execFileSync("touch", ["-r", file, times]); // to the nanosecond, as JavaScript cannot
    const m = await readManifestFile(file);
    const rel = `${src.slice(1)}/docs/a.txt`;
    const a = m.tree.find((e) => e.path === rel);
    if (a === undefined) throw new Error(`${rel} is not in the manifest`);
    const mtime = a.mtime % 10 === 9 ? a.mtime - 1 : a.mtime + 1; // as many digits
    const edited = { ...m, tree: m.tree.map((e) => (e === a ? { ...e, mtime } : e)) };
    writeFileSync(file, serializeManifest(edited));
    execFileSync("touch", ["-r", times, file]);
    const after = statSync(file, { bigint: true });
    t.same(
      [after.ino, after.size, after.mtimeNs],
      [before.ino, before.size, before.mtimeNs],
      "the same file, size and mtime",
    );
    const r = await tarBackup(params(src, dest, { level: "incremental" }), ctx());
    t.equal(manifestCache.hits, 1, "read from disk");
    t.equal(r.data.stored, 1);
    const incr = await readManifestFile(path.join(dest, str(r.data.manifest)));
    t.same(incr.stored, [rel]);
    const again = await tarBackup(params(src, dest, { level: "incremental" }), ctx());
    t.equal(manifestCache.hits, 2, "the one just written, from memory");
    t.equal(again.data.stored, 0);
  },
);

t.test("exclude patterns and special files", async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, "src");
  const dest = path.join(dir, "dest");
  makeTree(src);
  mkfifoOrSkip(path.join(src, "fifo"));
  const r = await tarBackup(
    params(src, dest, { exclude: ["*.log", "deep", `${src}/script.*`] }),
    makeCtx([dir]),
  );
  const listed = gnuTar(["-tf", path.join(dest, str(r.data.archive))]);
  t.notMatch(listed, /skip\.log|deep|script\.sh|fifo/);
  t.match(listed, /docs\/a\.txt/);
  t.equal(r.data.excluded, 3);
  if (existsSync(path.join(src, "fifo"))) t.same(r.data.skippedSpecial, [path.join(src, "fifo")]);
});

function mkfifoOrSkip(p: string): void {
  try {
    execFileSync("mkfifo", [p]);
  } catch {
    // No mkfifo: the special-file part is skipped.
  }
}

t.test("paths outside the allowed list are refused", async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, "src");
  makeTree(src);
  await t.rejects(tarBackup(params(src, "/var/tmp/x"), makeCtx([dir])), {
    code: "PATH_NOT_ALLOWED",
    message: `tar.destination "/var/tmp/x" is outside the slave's allowed paths: ${dir}`,
  });
  await t.rejects(tarBackup(params("/etc", path.join(dir, "d")), makeCtx([dir])), {
    code: "PATH_NOT_ALLOWED",
  });
});

t.test("a missing source is an error; a file vanishing mid-backup is skipped", async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, "src");
  const dest = path.join(dir, "dest");
  makeTree(src);
  await t.rejects(tarBackup(params(path.join(dir, "nope"), dest), makeCtx([dir])), {
    code: "SOURCE_MISSING",
  });
  const victim = path.join(src, "docs/a.txt");
  const openFile = (p: string) => {
    if (p === victim) unlinkSync(victim);
    return openForReading(p);
  };
  const r = await tarBackup(params(src, dest), makeCtx([dir], { openFile }));
  t.match(r.data.warnings, [/docs\/a\.txt: vanished/]);
  t.notMatch(gnuTar(["-tf", path.join(dest, str(r.data.archive))]), /a\.txt/);
});

t.test("cancel mid-backup removes the partial archive", async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, "src");
  const dest = path.join(dir, "dest");
  makeTree(src);
  const ctx = makeCtx([dir]);
  let n = 0;
  const openFile = (p: string) => {
    if (++n === 2) ctx.controller.abort();
    return openForReading(p);
  };
  await t.rejects(tarBackup(params(src, dest), { ...ctx, openFile }), { code: "CANCELED" });
  t.same(readdirSync(dest), [], "nothing left in the destination");
});

t.test("a destination that is full or read-only: clear error, no partial file", async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, "src");
  makeTree(src);
  writeFileSync(path.join(src, "big"), Buffer.alloc(600_000, 1));
  const dest = path.join(dir, "small");
  mkdirSync(dest);
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", dest], { stdio: "ignore" });
  } catch {
    t.comment("skipped: cannot mount a tmpfs here (not root?)");
    return;
  }
  t.teardown(() => execFileSync("umount", [dest]));
  await t.rejects(tarBackup(params(src, dest), makeCtx([dir])), {
    code: "BACKUP_IO",
    message: /no space left on the device/,
  });
  t.same(readdirSync(dest), []);
  execFileSync("mount", ["-o", "remount,ro", dest]);
  await t.rejects(tarBackup(params(src, dest), makeCtx([dir])), {
    code: "BACKUP_IO",
    message: /read-only/,
  });
});

t.test("bad parameters are named", async (t) => {
  await t.rejects(runMethod("tar", { sources: ["rel"], destination: "/x" }, makeCtx(["/"])), {
    code: "BAD_ARGUMENT",
    message: 'tar: params.sources[0]: "rel" is not absolute',
  });
  await t.rejects(runMethod("tar", { sources: ["/a"] }, makeCtx(["/"])), {
    code: "BAD_ARGUMENT",
    message: /^tar: params\.destination: expected a string/,
  });
  await t.rejects(
    runMethod(
      "tar",
      { sources: ["/a"], destination: "/b" },
      makeCtx(["/"], { definition: undefined }),
    ),
    {
      code: "BAD_ARGUMENT",
      message: /job definition name null cannot name an archive/,
    },
  );
});

t.test("leftover partial files of an earlier run are removed; runMethod dispatches", async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, "src");
  const dest = path.join(dir, "dest");
  makeTree(src);
  mkdirSync(dest);
  const left = path.join(dest, ".home-20250101T000000000Z-full.tar.partial");
  writeFileSync(left, "junk");
  const other = path.join(dest, ".other-20250101T000000000Z-full.tar.partial");
  writeFileSync(other, "junk");
  const r = await runMethod("tar", { sources: [src], destination: dest }, makeCtx([dir]));
  t.ok(r.data.archive);
  t.notOk(existsSync(left));
  t.ok(existsSync(other), "another definition's partial file is not touched");
  t.ok(AbsError);
  void chmodSync;
});

t.test(
  "long names (pax), a file spanning several write buffers, odd sizes: GNU tar extracts them byte for byte, the manifest hashes match",
  async (t) => {
    const dir = tempDir(t);
    const src = path.join(dir, "src");
    const dest = path.join(dir, "dest");
    makeTree(src);
    // A path far beyond ustar's 100 + 155 bytes, and a long symlink target.
    const deep = path.join(src, ...Array.from({ length: 6 }, (_, i) => `${"d".repeat(50)}${i}`));
    mkdirSync(deep, { recursive: true });
    writeFileSync(path.join(deep, `${"f".repeat(120)}.txt`), "deep\n");
    symlinkSync("x".repeat(150), path.join(src, "longlink"));
    // 2.5 MiB + 3 bytes: crosses the writer's 1 MiB buffers mid-file and ends unaligned.
    const big = Buffer.alloc(2.5 * 1024 * 1024 + 3);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 10)) & 0xff;
    writeFileSync(path.join(src, "big.bin"), big);
    writeFileSync(path.join(src, "odd"), "x".repeat(513));
    const r = await tarBackup(params(src, dest), makeCtx([dir]));
    const archive = path.join(dest, str(r.data.archive));
    const out = path.join(dir, "out");
    mkdirSync(out);
    gnuTar(["-xpf", archive, "-C", out]);
    t.same(snapshot(path.join(out, src.slice(1))), snapshot(src));
    const m = await readManifestFile(archive + ".manifest.json");
    const rel = src.slice(1);
    const bigEntry = m.tree.find((e) => e.path === `${rel}/big.bin`);
    t.equal(bigEntry?.sha256, createHash("sha256").update(big).digest("hex"));
    t.equal(bigEntry?.size, big.length);
  },
);

t.test(
  "an incremental: a changed file that vanishes before it is read is recorded deleted",
  async (t) => {
    const dir = tempDir(t);
    const src = path.join(dir, "src");
    const dest = path.join(dir, "dest");
    makeTree(src);
    let clock = Date.parse("2026-01-01T00:00:00Z");
    const ctx = (more = {}) => makeCtx([dir], { now: () => (clock += 1000), ...more });
    await tarBackup(params(src, dest), ctx());
    const victim = path.join(src, "docs/a.txt");
    writeFileSync(victim, "alpha changed\n");
    writeFileSync(path.join(src, "new.txt"), "new\n");
    const openFile = (p: string) => {
      if (p === victim) unlinkSync(victim);
      return openForReading(p);
    };
    const r = await tarBackup(params(src, dest, { level: "incremental" }), ctx({ openFile }));
    t.match(r.data.warnings, [/docs\/a\.txt: vanished/]);
    const m = await readManifestFile(path.join(dest, str(r.data.manifest)));
    const rel = src.slice(1);
    t.same(m.deleted, [`${rel}/docs/a.txt`]);
    t.same(
      m.stored,
      [`${rel}`, `${rel}/new.txt`],
      "the source directory (a file added) and the new file",
    );
    t.notOk(m.tree.some((e) => e.path === `${rel}/docs/a.txt`));
    t.ok(m.tree.find((e) => e.path === `${rel}/new.txt`)?.sha256, "the new file's hash");
    t.ok(
      m.tree.find((e) => e.path === `${rel}/script.sh`)?.sha256,
      "an unchanged file's hash carried",
    );
    t.same(
      m.tree.map((e) => e.path),
      [...m.tree.map((e) => e.path)].sort(),
      "in scan order",
    );
  },
);
