// abs demo [DIR] and abs demo --stop [DIR]: ABS running on this host in one
// command, for a first look. DIR (default ./abs-demo) holds everything:
//
//   .abs-demo          marks DIR as made by abs demo (written last)
//   master.conf        realm DEMO, 127.0.0.1:<a free port>, job definition "sample"
//   slave.conf         slave demo-slave, allowed_paths DIR
//   realm.key          a new realm key, as abs keygen writes it
//   jobs.d/            more job definitions; the master notices edits by itself
//   sample/            a small generated tree, the sample's source
//   backups/           the sample's archives (GNU tar lists them)
//   jobs/              the master's jobs directory
//   master/, slave/    the daemons' state directories (slave/abs-slave.pid)
//   run/               admin.sock and abs-master.pid
//   log/               master-daemon.log, admin-access.log, slave-daemon.log
//
// Steps: write DIR, start abs-master then abs-slave the way an admin would
// (no -f: each returns once it serves, or says why not), run "sample" at
// once rather than wait for its schedule, follow that job with the admin
// socket's watch long-poll until it ends (bounded by DEMO_WAIT_MS), then
// print `abs show jobs` and what to try next. An earlier demo DIR is
// reused: daemons still running are left alone, stopped ones are started.
//
// --stop sends SIGTERM to every slave whose config is in DIR (slave.conf and
// any other added by hand), then to the master, each found by its pid file,
// and waits for each to exit. A pid file is trusted only if the process it
// names runs with that config (/proc/PID/cmdline), so a stale pid file
// whose number now belongs to another process never gets it killed.
//
// Exit statuses: 0 done; 2 DIR cannot be used (exists and is not a demo, or
// its path cannot go into a config file); 1 a daemon did not start or stop,
// or the sample job did not succeed in time (the message names the logs).

import { randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { mkdir, readdir, readFile, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { generateRealmKey, loadRealmKey } from "../../auth/realm-key.js";
import { writeSlaveKey } from "../../auth/slave-key.js";
import { GENERATED_CERT_FILE, loadOrCreateMasterTls } from "../../auth/tls.js";
import { DEFAULT_DEMO_DIR } from "../../config/default-paths.js";
import { loadSlaveConfig } from "../../config/slave-config.js";
import { AbsError, BadArgumentError, describeError, hasCode } from "../../errors.js";
import { isFinished } from "../../jobsdir/job.js";
import type { JobDetail } from "../../protocol/admin-api.js";
import { STOP_GRACE_MS } from "../../signals.js";
import { SLAVE_PID_FILE } from "../../slave/state-dir.js";
import { type CliContext, type Output, socketContext } from "../context.js";
import { EXIT, ExitError } from "../exit-status.js";
import { printable } from "../format.js";
import { showJobs } from "./show-jobs.js";
import { WATCH_WAIT_MS } from "./watch.js";
import { freeLoopbackPort } from "../../free-port.js";
import { nodeFlagsOf } from "../../shebang-flags.js";

/** DIR when none is given, relative to the current directory. */
export { DEFAULT_DEMO_DIR };
/** The demo's job definition, slave and realm. */
export const DEMO_DEFINITION = "sample";
export const DEMO_SLAVE = "demo-slave";
export const DEMO_REALM = "DEMO";
/** Every 10 seconds (6-field cron, seconds first). */
export const DEMO_SCHEDULE = "*/10 * * * * *";
/** How long the first sample job may take to succeed, from the daemons' start, in ms. */
export const DEMO_WAIT_MS = 60_000;
/** The file that marks DIR as made by abs demo. */
export const DEMO_MARKER = ".abs-demo";
/** abs-master writes its pid file next to its admin socket under this name (bin/abs-master-main.ts). */
const MASTER_PID_FILE = "abs-master.pid";
/** Longest Unix socket path Linux takes (sun_path is 108 bytes with the NUL). */
const MAX_SOCKET_PATH_BYTES = 107;
/** How often --stop looks whether a daemon has exited, in ms. */
const EXIT_POLL_MS = 50;

/** Where everything of a demo lives; every path absolute. */
export interface DemoLayout {
  dir: string;
  marker: string;
  masterConf: string;
  slaveConf: string;
  realmKey: string;
  slaveKey: string;
  jobsD: string;
  jobsDir: string;
  masterState: string;
  slaveState: string;
  logDir: string;
  socket: string;
  masterPid: string;
  slavePid: string;
  sample: string;
  backups: string;
  masterLog: string;
  slaveLog: string;
}

export function demoLayout(dir: string): DemoLayout {
  const at = (...p: string[]): string => path.join(dir, ...p);
  return {
    dir,
    marker: at(DEMO_MARKER),
    masterConf: at("master.conf"),
    slaveConf: at("slave.conf"),
    realmKey: at("realm.key"),
    slaveKey: at("slave.key"),
    jobsD: at("jobs.d"),
    jobsDir: at("jobs"),
    masterState: at("master"),
    slaveState: at("slave"),
    logDir: at("log"),
    socket: at("run", "admin.sock"),
    masterPid: at("run", MASTER_PID_FILE),
    slavePid: at("slave", SLAVE_PID_FILE),
    sample: at("sample"),
    backups: at("backups"),
    masterLog: at("log", "master-daemon.log"),
    slaveLog: at("log", "slave-daemon.log"),
  };
}

/** master.conf of the demo: the master and the one job definition. Pure. */
export function masterConfText(l: DemoLayout, port: number): string {
  return `# The master of the ABS demo, written by abs demo (see abs.conf(5)).
# Talk to it with:  ABS_CONFIG=${l.masterConf} abs show jobs
# More job definitions go in ${l.jobsD}/NAME.conf: the master
# notices a change there by itself. Stop the demo with: abs demo --stop DIR

[master]
realm = ${DEMO_REALM}
listen = 127.0.0.1:${port}
jobs_dir = ${l.jobsDir}
state_dir = ${l.masterState}
log_dir = ${l.logDir}
admin_socket = ${l.socket}
realm_key_file = ${l.realmKey}

# Back up sample/ into backups/ every 10 seconds. The first backup is full;
# each next one stores only what changed since the one before.
[job ${DEMO_DEFINITION}]
slave = ${DEMO_SLAVE}
schedule = ${DEMO_SCHEDULE}
method = tar
tar.sources = ${l.sample}
tar.destination = ${l.backups}
tar.level = incremental
overlap = forbid
`;
}

/**
 * slave.conf of the demo's slave: its own key (never the realm key) and the
 * pin of the master's certificate, `fingerprint`. Pure.
 */
export function slaveConfText(l: DemoLayout, port: number, fingerprint: string): string {
  return `# The slave of the ABS demo, written by abs demo (see abs-slave(8)).
# A second slave: copy this file, give the copy another name, state_dir,
# log_dir and key_file (abs keygen --slave NAME --realm-key ${l.realmKey} FILE),
# and start abs-slave -c on it.

master: 127.0.0.1:${port}
name: ${DEMO_SLAVE}
state_dir: ${l.slaveState}
log_dir: ${l.logDir}
# This slave's own key, made from the realm key by abs keygen --slave.
key_file: ${l.slaveKey}
# The master's certificate (abs fingerprint ${l.masterState}/${GENERATED_CERT_FILE}).
master_fingerprint: ${fingerprint}
allowed_paths: ${l.dir}
`;
}

/** One entry of the sample tree, its path relative to sample/. */
export type SampleEntry =
  | { kind: "dir"; path: string }
  | { kind: "file"; path: string; content: string | Buffer }
  | { kind: "symlink"; path: string; target: string };

/**
 * The sample tree: text, a CSV, a compressible log, a binary file, a name
 * with a space, a nested and an empty directory, a symbolic link. Pure:
 * `random` gives the binary file's bytes.
 */
export function sampleTree(random: (bytes: number) => Buffer): SampleEntry[] {
  const rows = ["date,site,backups,gib"];
  for (let day = 1; day <= 90; day++) {
    const date = new Date(Date.UTC(2026, 0, day)).toISOString().slice(0, 10);
    rows.push(`${date},${["green-acres", "red-barn", "blue-sky"][day % 3]},${day % 7},${day * 3}`);
  }
  const log: string[] = [];
  for (let i = 0; i < 2000; i++) {
    log.push(
      `2026-11-${String(1 + (i % 28)).padStart(2, "0")} 02:30:${String(i % 60).padStart(2, "0")} backup ok (${i * 7} files)`,
    );
  }
  return [
    {
      kind: "file",
      path: "README.txt",
      content:
        "A sample tree for the ABS demo: abs demo backs it up every 10 seconds.\n" +
        "Change a file here and the next incremental backup holds just that file.\n",
    },
    { kind: "dir", path: "documents" },
    {
      kind: "file",
      path: "documents/letter to the board.txt",
      content: "Dear board,\n\nthe backups ran every night this year.\n\nRegards,\nthe admins\n",
    },
    { kind: "dir", path: "documents/reports" },
    { kind: "file", path: "documents/reports/2026-q1.csv", content: rows.join("\n") + "\n" },
    { kind: "dir", path: "photos" },
    { kind: "file", path: "photos/barn.raw", content: random(256 * 1024) },
    { kind: "dir", path: "logs" },
    { kind: "file", path: "logs/backup.log", content: log.join("\n") + "\n" },
    { kind: "dir", path: "projects" },
    { kind: "dir", path: "projects/abs" },
    { kind: "dir", path: "projects/abs/src" },
    {
      kind: "file",
      path: "projects/abs/src/hello.c",
      content: '#include <stdio.h>\n\nint main(void) {\n  puts("hello, backup");\n  return 0;\n}\n',
    },
    { kind: "file", path: "projects/abs/TODO", content: "- restore drill on Friday\n" },
    { kind: "dir", path: "empty" },
    { kind: "symlink", path: "latest-report.csv", target: "documents/reports/2026-q1.csv" },
  ];
}

/** What abs demo needs from the outside world; bin/abs.ts passes the real one. */
export interface DemoEnv {
  /** Where abs-master.cjs and abs-slave.js are (next to abs.js). */
  binDir: string;
  /** The node that runs them (process.execPath). */
  execPath: string;
  /** What DIR is relative to, and the daemons' working directory. */
  cwd: string;
  /** The daemons' environment. */
  env: NodeJS.ProcessEnv;
  /** Where the progress, the jobs table and the hints go. */
  out: Output;
  /** How the printed hints call abs: "abs", or "npx abs" when run through npx. */
  absCommand: string;
  /** How long the first sample job may take, in ms, from the daemons' start. Default DEMO_WAIT_MS. */
  waitMs?: number;
}

/** What is at DIR. */
type DirKind = "missing" | "empty" | "demo" | "other" | "not-a-directory";

async function inspectDir(dir: string): Promise<DirKind> {
  let names: string[];
  try {
    if (!(await stat(dir)).isDirectory()) return "not-a-directory";
    names = await readdir(dir);
  } catch (err) {
    if (hasCode(err, "ENOENT")) return "missing";
    throw new BadArgumentError(`cannot use ${dir}: ${describeError(err)}`);
  }
  if (names.length === 0) return "empty";
  return names.includes(DEMO_MARKER) ? "demo" : "other";
}

/** DIR as the user sees it: relative to the current directory when inside it. */
function shown(dir: string, cwd: string): string {
  const rel = path.relative(cwd, dir);
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : dir;
}

/** Refuses a DIR whose path the config files could not hold, or too long for the socket. */
function checkDemoPath(dir: string): void {
  // eslint-disable-next-line no-control-regex
  const bad = /[,;#"'\\\u0000-\u001f\u007f]/.exec(dir);
  if (bad !== null) {
    throw new BadArgumentError(
      `the path ${JSON.stringify(dir)} holds ${JSON.stringify(bad[0])}, which the demo's config files cannot hold; give another DIR`,
    );
  }
  const socket = demoLayout(dir).socket;
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH_BYTES) {
    throw new BadArgumentError(
      `the admin socket ${socket} would be longer than the ${MAX_SOCKET_PATH_BYTES} bytes a Unix socket path may have; give a shorter DIR`,
    );
  }
}

async function writeSample(root: string): Promise<void> {
  await mkdir(root);
  for (const e of sampleTree(randomBytes)) {
    const file = path.join(root, e.path);
    if (e.kind === "dir") await mkdir(file);
    else if (e.kind === "file") await writeFile(file, e.content);
    else await symlink(e.target, file);
  }
}

/** Writes a new demo into `l.dir` (missing or empty); the marker last. */
async function createDemo(l: DemoLayout): Promise<number> {
  await mkdir(l.dir, { recursive: true });
  const port = await freeLoopbackPort();
  await generateRealmKey(l.realmKey);
  await writeSlaveKey(await loadRealmKey(l.realmKey), DEMO_SLAVE, l.slaveKey);
  // The master's certificate, made now as the master would make it at its
  // first start, so that slave.conf can pin it.
  const tls = await loadOrCreateMasterTls({ stateDir: l.masterState, hostName: os.hostname() });
  // The daemons refuse a config that group or others may change (as sshd's
  // StrictModes), and a user's umask is often 002: the modes are set here.
  await mkdir(l.jobsD, { mode: 0o755 });
  await writeSample(l.sample);
  await writeFile(l.masterConf, masterConfText(l, port), { mode: 0o644 });
  await writeFile(l.slaveConf, slaveConfText(l, port, tls.fingerprint), { mode: 0o644 });
  await writeFile(l.marker, "made by abs demo; abs demo --stop DIR stops its daemons\n");
  return port;
}

/**
 * The arguments of process `pid` (`--config=FILE` as FILE), resolved
 * against its working directory; null if it is gone.
 */
async function argsOf(pid: number): Promise<string[] | null> {
  let cmdline: string;
  try {
    cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return null;
  }
  // A zombie has an empty command line: it has exited.
  if (cmdline === "") return null;
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => "/");
  return cmdline
    .split("\0")
    .filter((a) => a !== "")
    .map((a) => path.resolve(cwd, a.startsWith("--config=") ? a.slice("--config=".length) : a));
}

/**
 * The pid of the daemon started with config `conf` whose pid file is
 * `pidFile`, or null when none runs (no pid file, the process is gone, or
 * its number now belongs to another process).
 */
async function daemonPid(pidFile: string, conf: string): Promise<number | null> {
  const text = await readFile(pidFile, "utf8").catch(() => "");
  const pid = Number(text.trim());
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  const args = await argsOf(pid);
  return args?.includes(conf) === true ? pid : null;
}

interface Daemon {
  program: "abs-master" | "abs-slave";
  conf: string;
  pidFile: string;
  log: string;
}

/** Each daemon's executable in binDir (abs-master's is CommonJS: bin/abs-master.cts says why). */
const DAEMON_SCRIPTS: Record<Daemon["program"], string> = {
  "abs-master": "abs-master.cjs",
  "abs-slave": "abs-slave.js",
};

function demoDaemons(l: DemoLayout): { master: Daemon; slave: Daemon } {
  return {
    master: { program: "abs-master", conf: l.masterConf, pidFile: l.masterPid, log: l.masterLog },
    slave: { program: "abs-slave", conf: l.slaveConf, pidFile: l.slavePid, log: l.slaveLog },
  };
}

/** A failure of the demo itself: exit status 1, one line. */
function failure(message: string): ExitError {
  return new ExitError(EXIT.FAILURE, new AbsError("COMMAND_FAILED", message));
}

/** Starts a daemon without -f: it returns once it serves, or prints why it could not. */
async function startDaemon(d: Daemon, e: DemoEnv): Promise<number> {
  const script = path.join(e.binDir, DAEMON_SCRIPTS[d.program]);
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>(
    (resolve, reject) => {
      const child = spawn(e.execPath, [...nodeFlagsOf(script), script, "-c", d.conf], {
        cwd: e.cwd,
        env: e.env,
        stdio: ["ignore", "ignore", "pipe"],
      });
      let err = "";
      child.stderr.setEncoding("utf8").on("data", (s: string) => (err += s));
      child.once("error", reject);
      child.once("close", (status) => resolve({ code: status, stderr: err }));
    },
  ).catch((err: unknown) => {
    throw failure(`cannot run ${script}: ${describeError(err)}`);
  });
  if (code !== 0) {
    const why = stderr.trim().split("\n").join("; ") || `exit status ${code ?? "?"}`;
    throw failure(`${d.program} did not start: ${why} (see ${d.log})`);
  }
  const pid = await daemonPid(d.pidFile, d.conf);
  if (pid === null)
    throw failure(`${d.program} started but ${d.pidFile} names no running ${d.program}`);
  return pid;
}

/**
 * Follows job `id` with the watch long-poll until it finishes or the
 * deadline passes; prints each change of state. Resolves with the job as
 * last seen.
 */
async function follow(ctx: CliContext, id: number, deadline: number): Promise<JobDetail> {
  let serial = 0;
  // Queued is what `run` just said.
  let lastState = "queued";
  for (;;) {
    const left = Math.ceil(Math.min(deadline - Date.now(), WATCH_WAIT_MS));
    const { job } = await ctx.call(
      "watch",
      { id, serial, timeoutMs: Math.max(0, left) },
      { timeoutMs: Math.max(0, left) + 15_000 },
    );
    if (job.state !== lastState) {
      const why = job.waitReason ?? job.result;
      ctx.out.write(`job ${id} ${job.state}${why === null ? "" : `: ${printable(why)}`}\n`);
      lastState = job.state;
    }
    if (isFinished(job.state) || left <= 0) return job;
    serial = job.serial;
  }
}

/**
 * The sample job to wait for: one the master has already queued (its
 * schedule may fire as it starts, or catch up a run missed while the demo
 * was stopped), else a run made now rather than wait up to 10 s for the
 * schedule. Either way the job is then followed by id, through the
 * master's change events. (A schedule firing between the two calls makes a
 * second job beside ours; overlap = forbid does not stop a run by hand.)
 */
async function firstJob(ctx: CliContext, out: Output): Promise<number> {
  const { jobs } = await ctx.call("show-jobs", {
    definition: DEMO_DEFINITION,
    states: ["queued", "dispatched", "running"],
  });
  const queued = jobs.map((j) => j.id).sort((a, b) => a - b)[0];
  if (queued !== undefined) {
    out.write(
      `job ${queued} queued: ${DEMO_DEFINITION} on ${DEMO_SLAVE}, by its schedule (every 10 s)\n`,
    );
    return queued;
  }
  const made = (await ctx.call("run", { definition: DEMO_DEFINITION })).jobs[0];
  if (made === undefined) throw failure(`the master made no ${DEMO_DEFINITION} job`);
  out.write(`job ${made} queued: ${DEMO_DEFINITION} on ${DEMO_SLAVE}, run now (then every 10 s)\n`);
  return made;
}

/** What to try next: commands with a comment each, then where the logs and archives are. */
function hints(l: DemoLayout, e: DemoEnv, jobId: number | null, archive: string | null): string {
  const abs = e.absCommand;
  const at = (p: string): string => shown(p, e.cwd);
  const dirArg = path.resolve(e.cwd, DEFAULT_DEMO_DIR) === l.dir ? "" : ` ${at(l.dir)}`;
  const tarFile = archive === null ? `${DEMO_DEFINITION}-*-full.tar` : archive;
  const commands: [string, string][] = [
    [`export ABS_CONFIG=${l.masterConf}`, ""],
    [`${abs} show jobs`, "a new incremental every 10 s"],
  ];
  if (jobId !== null)
    commands.push([`${abs} show job ${jobId}`, "one job: its parameters, times and log"]);
  commands.push(
    [`${abs} watch ID`, "follow a job until it ends"],
    [`tar -tvf ${at(path.join(l.backups, tarFile))}`, "GNU tar reads the archives"],
    [`${abs} demo --stop${dirArg}`, "stop the daemons"],
  );
  // Comments line up, except after a command too long to wait for.
  const width = Math.max(...commands.map(([c]) => c.length).filter((n) => n <= 40));
  const lines = commands.map(([c, comment]) =>
    comment === "" ? `  ${c}` : `  ${c.padEnd(width)}  # ${comment}`,
  );
  return [
    "",
    `Next (${abs} finds this master through ABS_CONFIG, or ${abs} -c ${at(l.masterConf)}):`,
    ...lines,
    `Logs: ${at(l.masterLog)}, ${at(l.slaveLog)}. Archives: ${at(l.backups)}/.`,
    "",
  ].join("\n");
}

export async function demo(dirArg: string, e: DemoEnv): Promise<void> {
  const dir = path.resolve(e.cwd, dirArg);
  checkDemoPath(dir);
  const kind = await inspectDir(dir);
  const name = shown(dir, e.cwd);
  if (kind === "not-a-directory") {
    throw new BadArgumentError(`${name} exists and is not a directory; give another DIR`);
  }
  if (kind === "other") {
    throw new BadArgumentError(
      `${name} exists and was not made by abs demo (no ${DEMO_MARKER} in it); give another DIR, or remove it`,
    );
  }
  const l = demoLayout(dir);
  const daemons = demoDaemons(l);
  const ctx = socketContext(l.socket, `admin_socket in ${l.masterConf}`, e.out);

  let masterPid: number | null = null;
  let slavePid: number | null = null;
  if (kind === "missing" || kind === "empty") {
    let port: number;
    try {
      port = await createDemo(l);
    } catch (err) {
      // Half a demo is no demo: leave DIR as it was found.
      await rm(dir, { recursive: true, force: true });
      if (kind === "empty") await mkdir(dir).catch(() => undefined);
      throw failure(`cannot write ${name}: ${describeError(err)}`);
    }
    e.out.write(
      `wrote ${name}/: realm ${DEMO_REALM}, master on 127.0.0.1:${port}, slave ${DEMO_SLAVE}, job ${DEMO_DEFINITION} (tar ${name}/sample into ${name}/backups every 10 s)\n`,
    );
  } else {
    masterPid = await daemonPid(daemons.master.pidFile, daemons.master.conf);
    slavePid = await daemonPid(daemons.slave.pidFile, daemons.slave.conf);
    if (masterPid !== null && slavePid !== null) {
      e.out.write(
        `the demo in ${name} is already running (abs-master pid ${masterPid}, abs-slave pid ${slavePid})\n\n`,
      );
      await showJobs(ctx, {});
      e.out.write(hints(l, e, null, await newestArchive(l)));
      return;
    }
  }

  const deadline = Date.now() + (e.waitMs ?? DEMO_WAIT_MS);
  const started: string[] = [];
  if (masterPid === null) {
    masterPid = await startDaemon(daemons.master, e);
    started.push(`abs-master (pid ${masterPid})`);
  }
  if (slavePid === null) {
    slavePid = await startDaemon(daemons.slave, e);
    started.push(`abs-slave (pid ${slavePid})`);
  }
  e.out.write(`started ${started.join(" and ")}\n`);

  const id = await firstJob(ctx, e.out);
  const job = await follow(ctx, id, deadline);
  const logs = `${shown(l.masterLog, e.cwd)} and ${shown(l.slaveLog, e.cwd)}`;
  if (!isFinished(job.state)) {
    const waitMs = e.waitMs ?? DEMO_WAIT_MS;
    throw failure(
      `job ${id} is still ${job.state}${job.waitReason === null ? "" : ` (${job.waitReason})`} after ${waitMs / 1000} s; see ${logs}`,
    );
  }
  if (job.state !== "succeeded") {
    throw failure(
      `job ${id} ${job.state}: ${job.result ?? "no reason given"}; see ${e.absCommand} show job ${id} (ABS_CONFIG=${l.masterConf}) and ${logs}`,
    );
  }
  e.out.write("\n");
  await showJobs(ctx, {});
  const archive = job.resultData?.archive;
  e.out.write(hints(l, e, id, typeof archive === "string" ? archive : await newestArchive(l)));
}

/** The newest full backup in backups/, or null. Archive names sort in time order. */
async function newestArchive(l: DemoLayout): Promise<string | null> {
  const names = await readdir(l.backups).catch(() => [] as string[]);
  const tars = names
    .filter((n) => n.startsWith(`${DEMO_DEFINITION}-`) && n.endsWith("-full.tar"))
    .sort();
  return tars[tars.length - 1] ?? null;
}

/** Whether process `pid` still runs (a zombie counts as exited). */
async function running(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return hasCode(err, "EPERM");
  }
  const status = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  // "pid (comm) S ...": the state follows the last ")".
  return status === null || status.slice(status.lastIndexOf(")") + 2)[0] !== "Z";
}

