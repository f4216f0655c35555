import { chmodSync, chownSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { loadMasterConfig } from "../../src/config/master-config.js";
import { readConfigFile, readMasterConfigFiles } from "../../src/config/read-config-files.js";
import { ConfigError } from "../../src/errors.js";
import { NOBODY, runningAsRoot } from "../helpers/as-nobody.js";
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

t.test(
  "jobs.d: every file others could change is refused, with its path and reason; abs reads loosely",
  { skip: runningAsRoot() ? false : "needs root to chown a file to nobody" },
  async (t) => {
    const dir = tempDir(t);
    const master = path.join(dir, "master.conf");
    writeFileSync(master, "[master]\nrealm = R\n");
    const jobs = path.join(dir, "jobs.d");
    mkdirSync(jobs);
    writeFileSync(path.join(jobs, "a.conf"), "[job a]\n");
    writeFileSync(path.join(jobs, "b.conf"), "[job b]\n");
    chmodSync(path.join(jobs, "b.conf"), 0o646);
    writeFileSync(path.join(jobs, "c.conf"), "[job c]\n");
    chownSync(path.join(jobs, "c.conf"), NOBODY, NOBODY);
    const outside = path.join(dir, "outside.conf");
    writeFileSync(outside, "[job d]\n");
    symlinkSync(outside, path.join(jobs, "d.conf"));
    // A loose file not ending in .conf is never read, so never refused.
    writeFileSync(path.join(jobs, "notes.txt"), "notes");
    chmodSync(path.join(jobs, "notes.txt"), 0o666);
    const err = await readMasterConfigFiles(master).catch((e: unknown) => e);
    t.ok(err instanceof ConfigError);
    t.same(
      (err as Error).message.split("\n"),
      [
        `job definition file ${jobs}/b.conf is refused: writable by others (mode 0646): anyone among them could change it; run \`chmod go-w ${jobs}/b.conf\``,
        `job definition file ${jobs}/c.conf is refused: owned by uid ${NOBODY}, not by root: anyone with that uid could change it; run \`chown root ${jobs}/c.conf\` if its content is right`,
        `job definition file ${jobs}/d.conf is refused: a symlink to ${outside}, outside ${jobs}; ABS follows links in jobs.d only to files in jobs.d: copy the file in`,
      ],
      "all three named at once",
    );
    chmodSync(master, 0o666);
    await t.rejects(readConfigFile(master), {
      code: "CONFIG",
      message: `config file ${master} is refused: writable by group and others (mode 0666): anyone among them could change it; run \`chmod go-w ${master}\``,
    });
    const loose = await readConfigFile(master, { strict: false });
    t.equal(loose.text, "[master]\nrealm = R\n", "abs, finding admin_socket, takes no orders");
  },
);
