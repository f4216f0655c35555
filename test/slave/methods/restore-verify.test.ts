import {
  existsSync,
  mkdirSync,
  openSync,
  readSync,
  writeSync,
  closeSync,
  statSync,
  truncateSync,
  writeFileSync,
  readFileSync,
} from "node:fs";
import path from "node:path";
import t from "tap";
import type { Manifest } from "../../../src/slave/manifest.js";
import { restore } from "../../../src/slave/methods/restore.js";
import { tarBackup } from "../../../src/slave/methods/tar-backup.js";
import { verify } from "../../../src/slave/methods/verify.js";
import { craftBackup, makeCtx, makeTree, snapshot } from "../../fixtures/backup-tree.js";
import { tempDir } from "../../helpers/tmp.js";

const str = (v: unknown): string => {
  if (typeof v !== "string") throw new Error(`expected a string, got ${JSON.stringify(v)}`);
  return v;
};

async function backup(t: { teardown(fn: () => void): void }, gzip = false) {
  const dir = tempDir(t);
  const src = path.join(dir, "src");
  const dest = path.join(dir, "dest");
  makeTree(src);
  const r = await tarBackup(
    { sources: [src], destination: dest, exclude: [], level: "full", gzip },
    makeCtx([dir]),
  );
  return { dir, src, dest, archive: path.join(dest, str(r.data.archive)) };
}

t.test("verify passes on a good archive, plain and gzip", async (t) => {
  for (const gzip of [false, true]) {
    const b = await backup(t, gzip);
    const r = await verify({ archive: b.archive }, makeCtx([b.dir]));
    t.match(r.message, /^verified .*: 9 entries, \d+ bytes match the manifest$/);
    const r2 = await verify({ archive: b.dest }, makeCtx([b.dir]));
    t.equal(r2.data.entries, 9);
  }
});

function flipByte(file: string, at: number): void {
  const fd = openSync(file, "r+");
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b.writeUInt8(b.readUInt8(0) ^ 0xff, 0);
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

t.test("a corrupted archive fails verify and restore refuses it", async (t) => {
  const b = await backup(t);
  // Flip a byte inside the content of docs/a.txt ("alpha\n").
  const data = readFileSync(b.archive);
  const at = data.indexOf("alpha\n");
  t.ok(at > 0);
  flipByte(b.archive, at);
  await t.rejects(verify({ archive: b.archive }, makeCtx([b.dir])), {
    code: "ARCHIVE_INVALID",
    message: new RegExp(
      `^${b.archive}: entry ".*docs/a.txt": sha256 [0-9a-f]{64} does not match the manifest's [0-9a-f]{64}$`,
    ),
  });
  const target = path.join(b.dir, "out");
  await t.rejects(restore({ source: b.archive, target }, makeCtx([b.dir])), {
    code: "ARCHIVE_INVALID",
  });
  t.notOk(existsSync(target), "nothing extracted");
  // A header byte: the checksum fails.
  flipByte(b.archive, at);
  flipByte(b.archive, 10);
  await t.rejects(verify({ archive: b.archive }, makeCtx([b.dir])), { code: "ARCHIVE_INVALID" });
});

t.test("a truncated archive and a corrupt gzip fail verify", async (t) => {
  const b = await backup(t);
  truncateSync(b.archive, statSync(b.archive).size - 3000);
  await t.rejects(verify({ archive: b.archive }, makeCtx([b.dir])), { code: "ARCHIVE_INVALID" });
  const g = await backup(t, true);
  flipByte(g.archive, Math.floor(statSync(g.archive).size / 2));
  await t.rejects(verify({ archive: g.archive }, makeCtx([g.dir])), { code: "ARCHIVE_INVALID" });
});

t.test("a missing or extra entry is named", async (t) => {
  const b = await backup(t);
  const mf = b.archive + ".manifest.json";
  const m = JSON.parse(readFileSync(mf, "utf8")) as Manifest;
  const extra = m.stored.pop() ?? "";
  writeFileSync(mf, JSON.stringify(m));
  await t.rejects(verify({ archive: b.archive }, makeCtx([b.dir])), {
    message: `${b.archive}: entry "${extra}" is not in the manifest (extra entry)`,
  });
  m.stored.push(extra);
  m.tree.push({
    path: "x/missing",
    type: "file",
    size: 1,
    mtime: 0,
    mode: 420,
    sha256: "00",
    target: null,
  });
  m.stored.push("x/missing");
  writeFileSync(mf, JSON.stringify(m));
  await t.rejects(verify({ archive: b.archive }, makeCtx([b.dir])), {
    message: `${b.archive}: missing 1 entry of the manifest: "x/missing"`,
  });
});

t.test("restore refuses entries that escape the target", async (t) => {
  const cases: Array<[string, Parameters<typeof craftBackup>[1], RegExp]> = [
    [
      "dot-dot",
      [{ path: "../x", type: "file", content: "evil" }],
      /entry "\.\.\/x" is not a safe relative path/,
    ],
    [
      "absolute",
      [{ path: "/abs", type: "file", content: "evil" }],
      /entry "\/abs" is not a safe relative path/,
    ],
    [
      "through a symlink",
      [
        { path: "link", type: "symlink", target: "/etc" },
        { path: "link/passwd", type: "file", content: "evil" },
      ],
      /entry "link\/passwd" refused: "link" is a symlink restored from .*evil-.*\.tar; nothing is extracted through a symlink$/,
    ],
  ];
  for (const [name, entries, message] of cases) {
    const dir = tempDir(t);
    const store = path.join(dir, "store");
    mkdirSync(store);
    const archive = await craftBackup(store, entries);
    const target = path.join(dir, "out");
    await t.rejects(
      restore({ source: archive, target }, makeCtx([dir])),
      { code: "UNSAFE_ENTRY", message },
      name,
    );
    t.notOk(existsSync(path.join(dir, "x")), `${name}: nothing outside the target`);
  }
  t.notOk(readFileSync("/etc/passwd", "utf8").includes("evil"));
});

t.test("restore refuses a target outside the allowed paths", async (t) => {
  const b = await backup(t);
  await t.rejects(
    restore({ source: b.archive, target: "/var/tmp/abs-restore" }, makeCtx([b.dir])),
    {
      code: "PATH_NOT_ALLOWED",
    },
  );
  const target = path.join(b.dir, "ok");
  await restore({ source: b.archive, target }, makeCtx([b.dir]));
  t.same(snapshot(path.join(target, b.src.slice(1))), snapshot(b.src));
});
