// A real abs-master and a real abs-slave (processes, port 0, temp dirs,
// realm key) running real backups: tar archives checked with GNU tar, an
// incremental chain restored, cancel, refusals, commands that fail and
// time out.

import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import t, { type Test } from "tap";
import { MasterProcess } from "../helpers/master-process.js";
import { SlaveProcess } from "../helpers/slave-process.js";
import { runDefinition, waitForJob, waitForState } from "../helpers/admin-wait.js";
import { tempDir } from "../helpers/tmp.js";
import type { JobDetail } from "../../src/protocol/admin-api.js";
import { gnuTar, makeTree, snapshot } from "../fixtures/backup-tree.js";

interface Setup {
  m: MasterProcess;
  s: SlaveProcess;
  /** The directory the slave may work in (allowed_paths). */
  data: string;
}

/**
 * A master with `jobs(data)` and a slave allowed to work in `data` only;
 * `prepare(data)` runs before either starts (a schedule may fire at once).
 */
async function setup(
  t: Test,
  jobs: (data: string) => string,
  prepare: (data: string) => void = () => undefined,
): Promise<Setup> {
  const data = tempDir(t, "abs-data-");
  prepare(data);
  const m = await MasterProcess.start(t, { jobs: jobs(data) });
  const s = await SlaveProcess.start(t, {
    master: m,
    allowedPaths: data,
    programs: ["/bin/echo", "/bin/sh", "/bin/sleep", "/bin/true"],
  });
  return { m, s, data };
}

function job(name: string, lines: string[]): string {
  return [`[job ${name}]`, "slave = green-acres", ...lines, ""].join("\n");
}

/** The archive a tar job's result names. */
function archiveOf(job: JobDetail): string {
  const name = job.resultData?.["archive"];
  if (typeof name !== "string") throw new Error(`job ${job.id} names no archive`);
  return name;
}

/** Files in `dir` whose name starts with a dot and ends with .partial. */
function partials(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith(".partial")) : [];
}

t.test("a scheduled tar backup runs; GNU tar lists and extracts it byte for byte", async (t) => {
  const { m, s, data } = await setup(
    t,
    (d) =>
      job("home", [
        // Every second: the first run is the one checked.
        "schedule = * * * * * *",
        "overlap = forbid",
        "method = tar",
        `tar.sources = ${d}/src`,
        `tar.destination = ${d}/backup`,
      ]),
    (d) => makeTree(path.join(d, "src")),
  );
  const before = snapshot(path.join(data, "src"));
  // Logged at startup: the scan's lstat is the C one (lstat-names.ts).
  await s.waitForOutput(/tar scans lstat in C \(.+\/lstat_names\.node\)/);
  const started = await s.waitForOutput(/job (\d+): started home \(tar, attempt 1\)/);
  const id = Number(started[1]);
  const done = await waitForJob(m, id, (j) => j.state === "succeeded" || j.state === "failed");
  t.equal(done.state, "succeeded", done.result ?? "");
  t.match(done.log[0]?.message, /^received: home on green-acres, scheduled for/);
  t.ok(
    done.log.some((e) => e.message.startsWith("started on green-acres")),
    "the slave said it started",
  );
  const archive = archiveOf(done);
  t.match(archive, /^home-\d{8}T\d{9}Z-full\.tar$/);
  // The master is stopped before the next second's run can touch the tree.
  await m.stop();
  await s.stop();

  const file = path.join(data, "backup", archive);
  const listed = gnuTar(["-tf", file]).trim().split("\n").sort();
  t.ok(listed.includes(`${data.slice(1)}/src/docs/deep/b.bin`), "GNU tar lists the files");
  const out = path.join(data, "extracted");
  mkdirSync(out);
  gnuTar(["-xpf", file, "-C", out]);
  t.same(
    snapshot(path.join(out, data.slice(1), "src")),
    before,
    "extracted tree equals the source",
  );
  t.same(partials(path.join(data, "backup")), [], "no partial file left");
});

