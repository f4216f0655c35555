// The startup reader: one small file with three system calls, and a worker
// thread handing many files back in order, in batches, with the errors of
// those it could not read.

import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { FileReaderThread, looksLarge } from "../../src/jobsdir/file-reader.js";
import { readSmallFile } from "../../src/jobsdir/read-small-file.js";
import { tempDir } from "../helpers/tmp.js";

t.test("readSmallFile: empty, small, exactly the scratch size, larger", (t) => {
  const dir = tempDir(t);
  const scratch = Buffer.alloc(16);
  const cases: [string, Buffer][] = [
    ["empty", Buffer.alloc(0)],
    ["small", Buffer.from('{"id":1}\n')],
    ["exact", Buffer.from("0123456789abcdef")],
    ["larger", Buffer.from("x".repeat(100) + "é")],
  ];
  for (const [name, bytes] of cases) {
    writeFileSync(path.join(dir, name), bytes);
    t.same(readSmallFile(path.join(dir, name), scratch), bytes, name);
  }
  t.throws(() => readSmallFile(path.join(dir, "missing"), scratch), { code: "ENOENT" });
  t.throws(() => readSmallFile(dir, scratch), { code: "EISDIR" });
  t.end();
});

t.test("the worker hands back every file in order, across batches", async (t) => {
  const dir = tempDir(t);
  const files: string[] = [];
  for (let i = 0; i < 2500; i++) {
    const file = path.join(dir, `f-${i}`);
    // Non-ASCII text, so a byte offset is not a character offset.
    writeFileSync(file, `file ${i} ${"ü".repeat(i % 7)}`);
    files.push(file);
  }
  // A file larger than the worker's 1 MiB scratch buffer and its 4 MiB batch.
  const big = path.join(dir, "big");
  writeFileSync(big, "b".repeat(5 << 20));
  files.splice(1500, 0, big);
  // Files it cannot read: missing, a directory, among the others.
  files.splice(10, 0, path.join(dir, "missing"));
  mkdirSync(path.join(dir, "sub"));
  files.splice(2000, 0, path.join(dir, "sub"));

  const seen: (string | Error)[] = [];
  const indexes: number[] = [];
  const reader = new FileReaderThread();
  const delivered = await reader.read(files, (i, text) => {
    indexes.push(i);
    seen.push(text);
  });
  t.equal(delivered, files.length, "every file handed over");
  t.same(
    indexes,
    files.map((_, i) => i),
    "in order, each once",
  );
  t.match(seen[10], { message: /ENOENT/ }, "the missing file's error, at its index");
  t.match(seen[2000], { message: /EISDIR/ }, "the directory's error, at its index");
  t.equal((seen[1501] as string).length, 5 << 20, "the big file, whole");
  const texts = seen.filter((s): s is string => typeof s === "string");
  t.equal(texts.length, files.length - 2);
  t.equal(texts[0], "file 0 ");
  t.equal(texts[texts.length - 1], `file 2499 ${"ü".repeat(2499 % 7)}`);
  t.ok(
    texts.every((s) => s.startsWith("file ") || s.startsWith("bbb")),
    "no text cut at a batch's edge",
  );
});

t.test("an error thrown by the caller's handler rejects the read", async (t) => {
  const dir = tempDir(t);
  const files = [1, 2, 3].map((i) => {
    const file = path.join(dir, `f-${i}`);
    writeFileSync(file, `${i}`);
    return file;
  });
  const reader = new FileReaderThread();
  await t.rejects(
    reader.read(files, (i) => {
      if (i === 1) throw new Error("bad file 2");
    }),
    { message: "bad file 2" },
  );
});

t.test("a worker stopped before reading: the caller reads everything itself", async (t) => {
  const reader = new FileReaderThread();
  reader.stop();
  const handed: number[] = [];
  const delivered = await reader.read(["/nonexistent"], (i) => handed.push(i));
  t.equal(delivered, 0, "nothing handed over: the caller reads from index 0");
  t.same(handed, []);
});

t.test("looksLarge: by the directory's size", async (t) => {
  const small = tempDir(t);
  t.equal(await looksLarge(small), false, "an empty directory");
  t.equal(await looksLarge(path.join(small, "missing")), false, "a missing one");
  const large = tempDir(t);
  for (let i = 0; i < 3000; i++) writeFileSync(path.join(large, `job-${i}.json`), "");
  t.equal(await looksLarge(large), true, "3,000 entries");
});
