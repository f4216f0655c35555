// abs demo as the README's quick start has it: the first command of the
// README's first code block is read and its `npx abs ...` part run as
// written (with this build's abs.js: npm ci has run), in a temp directory.
// Then: the first sample backup succeeded, GNU tar lists its archive, the
// printed ABS_CONFIG reaches the master, a second run only shows the jobs,
// --stop ends both daemons, and a directory that is not a demo is refused.
//
// The daemons are not our children (they go into the background), so the
// teardown stops them with abs demo --stop and kills any left, whatever
// happened in the test.

import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import t from "tap";
import { type Run, STACK_FRAME, runAbs } from "../helpers/abs-cli.js";

const README = fileURLToPath(new URL("../../../README.md", import.meta.url));

/** Runs `node abs.js ...args` in `cwd` (runAbs's minimal environment). */
function absIn(
  cwd: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<Run> {
  return runAbs(args, env, cwd);
}

async function gnuTarList(archive: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)("tar", ["-tf", archive]);
  return stdout.split("\n").filter((l) => l !== "");
}

/** The first command of the README's first code block, without its comment. */
function readmeFirstCommand(): string {
  const text = readFileSync(README, "utf8");
  const block = /^```[a-z]*\n([\s\S]*?)^```/m.exec(text);
  const first = block?.[1]?.split("\n")[0] ?? "";
  return first.replace(/\s+#.*$/, "").trim();
}

/** The pid in a pid file, or null. */
function pidIn(file: string): number | null {
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, "utf8").trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

/** Whether `pid` runs (a zombie does not). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}

/** A process of this demo: its command line names the demo directory. */
function ofDemo(pid: number, dir: string): boolean {
  try {
    return alive(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir);
  } catch {
    return false;
  }
}

t.test("the README's first command installs and runs the demo; --stop ends it", async (t) => {
  const command = readmeFirstCommand();
  t.equal(command, "npm ci && npx abs demo", "the README opens with the install-and-demo command");
  const steps = command.split("&&").map((s) => s.trim());
  t.equal(steps[0], "npm ci", "npm ci (which CI has run before the tests)");
  const npx = steps.find((s) => s.startsWith("npx abs "));
  if (npx === undefined) throw new Error(`no "npx abs ..." in ${JSON.stringify(command)}`);
  const args = npx.slice("npx abs ".length).split(/\s+/);

  // Under the umask many users have (002, user private groups): the demo's
  // configs must still be ones its daemons accept (not group-writable).
  const umask = process.umask(0o002);
  t.teardown(() => void process.umask(umask));
  const cwd = mkdtempSync(path.join(os.tmpdir(), "abs-demo-test-"));
  const dir = path.join(cwd, "abs-demo");
  const masterPidFile = path.join(dir, "run", "abs-master.pid");
  const slavePidFile = path.join(dir, "slave", "abs-slave.pid");
  const seen = new Set<number>();
  const remember = (): void => {
    for (const f of [masterPidFile, slavePidFile]) {
      const pid = pidIn(f);
      if (pid !== null) seen.add(pid);
    }
  };
  // One teardown, so the daemons are stopped before the directory goes.
  t.teardown(async () => {
    remember();
    if (existsSync(path.join(dir, ".abs-demo"))) await absIn(cwd, ["demo", "--stop"]);
    for (const pid of seen) if (ofDemo(pid, dir)) process.kill(pid, "SIGKILL");
    rmSync(cwd, { recursive: true, force: true });
  });

  const run = await absIn(cwd, args);
  remember();
  t.equal(run.code, 0, run.stderr);
  t.equal(run.stderr, "");
  t.match(
    run.stdout,
    /^wrote abs-demo\/: realm DEMO, master on 127\.0\.0\.1:\d+, slave demo-slave/,
  );
  t.match(run.stdout, /^started abs-master \(pid \d+\) and abs-slave \(pid \d+\)$/m);
  // The job it waited for: run now, or one the schedule queued as the master started.
  const done = /^job (\d+) succeeded: full backup (sample-\S+-full\.tar): /m.exec(run.stdout);
  if (done === null) throw new Error(`no "job N succeeded" line in:\n${run.stdout}`);
  const [, id = "", archive = ""] = done;
  /** The line of job `id` in a table of `abs show jobs`, succeeded. */
  const succeeded = new RegExp(`^ *${id} {2}sample {6}demo-slave {2}succeeded +1 {2}`, "m");
  t.match(run.stdout, /^ID {2}DEFINITION {2}SLAVE +STATE +ATTEMPT {2}RECEIVED {2}STARTED +INFO$/m);
  t.match(run.stdout, succeeded, "the table: sample succeeded");
  t.match(run.stdout, `abs show job ${id}  `);
  t.match(run.stdout, `export ABS_CONFIG=${dir}/master.conf\n`);
  t.match(run.stdout, "abs demo --stop  ");
  t.match(run.stdout, "Logs: abs-demo/log/master-daemon.log, abs-demo/log/slave-daemon.log.");

  // The archive the table names, read by GNU tar.
  t.match(run.stdout, `tar -tvf abs-demo/backups/${archive}`);
  const listed = await gnuTarList(path.join(dir, "backups", archive));
  const sample = `${dir.slice(1)}/sample/`;
  for (const entry of [
    "",
    "README.txt",
    "documents/letter to the board.txt",
    "documents/reports/2026-q1.csv",
    "photos/barn.raw",
    "logs/backup.log",
    "projects/abs/src/hello.c",
    "empty/",
    "latest-report.csv",
  ]) {
    t.ok(listed.includes(sample + entry), `tar -tf lists sample/${entry}`);
  }

  // The printed way to reach the master works.
  const jobs = await absIn(cwd, ["show", "jobs"], { ABS_CONFIG: `${dir}/master.conf` });
  t.equal(jobs.code, 0, jobs.stderr);
  t.match(jobs.stdout, succeeded);

  // Again: the daemons run, so it only shows the jobs.
  const masterPid = pidIn(masterPidFile);
  const slavePid = pidIn(slavePidFile);
  if (masterPid === null || slavePid === null) throw new Error("no pid files");
  t.ok(alive(masterPid) && alive(slavePid), "both daemons run");
  const again = await absIn(cwd, ["demo"]);
  t.equal(again.code, 0, again.stderr);
  t.match(
    again.stdout,
    `the demo in abs-demo is already running (abs-master pid ${masterPid}, abs-slave pid ${slavePid})\n`,
  );
  t.match(again.stdout, succeeded);
  t.notMatch(again.stdout, /^started /m);

  const stop = await absIn(cwd, ["demo", "--stop"]);
  t.equal(stop.code, 0, stop.stderr);
  t.equal(
    stop.stdout,
    `stopped abs-slave pid ${slavePid} (abs-demo/slave.conf), abs-master pid ${masterPid} (abs-demo/master.conf); abs demo starts the demo again\n`,
  );
  t.notOk(existsSync(masterPidFile), "the master's pid file is gone");
  t.notOk(existsSync(slavePidFile), "the slave's pid file is gone");
  t.notOk(alive(masterPid), "the master has exited");
  t.notOk(alive(slavePid), "the slave has exited");

  const twice = await absIn(cwd, ["demo", "--stop"]);
  t.equal(twice.code, 0);
  t.equal(twice.stdout, "nothing to stop: no daemon of the demo in abs-demo runs\n");

  // A slave that cannot start: the master comes up, abs demo says why in one line.
  writeFileSync(path.join(dir, "slave.conf"), "master: 127.0.0.1:1\nbogus: 1\n");
  const broken = await absIn(cwd, ["demo"]);
  remember();
  t.equal(broken.code, 1);
  t.match(broken.stderr, /^abs: abs-slave did not start: .*bogus.* \(see .*slave-daemon\.log\)\n$/);
  t.notMatch(broken.stderr, STACK_FRAME);
  const stopMaster = await absIn(cwd, ["demo", "--stop"]);
  t.equal(stopMaster.code, 0, stopMaster.stderr);
  t.match(stopMaster.stdout, /^stopped abs-master pid \d+ \(abs-demo\/master\.conf\)/);
});

t.test("a directory that is not a demo is refused, and left as it was", async (t) => {
  const cwd = mkdtempSync(path.join(os.tmpdir(), "abs-demo-test-"));
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }));
  const mine = path.join(cwd, "photos");
  writeFileSync(path.join(cwd, "notes.txt"), "mine\n");
  for (const [args, stderr] of [
    [
      ["demo", "."],
      `abs: ${cwd} exists and was not made by abs demo (no .abs-demo in it); give another DIR, or remove it\n`,
    ],
    [["demo", "notes.txt"], "abs: notes.txt exists and is not a directory; give another DIR\n"],
    [
      ["demo", "--stop", "."],
      `abs: ${cwd} is not a directory made by abs demo (no .abs-demo in it); nothing to stop there\n`,
    ],
    [
      ["demo", "--stop", "photos"],
      "abs: photos is not a directory made by abs demo (no .abs-demo in it); nothing to stop there\n",
    ],
    [
      ["-s", "/run/abs/admin.sock", "demo"],
      "abs: abs demo runs its own master in DIR: --socket and --config do not apply to it\n",
    ],
  ] as const) {
    const run = await absIn(cwd, args);
    t.equal(run.code, 2, args.join(" "));
    t.equal(run.stderr, stderr, args.join(" "));
    t.equal(run.stdout, "");
  }
  t.same(readdirSync(cwd), ["notes.txt"], "nothing written");
  t.notOk(existsSync(mine));
});

t.test("abs demo --help ends with examples", async (t) => {
  const run = await absIn(os.tmpdir(), ["demo", "--help"]);
  t.equal(run.code, 0);
  t.match(run.stdout, /^Usage: abs demo \[options\] \[dir\]\n/);
  t.match(run.stdout, /\nExamples:\n( {2}abs demo\b.*\n)+$/);
});