t.test(
  "an incremental after changes and deletions; the chain restores the source as it was; a corrupted archive fails verify and restore",
  async (t) => {
    const { m, data } = await setup(t, (d) =>
      [
        job("home", [
          "method = tar",
          `tar.sources = ${d}/src`,
          `tar.destination = ${d}/backup`,
          "tar.level = incremental",
        ]),
        job("restore-home", [
          "method = restore",
          `restore.source = ${d}/backup`,
          `restore.target = ${d}/restored`,
        ]),
        job("verify-home", ["method = verify", `verify.archive = ${d}/backup`]),
      ].join("\n"),
    );
    const src = path.join(data, "src");
    makeTree(src);
    const [full] = await runDefinition(m, "home");
    const first = await waitForState(m, full, "succeeded");
    t.match(archiveOf(first), /-full\.tar$/, "the first run is a full");

    // Changes: one file rewritten, one deleted, one added.
    writeFileSync(path.join(src, "docs/a.txt"), "alpha, changed\n");
    rmSync(path.join(src, "empty"));
    writeFileSync(path.join(src, "new.txt"), "new file\n");
    const asItWas = snapshot(src, false);
    const [incr] = await runDefinition(m, "home");
    const second = await waitForState(m, incr, "succeeded");
    const incremental = archiveOf(second);
    t.match(incremental, /-incremental\.tar$/);
    const listed = gnuTar(["-tf", path.join(data, "backup", incremental)]);
    t.match(listed, /src\/docs\/a\.txt/, "the changed file is in the incremental");
    t.match(listed, /src\/new\.txt/, "the new file is in the incremental");
    t.notMatch(listed, /b\.bin/, "an unchanged file is not");

    const [restoreId] = await runDefinition(m, "restore-home");
    await waitForState(m, restoreId, "succeeded");
    const restored = path.join(data, "restored", data.slice(1), "src");
    const restoredRoot = existsSync(restored) ? restored : path.join(data, "restored");
    t.same(snapshot(restoredRoot, false), asItWas, "the chain restores the source as it was");

    const [verifyOk] = await runDefinition(m, "verify-home");
    await waitForState(m, verifyOk, "succeeded");

    // One byte of the full archive's content changed on disk.
    const fullFile = path.join(data, "backup", archiveOf(first));
    const bytes = readFileSync(fullFile);
    const at = bytes.indexOf("alpha\n");
    t.ok(at > 0, "found the file's content in the archive");
    bytes[at] = "A".charCodeAt(0);
    writeFileSync(fullFile, bytes);
    const [verifyBad] = await runDefinition(m, "verify-home");
    const badVerify = await waitForState(m, verifyBad, "failed");
    t.match(badVerify.result, /sha256|content|manifest/i, "verify names the mismatch");
    rmSync(path.join(data, "restored"), { recursive: true, force: true });
    const [restoreBad] = await runDefinition(m, "restore-home");
    const badRestore = await waitForState(m, restoreBad, "failed");
    t.match(badRestore.result, /sha256|content|manifest/i, "restore refuses the chain");
  },
);

t.test("cancel stops a running backup promptly and removes its partial archive", async (t) => {
  const { m, data } = await setup(t, (d) =>
    job("big", [
      "method = tar",
      `tar.sources = ${d}/src`,
      `tar.destination = ${d}/backup`,
      // A sparse file compressed: minutes of CPU, a few kilobytes of archive.
      "tar.gzip = true",
    ]),
  );
  mkdirSync(path.join(data, "src"));
  const sparse = path.join(data, "src", "sparse.img");
  writeFileSync(sparse, "");
  truncateSync(sparse, 64 * 1024 ** 3);
  const [id] = await runDefinition(m, "big");
  await waitForJob(m, id, (j) => j.state === "running" && (j.progress?.bytes ?? 0) > 0);
  t.ok(partials(path.join(data, "backup")).length > 0, "a partial archive while it runs");
  const cancel = await m.abs(["cancel", String(id)]);
  t.equal(cancel.status, 0, cancel.stderr);
  const done = await waitForState(m, id, "canceled");
  t.match(done.result, /canceled/);
  t.same(partials(path.join(data, "backup")), [], "the partial archive is removed");
  t.same(
    readdirSync(path.join(data, "backup")).filter((n) => n.endsWith(".tar.gz")),
    [],
    "no archive",
  );
});

t.test("paths outside the allowed paths are refused, symlinks included", async (t) => {
  const { m, data } = await setup(t, (d) =>
    [
      job("etc", ["method = tar", "tar.sources = /etc", `tar.destination = ${d}/backup`]),
      job("sneaky", ["method = tar", `tar.sources = ${d}/link`, `tar.destination = ${d}/backup`]),
      job("outside", [
        "method = restore",
        `restore.source = ${d}/backup`,
        "restore.target = /var/tmp/abs-restore-here",
      ]),
    ].join("\n"),
  );
  symlinkSync("/etc", path.join(data, "link"));
  const [etc] = await runDefinition(m, "etc");
  const a = await waitForState(m, etc, "failed");
  t.equal(
    a.result,
    `refused by the slave: tar.sources "/etc" is outside the slave's allowed paths: ${data}`,
  );
  t.notOk(
    a.log.some((e) => e.message.startsWith("started")),
    "refused before it started",
  );
  const [sneaky] = await runDefinition(m, "sneaky");
  const b = await waitForState(m, sneaky, "failed");
  t.equal(
    b.result,
    `refused by the slave: tar.sources "${data}/link" (really "/etc") is outside the slave's allowed paths: ${data}`,
  );
  const [outside] = await runDefinition(m, "outside");
  const c = await waitForState(m, outside, "failed");
  t.match(
    c.result,
    /^refused by the slave: restore\.target "\/var\/tmp\/abs-restore-here" is outside/,
  );
  t.notOk(existsSync(path.join(data, "backup")), "nothing was written");
});

