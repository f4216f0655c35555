import { execFileSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { compileExclude } from "../../../src/slave/methods/exclude.js";
import { scanSources, sortByBytes } from "../../../src/slave/methods/scan.js";
import { tempDir } from "../../helpers/tmp.js";

t.test("names sort in the byte order of their UTF-8", (t) => {
  t.same(sortByBytes(["b", "B", "a", "_", "a.txt", "a-b"]), ["B", "_", "a", "a-b", "a.txt", "b"]);
  // U+1F600 is F0 9F 98 80 in UTF-8, after U+E000 (EE 80 80); UTF-16 has it
  // before (D83D DE00 < E000).
  t.same(sortByBytes(["\u{1F600}", "\uE000", "z", "é"]), ["z", "é", "\uE000", "\u{1F600}"]);
  t.end();
});

t.test("the walk: each directory before its contents, names in byte order", async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, "src");
  for (const d of ["b/c", "a/z", "a/y", "A"]) mkdirSync(path.join(src, d), { recursive: true });
  for (const f of ["a/z/2", "a/z/10", "a/y/f", "b/c/g", "top", "A/x"]) {
    writeFileSync(path.join(src, f), f);
  }
  symlinkSync("top", path.join(src, "link"));
  const r = await scanSources(
    [src, path.join(src, "a")],
    compileExclude([]),
    new AbortController().signal,
  );
  const rel = src.slice(1);
  t.same(
    r.entries.map((e) => e.path.slice(rel.length)),
    [
      "",
      "/A",
      "/A/x",
      "/a",
      "/a/y",
      "/a/y/f",
      "/a/z",
      "/a/z/10",
      "/a/z/2",
      "/b",
      "/b/c",
      "/b/c/g",
      "/link",
      "/top",
    ],
    "a source inside another is walked once",
  );
  const link = r.entries.find((e) => e.path === `${rel}/link`);
  t.match(link, { type: "symlink", target: "top", size: 0, sha256: null });
  t.match(
    r.entries.find((e) => e.path === `${rel}/a/y/f`),
    { type: "file", size: 5, target: null },
  );
  t.same(r.warnings, []);
  t.equal(r.excluded, 0);
});

t.test(
  "excluded paths are left out with what is below them; special files with a note",
  async (t) => {
    const dir = tempDir(t);
    const src = path.join(dir, "src");
    mkdirSync(path.join(src, "cache/deep"), { recursive: true });
    writeFileSync(path.join(src, "cache/deep/f"), "x");
    writeFileSync(path.join(src, "keep"), "x");
    writeFileSync(path.join(src, "x.log"), "x");
    let fifo = true;
    try {
      execFileSync("mkfifo", [path.join(src, "fifo")]);
    } catch {
      fifo = false;
    }
    const r = await scanSources(
      [src],
      compileExclude(["cache", "*.log"]),
      new AbortController().signal,
    );
    t.same(
      r.entries.map((e) => path.basename(e.path)),
      ["src", "keep"],
    );
    t.equal(r.excluded, 2);
    t.same(r.special, fifo ? [path.join(src, "fifo")] : []);
    const whole = await scanSources([src], compileExclude([src]), new AbortController().signal);
    t.same(whole.entries, []);
    t.equal(whole.excluded, 1, "an excluded source");
  },
);

t.test("a missing source; a canceled scan", async (t) => {
  const dir = tempDir(t);
  await t.rejects(
    scanSources([path.join(dir, "nope")], compileExclude([]), new AbortController().signal),
    {
      code: "SOURCE_MISSING",
      message: new RegExp(`^tar\\.sources: "${dir}/nope" cannot be read: `),
    },
  );
  for (let i = 0; i < 300; i++) writeFileSync(path.join(dir, `f${i}`), "");
  const c = new AbortController();
  c.abort();
  await t.rejects(scanSources([dir], compileExclude([]), c.signal), { code: "CANCELED" });
});