/**
 * Waits for process `pid` to exit. It is not our child, so no exit event
 * reaches us: we look every EXIT_POLL_MS, as start-stop-daemon --retry does.
 */
async function exited(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (await running(pid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, EXIT_POLL_MS));
  }
  return true;
}

/** The slaves whose config file is in DIR: slave.conf, and any added by hand. */
async function slavesIn(l: DemoLayout): Promise<Daemon[]> {
  const found: Daemon[] = [];
  for (const n of (await readdir(l.dir)).sort()) {
    const conf = path.join(l.dir, n);
    if (!n.endsWith(".conf") || conf === l.masterConf) continue;
    const text = await readFile(conf, "utf8").catch(() => null);
    if (text === null) continue;
    const loaded = loadSlaveConfig(conf, text, { hostName: os.hostname() });
    if ("errors" in loaded) continue;
    const { stateDir, logDir } = loaded.config;
    found.push({
      program: "abs-slave",
      conf,
      pidFile: path.join(stateDir, SLAVE_PID_FILE),
      log: path.join(logDir, "slave-daemon.log"),
    });
  }
  return found;
}

/** SIGTERM, then wait for the exit; the pid file goes too (a daemon killed hard leaves it). */
async function stopDaemon(d: Daemon, pid: number): Promise<void> {
  try {
    process.kill(pid, "SIGTERM");
  } catch (err) {
    if (!hasCode(err, "ESRCH")) {
      throw failure(`cannot stop ${d.program} pid ${pid}: ${describeError(err)}`);
    }
  }
  const limit = STOP_GRACE_MS + 5_000;
  if (!(await exited(pid, limit))) {
    throw failure(
      `${d.program} pid ${pid} did not exit within ${limit / 1000} s of SIGTERM (see ${d.log}); kill -KILL ${pid} ends it`,
    );
  }
  await rm(d.pidFile, { force: true });
}

