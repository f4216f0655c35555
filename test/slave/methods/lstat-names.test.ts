import { execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import t from "tap";
import {
  LSTAT_ERRNO,
  LSTAT_FIELDS,
  LSTAT_MODE,
  LSTAT_MTIME,
  LSTAT_SIZE,
  type LstatNames,
  lstatError,
  lstatNames,
  lstatNamesInJs,
  lstatNamesNative,
  lstatNamesUsed,
} from "../../../src/slave/methods/lstat-names.js";
import { tempDir } from "../../helpers/tmp.js";

const { EINVAL, ENAMETOOLONG, ENOENT, ENOTDIR } = os.constants.errno;

t.test("the C version is built and is the one the scan uses", (t) => {
  // CI builds it with `npm ci`; a machine without a compiler falls back to
  // lstatSync and says so in the slave's log.
  t.not(lstatNamesNative, null, lstatNamesUsed);
  t.equal(lstatNames, lstatNamesNative);
  t.match(lstatNamesUsed, /^tar scans lstat in C \(.*lstat_names\.node\)$/);
  t.end();
});

const implementations: Array<[string, LstatNames]> = [["lstatSync", lstatNamesInJs]];
if (lstatNamesNative !== null) implementations.push(["C", lstatNamesNative]);

/** The record of name i, as an object for comparing. */
function record(out: Float64Array, i: number) {
  const f = i * LSTAT_FIELDS;
  return {
    mode: out[f + LSTAT_MODE],
    size: out[f + LSTAT_SIZE],
    mtime: out[f + LSTAT_MTIME],
    errno: out[f + LSTAT_ERRNO],
  };
}

function expected(file: string) {
  const st = lstatSync(file);
  return { mode: st.mode, size: st.size, mtime: Math.floor(st.mtimeMs), errno: 0 };
}

for (const [label, lstat] of implementations) {
  t.test(`${label}: the numbers of lstatSync, for every kind of name`, (t) => {
    const dir = tempDir(t);
    writeFileSync(path.join(dir, "file"), "12345");
    mkdirSync(path.join(dir, "sub"), { mode: 0o750 });
    symlinkSync("file-that-is-not-there", path.join(dir, "link"));
    writeFileSync(path.join(dir, "setuid"), "", { mode: 0o4755 });
    writeFileSync(path.join(dir, "old"), "");
    // Fractions of a millisecond and a time before 1970: the floor of
    // mtimeMs, as the manifest stores it.
    utimesSync(path.join(dir, "file"), 1_700_000_000.9876, 1_700_000_000.123456);
    // (utimesSync takes a negative time for "now": GNU touch sets it.)
    execFileSync("touch", ["-d", "@-1.5", path.join(dir, "old")]);
    // 1700000000 s and 999.999999 ms add up to a double that rounds up.
    writeFileSync(path.join(dir, "rounds"), "");
    execFileSync("touch", ["-d", "@1700000000.999999999", path.join(dir, "rounds")]);
    const names = ["file", "sub", "link", "setuid", "old", "caf\u00e9 \u{1F600}", "rounds"];
    writeFileSync(path.join(dir, names[5]), "utf-8 name");
    let fifo = true;
    try {
      execFileSync("mkfifo", [path.join(dir, "fifo")]);
      names.push("fifo");
    } catch {
      fifo = false;
    }
    const out = lstat(dir, names);
    t.equal(out.length, names.length * LSTAT_FIELDS);
    names.forEach((name, i) => t.same(record(out, i), expected(path.join(dir, name)), name));
    t.equal(record(out, 0).mtime, 1_700_000_000_123, "the mtime's milliseconds, floored");
    t.equal(record(out, 6).mtime, 1_700_000_001_000, "the floor of mtimeMs as Node computes it");
    t.equal(record(out, 4).mtime, -1500, "a time before 1970");
    t.equal(record(out, 2).mode & 0o170000, 0o120000, "a symlink is not followed");
    t.equal(record(out, 3).mode & 0o7777, 0o4755, "setuid kept");
    if (!fifo) t.comment("mkfifo not available: no FIFO checked");
    t.same(lstat(`${dir}/`, ["file"]), lstat(dir, ["file"]), "a trailing slash on the directory");
    t.same(lstat(dir, []), new Float64Array(0), "no names");
    t.end();
  });

  t.test(`${label}: each failure is its name's errno, and the others still answer`, (t) => {
    const dir = tempDir(t);
    writeFileSync(path.join(dir, "file"), "x");
    const out = lstat(dir, ["missing", "file", "", "a/b", "nul\0", "n".repeat(300)]);
    t.same(
      [0, 1, 2, 3, 4, 5].map((i) => record(out, i).errno),
      [ENOENT, 0, EINVAL, EINVAL, EINVAL, ENAMETOOLONG],
    );
    t.same(record(out, 0), { mode: 0, size: 0, mtime: 0, errno: ENOENT }, "nothing else set");
    t.same(record(out, 1), expected(path.join(dir, "file")));
    const gone = lstat(path.join(dir, "gone"), ["a", "b"]);
    t.same([record(gone, 0).errno, record(gone, 1).errno], [ENOENT, ENOENT], "directory gone");
    const notDir = lstat(path.join(dir, "file"), ["a"]);
    t.equal(record(notDir, 0).errno, ENOTDIR, "directory replaced by a file");
    t.same(
      [record(lstat("", ["etc"]), 0).errno, record(lstat(`${dir}\0x`, ["file"]), 0).errno],
      [EINVAL, EINVAL],
      "an empty directory name, a NUL in it",
    );
    t.end();
  });

  t.test(`${label}: a name too long is refused, not cut down to one that exists`, (t) => {
    const dir = tempDir(t);
    // 2 + 63 * 4 = 254 bytes: a valid name. One more emoji makes 258 bytes,
    // too long for a name; cut at a character it would be this one.
    const short = "ab" + "\u{1F600}".repeat(63);
    writeFileSync(path.join(dir, short), "x");
    const out = lstat(dir, [short, short + "\u{1F600}", "n".repeat(256)]);
    t.same(
      [0, 1, 2].map((i) => record(out, i).errno),
      [0, ENAMETOOLONG, ENAMETOOLONG],
    );
    t.end();
  });

  t.test(`${label}: a path of PATH_MAX bytes or more is ENAMETOOLONG, as for lstatSync`, (t) => {
    const PATH_MAX = 4096;
    let dir = tempDir(t);
    // Directories of 150-byte names, then one of 48 to 198 bytes, so that a
    // name of 100 bytes (well under NAME_MAX) brings the path to PATH_MAX - 1.
    while (PATH_MAX - 1 - dir.length > 300) dir = path.join(dir, "d".repeat(150));
    dir = path.join(dir, "e".repeat(PATH_MAX - 1 - dir.length - 102));
    mkdirSync(dir, { recursive: true });
    const fits = "f".repeat(100);
    writeFileSync(path.join(dir, fits), "x");
    t.equal(path.join(dir, fits).length, PATH_MAX - 1);
    const out = lstat(dir, [fits, fits + "g"]);
    t.same([record(out, 0).errno, record(out, 1).errno], [0, ENAMETOOLONG]);
    t.end();
  });

  t.test(`${label}: a big directory, names in the order given`, (t) => {
    const dir = tempDir(t);
    const names = Array.from({ length: 2000 }, (_, i) => `f${i}`);
    names.forEach((n, i) => writeFileSync(path.join(dir, n), "x".repeat(i % 17)));
    const reversed = [...names].reverse();
    const out = lstat(dir, reversed);
    t.ok(
      reversed.every((_, i) => record(out, i).size === (2000 - 1 - i) % 17),
      "each record is its name's",
    );
    t.end();
  });
}

t.test(
  "the C version refuses arguments of the wrong type",
  { skip: lstatNamesNative === null ? "the C version is not built" : false },
  (t) => {
    const call = lstatNamesNative as unknown as (...args: unknown[]) => Float64Array;
    t.throws(() => call(), { name: "TypeError", message: /two arguments expected/ });
    t.throws(() => call(42, []), { name: "TypeError", message: /dir must be a string/ });
    t.throws(() => call("/", "a"), { name: "TypeError", message: /names must be an array/ });
    t.throws(() => call("/", ["etc", 7]), { name: "TypeError", message: /names must be an array/ });
    t.end();
  },
);

t.test(
  "the C version lstats by full path when it cannot open the directory (no file descriptor left)",
  { skip: lstatNamesNative === null ? "the C version is not built" : false },
  (t) => {
    const dir = tempDir(t);
    writeFileSync(path.join(dir, "file"), "12345");
    const module = new URL("../../../src/slave/methods/lstat-names.js", import.meta.url).href;
    // A child with few file descriptors uses them all up, then asks.
    const script = `
      const { lstatNamesNative } = await import(${JSON.stringify(module)});
      const fs = await import("node:fs");
      try { for (;;) fs.openSync("/dev/null", "r"); } catch (err) { if (err.code !== "EMFILE") throw err; }
      const out = lstatNamesNative(${JSON.stringify(dir)}, ["file", "missing"]);
      process.stdout.write(JSON.stringify(Array.from(out)));
    `;
    const printed = execFileSync("bash", [
      "-c",
      'ulimit -n 64 && exec "$0" --input-type=module -e "$1"',
      process.execPath,
      script,
    ]).toString();
    const st = lstatSync(path.join(dir, "file"));
    t.same(JSON.parse(printed), [st.mode, 5, Math.floor(st.mtimeMs), 0, 0, 0, 0, ENOENT]);
    t.end();
  },
);

t.test("lstatError is the error lstatSync throws", (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, "missing");
  let thrown: NodeJS.ErrnoException | undefined;
  try {
    lstatSync(file);
  } catch (err) {
    thrown = err as NodeJS.ErrnoException;
  }
  const made = lstatError(ENOENT, file);
  t.ok(thrown);
  t.equal(made.message, thrown?.message);
  t.equal(made.code, thrown?.code);
  t.equal(made.errno, thrown?.errno);
  t.equal(made.syscall, thrown?.syscall);
  t.equal(made.path, thrown?.path);
  t.match(lstatError(os.constants.errno.EACCES, "/x"), {
    code: "EACCES",
    message: "EACCES: permission denied, lstat '/x'",
  });
  t.end();
});
