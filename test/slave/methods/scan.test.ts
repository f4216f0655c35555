import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import t from "tap";
import { compileExclude } from "../../../src/slave/methods/exclude.js";
import {
  LSTAT_ERRNO,
  LSTAT_FIELDS,
  type LstatNames,
  lstatNamesInJs,
  lstatNamesNative,
} from "../../../src/slave/methods/lstat-names.js";
import { scanSources, sortByBytes } from "../../../src/slave/methods/scan.js";
import { tempDir } from "../../helpers/tmp.js";

t.test("names sort in the byte order of their UTF-8", (t) => {
  t.same(sortByBytes(["b", "B", "a", "_", "a.txt", "a-b"]), ["B", "_", "a", "a-b", "a.txt", "b"]);
  // U+1F600 is F0 9F 98 80 in UTF-8, after U+E000 (EE 80 80); UTF-16 has it
  // before (D83D DE00 < E000).
  t.same(sortByBytes(["\u{1F600}", "\uE000", "z", "é"]), ["z", "é", "\uE000", "\u{1F600}"]);
  t.end();
});

// Every walk test runs with each lstat the scan can use (lstat-names.ts).
const implementations: Array<[string, LstatNames]> = [["lstatSync", lstatNamesInJs]];
if (lstatNamesNative !== null) implementations.push(["C", lstatNamesNative]);

/** scanSources of `sources` with `lstat`: no previous backup, never canceled. */
function scanWith(lstat: LstatNames, sources: string[], exclude: string[] = []) {
  return scanSources(sources, compileExclude(exclude), new AbortController().signal, [], lstat);
}

/** `lstat`, which removes `victim` just before it lstats the names of `dir`. */
function removingBefore(lstat: LstatNames, dir: string, victim: string): LstatNames {
  return (d, names) => {
    if (d === dir) rmSync(victim, { recursive: true });
    return lstat(d, names);
  };
}

for (const [label, lstat] of implementations) {
  t.test(
    `${label}: the walk: each directory before its contents, names in byte order`,
    async (t) => {
      const dir = tempDir(t);
      const src = path.join(dir, "src");
      for (const d of ["b/c", "a/z", "a/y", "A"]) mkdirSync(path.join(src, d), { recursive: true });
      for (const f of ["a/z/2", "a/z/10", "a/y/f", "b/c/g", "top", "A/x"]) {
        writeFileSync(path.join(src, f), f);
      }
      symlinkSync("top", path.join(src, "link"));
      const r = await scanWith(lstat, [src, path.join(src, "a")]);
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
    },
  );

  t.test(
    `${label}: excluded paths are left out with what is below them; special files with a note`,
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
      const r = await scanWith(lstat, [src], ["cache", "*.log"]);
      t.same(
        r.entries.map((e) => path.basename(e.path)),
        ["src", "keep"],
      );
      t.equal(r.excluded, 2);
      t.same(r.special, fifo ? [path.join(src, "fifo")] : []);
      const whole = await scanWith(lstat, [src], [src]);
      t.same(whole.entries, []);
      t.equal(whole.excluded, 1, "an excluded source");
    },
  );

  t.test(
    `${label}: a name gone between the listing and its lstat is left out with a warning`,
    async (t) => {
      const dir = tempDir(t);
      const src = path.join(dir, "src");
      mkdirSync(src);
      for (const f of ["a", "b", "c"]) writeFileSync(path.join(src, f), f);
      const r = await scanWith(removingBefore(lstat, src, path.join(src, "b")), [src]);
      t.same(
        r.entries.map((e) => path.basename(e.path)),
        ["src", "a", "c"],
      );
      t.same(r.warnings, [`${src}/b: vanished during the scan`]);
    },
  );

  t.test(`${label}: a directory gone between its listing and the lstat of its names`, async (t) => {
    const dir = tempDir(t);
    const src = path.join(dir, "src");
    mkdirSync(path.join(src, "sub"), { recursive: true });
    for (const f of ["sub/a", "sub/b", "z"]) writeFileSync(path.join(src, f), f);
    const sub = path.join(src, "sub");
    const r = await scanWith(removingBefore(lstat, sub, sub), [src]);
    t.same(
      r.entries.map((e) => path.basename(e.path)),
      ["src", "sub", "z"],
    );
    t.same(r.warnings, [
      `${sub}/a: vanished during the scan`,
      `${sub}/b: vanished during the scan`,
    ]);
  });

  t.test(`${label}: excluded names are never lstat`, async (t) => {
    const dir = tempDir(t);
    const src = path.join(dir, "src");
    mkdirSync(path.join(src, "cache"), { recursive: true });
    for (const f of ["keep", "x.log", "cache/f"]) writeFileSync(path.join(src, f), f);
    const asked: string[] = [];
    const recording: LstatNames = (d, names) => {
      asked.push(...names.map((n) => path.join(d, n)));
      return lstat(d, names);
    };
    const r = await scanWith(recording, [src], ["cache", "*.log"]);
    t.same(asked, [path.join(src, "keep")]);
    t.equal(r.excluded, 2);
  });
}

t.test(
  "an lstat that fails for another reason than a vanished path stops the scan, naming the path",
  async (t) => {
    const dir = tempDir(t);
    const src = path.join(dir, "src");
    mkdirSync(src);
    writeFileSync(path.join(src, "secret"), "x");
    const denied: LstatNames = (d, names) => {
      const out = lstatNamesInJs(d, names);
      names.forEach((n, i) => {
        if (n === "secret") out[i * LSTAT_FIELDS + LSTAT_ERRNO] = os.constants.errno.EACCES;
      });
      return out;
    };
    const file = path.join(src, "secret");
    await t.rejects(scanWith(denied, [src]), {
      code: "EACCES",
      path: file,
      message: `EACCES: permission denied, lstat '${file}'`,
    });
  },
);

t.test(
  "a source that is a symlink is archived as a link, not followed; a FIFO as a source is left out",
  async (t) => {
    const dir = tempDir(t);
    mkdirSync(path.join(dir, "real"));
    writeFileSync(path.join(dir, "real/f"), "x");
    symlinkSync("real", path.join(dir, "link"));
    const r = await scanSources(
      [path.join(dir, "link")],
      compileExclude([]),
      new AbortController().signal,
    );
    t.same(
      r.entries.map((e) => [path.basename(e.path), e.type, e.target]),
      [["link", "symlink", "real"]],
    );
    let fifo = true;
    try {
      execFileSync("mkfifo", [path.join(dir, "fifo")]);
    } catch {
      fifo = false;
    }
    if (!fifo) return;
    const f = await scanSources(
      [path.join(dir, "fifo")],
      compileExclude([]),
      new AbortController().signal,
    );
    t.same(f.entries, []);
    t.same(f.special, [path.join(dir, "fifo")]);
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
