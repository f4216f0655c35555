import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { loadMasterConfig } from "../../src/config/master-config.js";
import { readConfigFile, readMasterConfigFiles } from "../../src/config/read-config-files.js";
import { ConfigError } from "../../src/errors.js";
import { tempDir } from "../helpers/tmp.js";

t.test("reads master.conf then jobs.d/*.conf in name order", async (t) => {
  const dir = tempDir(t);
  const master = path.join(dir, "master.conf");
  writeFileSync(master, "[master]\nrealm = R\n");
  const jobs = path.join(dir, "jobs.d");
  mkdirSync(jobs);
  writeFileSync(path.join(jobs, "b.conf"), "[job b]\n");
  writeFileSync(path.join(jobs, "a.conf"), "[job a]\n");
  writeFileSync(path.join(jobs, "B.conf"), "[job B]\n");
  writeFileSync(path.join(jobs, "a.conf~"), "backup");
  writeFileSync(path.join(jobs, ".#a.conf"), "lock");
  writeFileSync(path.join(jobs, "notes.txt"), "notes");
  mkdirSync(path.join(jobs, "dir.conf"));
  symlinkSync(path.join(jobs, "a.conf"), path.join(jobs, "c.conf"));
  symlinkSync(path.join(jobs, "gone"), path.join(jobs, "d.conf"));
  const files = await readMasterConfigFiles(master);
  t.same(
    files.map((f) => [path.relative(dir, f.file), f.text]),
    [
      ["master.conf", "[master]\nrealm = R\n"],
      ["jobs.d/B.conf", "[job B]\n"],
      ["jobs.d/a.conf", "[job a]\n"],
      ["jobs.d/b.conf", "[job b]\n"],
      ["jobs.d/c.conf", "[job a]\n"],
    ],
  );
  // The duplicate through the symlink is reported with both file names.
  const r = loadMasterConfig(files, { localTimeZone: "UTC" });
  t.ok("errors" in r);
  if ("errors" in r) {
    t.match(
      r.errors.map((e) => e.message).join("\n"),
      `${jobs}/c.conf:1: job "a": already defined at ${jobs}/a.conf:1`,
    );
  }
  t.end();
});

t.test("a relative path gives relative names, and no jobs.d is fine", async (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, "master.conf"), "[master]\nrealm = R\n");
  const files = await readMasterConfigFiles(
    path.relative(process.cwd(), path.join(dir, "master.conf")),
  );
  t.equal(files.length, 1);
  t.notOk(path.isAbsolute(files[0]?.file ?? "/"));
  t.end();
});

t.test("unreadable files are a ConfigError naming the file", async (t) => {
  const dir = tempDir(t);
  const missing = path.join(dir, "master.conf");
  await t.rejects(readMasterConfigFiles(missing), ConfigError);
  const err = await readConfigFile(missing).catch((e: unknown) => e);
  t.ok(err instanceof ConfigError);
  t.match((err as Error).message, `${missing}: cannot read: ENOENT`);
  t.same((err as ConfigError).context, { file: missing });
  const err2 = await readConfigFile(dir).catch((e: unknown) => e);
  t.equal((err2 as Error).message, `${dir}: not a regular file`);
  t.end();
});

t.test(
  "bytes that are not UTF-8 reach the tokenizer as U+FFFD and are reported with their line",
  async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, "slave.conf");
    writeFileSync(file, Buffer.from([0x6d, 0x3a, 0x20, 0xff, 0xfe, 0x0a]));
    const { text } = await readConfigFile(file);
    t.equal(text, "m: \ufffd\ufffd\n");
    t.end();
  },
);