t.test("a command that fails, and one stopped at its max run time", async (t) => {
  const { m } = await setup(t, () =>
    [
      job("fails", [
        "method = command",
        "command.program = /bin/sh",
        `command.args = -c "echo dumping; echo disk on fire >&2; exit 3"`,
      ]),
      job("slow", [
        "method = command",
        "command.program = /bin/sleep",
        "command.args = 600",
        "max_run_time = 1s",
      ]),
    ].join("\n"),
  );
  const [fails] = await runDefinition(m, "fails");
  const f = await waitForState(m, fails, "failed");
  t.match(f.result, /^command "\/bin\/sh -c .*" exited with status 3; last output: .*disk on fire/);
  t.equal(f.resultData?.["exitStatus"], 3);
  t.match(f.resultData?.["lastLines"], ["dumping", "disk on fire"]);

  const started = Date.now();
  const [slow] = await runDefinition(m, "slow");
  const s = await waitForState(m, slow, "canceled");
  t.match(
    s.log.map((e) => e.message).join("\n"),
    /max run time 1s exceeded|stopped at its max run time of 1s/,
    "the log says the max run time stopped it",
  );
  t.ok(Date.now() - started < 60_000, "stopped long before sleep 600 would end");
  // The process is gone: no sleep 600 of this slave is left.
  const ps = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" });
  t.notMatch(ps, /^\/bin\/sleep 600$/m, "the command was killed");
});

t.test("a full destination fails the job with the reason; the slave goes on serving", async (t) => {
  const { m, data } = await setup(
    t,
    (d) =>
      [
        job("full-disk", [
          "method = tar",
          `tar.sources = ${d}/src`,
          `tar.destination = ${d}/small`,
        ]),
        job("ok", ["method = command", "command.program = /bin/true"]),
      ].join("\n"),
    (d) => {
      makeTree(path.join(d, "src"));
      writeFileSync(path.join(d, "src", "big"), Buffer.alloc(600_000, 1));
      mkdirSync(path.join(d, "small"));
    },
  );
  const small = path.join(data, "small");
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", small], { stdio: "ignore" });
  } catch {
    t.comment("skipped: cannot mount a tmpfs here (not root?)");
    return;
  }
  t.teardown(() => execFileSync("umount", [small]));
  const [id] = await runDefinition(m, "full-disk");
  const failed = await waitForState(m, id, "failed");
  t.match(failed.result, /no space left on the device/);
  t.same(readdirSync(small), [], "no partial file left on the full disk");
  const [ok] = await runDefinition(m, "ok");
  await waitForState(m, ok, "succeeded");
});

t.test("abs show job: command.env by names only; no arguments in progress", async (t) => {
  const { m, s } = await setup(t, () =>
    job("dump", [
      "method = command",
      "command.program = /bin/echo",
      "command.args = --password=hunter2",
      "command.env.PGPASSWORD = s3cret-value",
      "command.env.PGUSER = backup",
    ]),
  );
  const [id] = await runDefinition(m, "dump");
  const done = await waitForState(m, id, "succeeded");
  t.same(done.params["env"], ["PGPASSWORD", "PGUSER"], "the names, sorted");
  t.equal(done.progress?.path, "/bin/echo", "the program, not its arguments");
  const shown = await m.abs(["show", "job", String(id)]);
  t.equal(shown.status, 0, shown.stderr);
  t.match(shown.stdout, /"env":\["PGPASSWORD","PGUSER"\]/);
  t.match(shown.stdout, /^\s*progress: +0 files, 19 B, \/bin\/echo$/m);
  const json = await m.abs(["show", "job", String(id), "--json"]);
  const watched = await m.abs(["watch", String(id)]);
  for (const [what, text] of [
    ["show job", shown.stdout],
    ["show job --json", json.stdout],
    ["watch", watched.stdout],
  ] as const) {
    t.notMatch(text, /s3cret-value/, `${what}: no command.env value`);
    t.notMatch(text, /backup"/, `${what}: no command.env value`);
  }
  await s.stop();
  await m.stop();
});
