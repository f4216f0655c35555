// Restores that cannot be turned against the host (issue 19, section 3),
// each attack carried out against the real restore method, as root:
//  - a user who can write the target swaps an extracted directory for a
//    symlink to a directory outside it while the restore runs;
//  - an archive whose later entry is refused must leave nothing written;
//  - a manifest whose mode or owner disagrees with the tar header;
//  - a target below a directory others can write.

import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import t from "tap";
import type { Manifest } from "../../../src/slave/manifest.js";
import { restore } from "../../../src/slave/methods/restore.js";
import { tarBackup } from "../../../src/slave/methods/tar-backup.js";
import { verify } from "../../../src/slave/methods/verify.js";
import { craftBackup, makeCtx, makeTree } from "../../fixtures/backup-tree.js";
import { NOBODY, runningAsRoot } from "../../helpers/as-nobody.js";
import { tempDir } from "../../helpers/tmp.js";

const asRoot = { skip: runningAsRoot() ? false : "the attacks need root (the tests run as root)" };

function modeOf(p: string): number {
  return statSync(p).mode & 0o7777;
}

/** Runs `script` (sh, with "$1"... set to `args`) as the user nobody. */
function shAsNobody(script: string, ...args: string[]): void {
  const r = spawnSync("/bin/sh", ["-c", script, "sh", ...args], {
    uid: NOBODY,
    gid: NOBODY,
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`as nobody: ${script}: ${r.stderr}`);
}

t.test(
  "a directory swapped for a symlink during a root restore: nothing outside the target changes",
  asRoot,
  async (t) => {
    const dir = tempDir(t);
    chmodSync(dir, 0o755); // nobody must reach the target
    const store = path.join(dir, "store");
    mkdirSync(store);
    const archive = await craftBackup(store, [
      { path: "a", type: "directory", mode: 0o777 },
      { path: "z", type: "file", content: "after a\n" },
    ]);
    // The target is nobody's: nobody may rename what the restore puts in it.
    const target = path.join(dir, "target");
    mkdirSync(target);
    chownSync(target, NOBODY, NOBODY);
    const outside = path.join(dir, "outside");
    mkdirSync(outside, { mode: 0o700 });
    chmodSync(outside, 0o700);

    // The moment the restore has made target/a (its progress says "/a"),
    // nobody moves it away and puts a symlink to `outside` in its place,
    // before the restore goes on: no race, the swap is done synchronously.
    let swapped = false;
    let clock = 0;
    const ctx = makeCtx([dir], {
      now: () => (clock += 1000), // every progress step is reported
      onProgress: (p) => {
        if (swapped || p.path !== "/a") return;
        const a = path.join(target, "a");
        if (!existsSync(a) || !lstatSync(a).isDirectory()) return; // still verifying
        shAsNobody('mv "$1/a" "$1/a.moved" && ln -s "$2" "$1/a"', target, outside);
        swapped = true;
      },
    });
    await t.rejects(restore({ source: archive, target }, ctx), {
      code: "UNSAFE_ENTRY",
      message: /"a" is no longer a directory/,
    });
    t.ok(swapped, "the swap was made during the restore");
    t.equal(modeOf(outside).toString(8), "700", "the directory outside keeps its mode");
    t.equal(statSync(outside).uid, 0, "and its owner");
  },
);

t.test("a refused entry leaves nothing written, however late it comes", asRoot, async (t) => {
  const dir = tempDir(t);
  const outside = path.join(dir, "outside");
  mkdirSync(outside);
  const store = path.join(dir, "store");
  mkdirSync(store);

  // The symlink comes from the archive itself, after a harmless first entry.
  const archive = await craftBackup(store, [
    { path: "a.txt", type: "file", content: "harmless\n" },
    { path: "link", type: "symlink", target: outside },
    { path: "link/passwd", type: "file", content: "evil\n" },
  ]);
  const target = path.join(dir, "out");
  await t.rejects(restore({ source: archive, target }, makeCtx([dir])), {
    code: "UNSAFE_ENTRY",
    message:
      /entry "link\/passwd" refused: "link" is a symlink .*nothing is extracted through a symlink/,
  });
  t.notOk(existsSync(target), "the target was not even created");
  t.notOk(existsSync(path.join(outside, "passwd")), "nothing through the symlink");

  // The symlink is already in the target.
  const store2 = path.join(dir, "store2");
  mkdirSync(store2);
  const archive2 = await craftBackup(store2, [
    { path: "a.txt", type: "file", content: "harmless\n" },
    { path: "link/passwd", type: "file", content: "evil\n" },
  ]);
  const target2 = path.join(dir, "out2");
  mkdirSync(target2);
  symlinkSync(outside, path.join(target2, "link"));
  await t.rejects(restore({ source: archive2, target: target2 }, makeCtx([dir])), {
    code: "UNSAFE_ENTRY",
    message: /entry "link\/passwd" refused: "link" is a symlink in the target/,
  });
  t.notOk(existsSync(path.join(target2, "a.txt")), "the first entry was not written");
  t.notOk(existsSync(path.join(outside, "passwd")), "nothing through the symlink");
});

async function realBackup(t: { teardown(fn: () => void): void }) {
  const dir = tempDir(t);
  const src = path.join(dir, "src");
  makeTree(src);
  // Owners to restore: a file and a directory of nobody's.
  chownSync(path.join(src, "docs/a.txt"), NOBODY, NOBODY);
  chownSync(path.join(src, "docs/deep"), NOBODY, NOBODY);
  lchownSync(path.join(src, "link"), NOBODY, 0);
  const dest = path.join(dir, "dest");
  const r = await tarBackup(
    { sources: [src], destination: dest, exclude: [], level: "full", gzip: false },
    makeCtx([dir]),
  );
  const archive = path.join(dest, r.data.archive as string);
  const manifestFile = archive + ".manifest.json";
  const rel = (p: string): string => path.join(src, p).slice(1);
  return { dir, src, archive, manifestFile, rel };
}

function editEntry(manifestFile: string, rel: string, edit: (e: Record<string, unknown>) => void) {
  const m = JSON.parse(readFileSync(manifestFile, "utf8")) as Manifest;
  const e = m.tree.find((x) => x.path === rel);
  if (e === undefined) throw new Error(`no ${rel} in ${manifestFile}`);
  edit(e as unknown as Record<string, unknown>);
  writeFileSync(manifestFile, JSON.stringify(m));
}

t.test("a root restore takes owners and modes from the manifest", asRoot, async (t) => {
  const b = await realBackup(t);
  const m = JSON.parse(readFileSync(b.manifestFile, "utf8")) as Manifest;
  const a = m.tree.find((e) => e.path === b.rel("docs/a.txt")) as unknown as Record<
    string,
    unknown
  >;
  t.match(a, { uid: NOBODY, gid: NOBODY, mode: 0o644 }, "the manifest records the owner");

  const target = path.join(b.dir, "out");
  await restore({ source: b.archive, target }, makeCtx([b.dir]));
  const out = (p: string): string => path.join(target, b.rel(p));
  t.equal(statSync(out("docs/a.txt")).uid, NOBODY, "a file's owner");
  t.equal(statSync(out("docs/deep")).uid, NOBODY, "a directory's owner");
  t.equal(statSync(out("docs/deep")).gid, NOBODY, "and group");
  t.equal(statSync(out("docs")).uid, 0);
  t.match(lstatSync(out("link")), { uid: NOBODY, gid: 0 }, "a symlink's owner");
  t.same(
    readdirSync(path.dirname(out("link"))).filter((n) => n.startsWith(".abs-restore-")),
    [],
    "the private directories the symlinks were made in are gone",
  );
  t.equal(modeOf(out("script.sh")).toString(8), "750");
});

t.test(
  "a manifest whose mode or owner disagrees with the tar header is refused before anything is written",
  asRoot,
  async (t) => {
    const cases: Array<[string, (e: Record<string, unknown>) => void, RegExp]> = [
      [
        "mode",
        (e) => (e.mode = 0o4755),
        /entry ".*docs\/a\.txt" has mode 0644 in the archive, the manifest says 4755/,
      ],
      [
        "owner",
        (e) => (e.uid = 0),
        /entry ".*docs\/a\.txt" is owned by uid 65534 in the archive, the manifest says 0/,
      ],
      [
        "group",
        (e) => (e.gid = 0),
        /entry ".*docs\/a\.txt" has gid 65534 in the archive, the manifest says 0/,
      ],
    ];
    for (const [name, edit, message] of cases) {
      const b = await realBackup(t);
      editEntry(b.manifestFile, b.rel("docs/a.txt"), edit);
      const target = path.join(b.dir, "out");
      await t.rejects(
        restore({ source: b.archive, target }, makeCtx([b.dir])),
        { code: "ARCHIVE_INVALID", message },
        name,
      );
      t.notOk(existsSync(target), `${name}: nothing written`);
      await t.rejects(verify({ archive: b.archive }, makeCtx([b.dir])), {
        code: "ARCHIVE_INVALID",
        message,
      });
    }
  },
);

t.test("a target below a directory others can write is refused as root", asRoot, async (t) => {
  const dir = tempDir(t);
  const store = path.join(dir, "store");
  mkdirSync(store);
  const archive = await craftBackup(store, [{ path: "a.txt", type: "file", content: "a\n" }]);

  const open = path.join(dir, "open");
  mkdirSync(open);
  chmodSync(open, 0o777);
  const target = path.join(open, "deeper/target");
  await t.rejects(restore({ source: archive, target }, makeCtx([dir])), {
    code: "UNSAFE_TARGET",
    message: `restore.target "${target}": "${open}" (mode 0777, owner uid 0) can be written by users other than root, who could swap what the restore writes: a restore as root refuses it`,
  });
  t.notOk(existsSync(path.join(open, "deeper")), "nothing created");

  // A sticky directory (as /tmp) is passed through when the next directory
  // on the way is root's, and refused when it is another user's (who could
  // have made it before the restore, to control what is under it).
  const sticky = path.join(dir, "sticky");
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  const squatted = path.join(sticky, "squatted");
  mkdirSync(squatted);
  chownSync(squatted, NOBODY, NOBODY);
  await t.rejects(restore({ source: archive, target: path.join(squatted, "t") }, makeCtx([dir])), {
    code: "UNSAFE_TARGET",
    message: new RegExp(
      `"${sticky}" \\(mode 1777, owner uid 0\\) can be written by users other than root`,
    ),
  });
  t.notOk(existsSync(path.join(squatted, "t")), "nothing created");
  const fine = path.join(sticky, "fine");
  await restore({ source: archive, target: fine }, makeCtx([dir]));
  t.equal(
    readFileSync(path.join(fine, "a.txt"), "utf8"),
    "a\n",
    "root's directory in a sticky one",
  );
});

t.test(
  "a manifest without owners (older ABS) still restores as root, owners from the tar headers",
  asRoot,
  async (t) => {
    const b = await realBackup(t);
    const m = JSON.parse(readFileSync(b.manifestFile, "utf8")) as Manifest;
    for (const e of m.tree) {
      delete e.uid;
      delete e.gid;
    }
    writeFileSync(b.manifestFile, JSON.stringify(m));
    const target = path.join(b.dir, "out");
    const r = await restore({ source: b.archive, target }, makeCtx([b.dir]));
    t.match(
      r.message,
      /; the owners of 9 taken from their tar headers \(the manifest records none\)$/,
    );
    t.equal(r.data.ownersFromHeaders, 9);
    t.equal(statSync(path.join(target, b.rel("docs/a.txt"))).uid, NOBODY, "a file's owner");
    t.equal(statSync(path.join(target, b.rel("docs/deep"))).uid, NOBODY, "a directory's owner");
  },
);