export async function stopDemo(dirArg: string, e: DemoEnv): Promise<void> {
  const dir = path.resolve(e.cwd, dirArg);
  const name = shown(dir, e.cwd);
  if ((await inspectDir(dir)) !== "demo") {
    throw new BadArgumentError(
      `${name} is not a directory made by abs demo (no ${DEMO_MARKER} in it); nothing to stop there`,
    );
  }
  const l = demoLayout(dir);
  // Slaves first: a slave stopping reports its jobs to the master.
  const daemons = [...(await slavesIn(l)), demoDaemons(l).master];
  const stopped: string[] = [];
  for (const d of daemons) {
    const pid = await daemonPid(d.pidFile, d.conf);
    if (pid === null) {
      // Left by a daemon that died without its SIGTERM: it names no daemon now.
      await rm(d.pidFile, { force: true });
      continue;
    }
    await stopDaemon(d, pid);
    stopped.push(`${d.program} pid ${pid} (${shown(d.conf, e.cwd)})`);
  }
  e.out.write(
    stopped.length === 0
      ? `nothing to stop: no daemon of the demo in ${name} runs\n`
      : `stopped ${stopped.join(", ")}; ${e.absCommand} demo${path.resolve(e.cwd, DEFAULT_DEMO_DIR) === dir ? "" : ` ${name}`} starts the demo again\n`,
  );
}
