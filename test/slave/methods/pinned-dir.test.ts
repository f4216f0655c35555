// pinned-dir.ts: which directories a root restore passes through, and
// directories held open so that a name is looked up in the very directory
// opened, wherever it was moved since.

import { mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { PinnedDir, openTarget, othersCanReplace } from "../../../src/slave/methods/pinned-dir.js";
import { tempDir } from "../../helpers/tmp.js";

t.test("othersCanReplace: root's and not writable by others, or sticky over root's", (t) => {
  const cases: Array<[string, { uid: number; gid: number; mode: number }, number, boolean]> = [
    ["root 0755", { uid: 0, gid: 0, mode: 0o755 }, 1000, false],
    ["root 0775, group root", { uid: 0, gid: 0, mode: 0o775 }, 1000, false],
    ["root 0775, group staff", { uid: 0, gid: 50, mode: 0o775 }, 0, true],
    ["root 0777", { uid: 0, gid: 0, mode: 0o777 }, 0, true],
    ["root 1777 (as /tmp), next is root's", { uid: 0, gid: 0, mode: 0o1777 }, 0, false],
    ["root 1777, next is a user's", { uid: 0, gid: 0, mode: 0o1777 }, 1000, true],
    ["root 1775 group staff, next is root's", { uid: 0, gid: 50, mode: 0o1775 }, 0, false],
    ["a user's 0755", { uid: 1000, gid: 1000, mode: 0o755 }, 0, true],
    ["a user's 1777", { uid: 1000, gid: 0, mode: 0o1777 }, 0, true],
  ];
  for (const [name, dir, childUid, want] of cases)
    t.equal(othersCanReplace(dir, childUid), want, name);
  t.end();
});

t.test("a directory held open: names are found in it after it was moved", async (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, "a"));
  writeFileSync(path.join(dir, "a/f"), "in a\n");
  const root = await PinnedDir.root();
  t.ok(root.pinned, "/proc/self/fd pins directories here");
  const opened = await openTarget(path.join(dir, "a"), path.join(dir, "a"), false);
  t.teardown(() => opened.dir.close());
  await root.close();
  t.same(opened.missing, []);
  t.match(opened.dir.at("f"), /^\/proc\/self\/fd\/\d+\/f$/);
  // Moved away, and a symlink to another directory put in its place.
  renameSync(path.join(dir, "a"), path.join(dir, "a.moved"));
  mkdirSync(path.join(dir, "elsewhere"));
  writeFileSync(path.join(dir, "elsewhere/f"), "elsewhere\n");
  symlinkSync(path.join(dir, "elsewhere"), path.join(dir, "a"));
  t.equal(readFileSync(opened.dir.at("f"), "utf8"), "in a\n", "still the directory opened");
  await t.rejects(opened.dir.open("nothing"), { code: "ENOENT" });
});

t.test("openTarget: the missing part, and a symlink on the way refused", async (t) => {
  const dir = tempDir(t);
  const want = path.join(dir, "x/y");
  const opened = await openTarget(want, want, false);
  t.same(opened.missing, ["x", "y"]);
  t.equal(opened.dir.shown, dir);
  await opened.dir.close();
  mkdirSync(path.join(dir, "real"));
  symlinkSync(path.join(dir, "real"), path.join(dir, "link"));
  const through = path.join(dir, "link/t");
  await t.rejects(openTarget(through, through, false), {
    code: "UNSAFE_TARGET",
    message: `restore.target "${through}": "${path.join(dir, "link")}" is not a directory (a symlink or a file took its place since its real path was read?)`,
  });
});

t.test("without /proc: refused as root, by path otherwise", async (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, "a"));
  writeFileSync(path.join(dir, "a/f"), "in a\n");
  const want = path.join(dir, "a");
  const noProc = (): Promise<PinnedDir> => PinnedDir.root(path.join(dir, "no-proc"));
  await t.rejects(openTarget(want, want, true, noProc), {
    code: "UNSAFE_TARGET",
    message: `restore.target "${want}": /proc/self/fd does not lead to open directories here (is /proc mounted?); a restore as root needs it to never follow a symlink swapped in while it runs`,
  });
  const opened = await openTarget(want, want, false, noProc);
  t.teardown(() => opened.dir.close());
  t.notOk(opened.dir.pinned);
  t.equal(opened.dir.at("f"), path.join(dir, "a/f"), "names by path");
  t.equal(readFileSync(opened.dir.at("f"), "utf8"), "in a\n");
});
