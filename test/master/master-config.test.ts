// abs-master and its config as a process: -t, a refused start, SIGHUP with a
// good and a bad config, `reload` over the admin socket, and jobs.d watched
// for changes. (Each kind of config mistake has its exact message in
// test/config/*.test.ts.)

import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  watch,
  writeFileSync,
} from "node:fs";
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import t from "tap";
import { MASTER_BIN, MasterProcess, runNode } from "../helpers/master-process.js";
import { tempDir } from "../helpers/tmp.js";
import { runAbs } from "../helpers/abs-cli.js";

const HOME = [
  "[job home]",
  "slave = green-acres",
  "method = command",
  "command.program = /bin/true",
  "",
].join("\n");

interface ScheduleResult {
  definitions: { definition: string; schedule: string | null; next: number[] }[];
}

async function definitions(m: MasterProcess): Promise<string[]> {
  const r = (await m.call("show-schedule", {})) as unknown as ScheduleResult;
  return r.definitions.map((d) => d.definition);
}

t.test("-t prints a summary and exits 0, or every error and exits 1", async (t) => {
  const dir = tempDir(t);
  const conf = path.join(dir, "master.conf");
  writeFileSync(conf, `[master]\nrealm = TEST\n\n${HOME}`);
  const ok = await runNode([MASTER_BIN, "-t", "-c", conf]);
  t.equal(ok.status, 0);
  t.equal(ok.stdout, `${conf}: OK; 1 job definition: home (green-acres, manual only)\n`);

  writeFileSync(
    conf,
    [
      "[master]",
      "realm = TEST",
      "max_concurent = 5",
      "",
      "[job home]",
      "slave = green-acres",
      "schedule = 0 25 * * *",
      "timezone = Mars/Olympus",
      "method = command",
      "command.program = /bin/true",
      "retry_backoff = 5 parsecs",
      "",
    ].join("\n"),
  );
  const bad = await runNode([MASTER_BIN, "-t", "-c", conf]);
  t.equal(bad.status, 1);
  t.equal(bad.stdout, "");
  t.equal(
    bad.stderr,
    [
      `${conf}:3: max_concurent "5": unknown key; did you mean "max_concurrent"?`,
      `${conf}:7: schedule "0 25 * * *": hour 25 is out of range 0-23`,
      `${conf}:8: timezone "Mars/Olympus": unknown time zone; expected an IANA name such as Europe/Paris or UTC`,
      `${conf}:11: retry_backoff "5 parsecs": expected a duration such as 90s, 15m, 2h, 1d or 1h30m`,
      `${conf}:11: retry_backoff "5 parsecs": only used when retries is more than 0`,
      "abs-master: 5 error(s) in the config",
      "",
    ].join("\n"),
    "every error, each with its file, line, key, value and why",
  );

  const missing = await runNode([MASTER_BIN, "-t", "-c", path.join(dir, "nope.conf")]);
  t.equal(missing.status, 1);
  t.equal(
    missing.stderr,
    `abs-master: ${dir}/nope.conf: cannot read: ENOENT: no such file or directory, open '${dir}/nope.conf'\n`,
  );

  const usage = await runNode([MASTER_BIN, "--frobnicate"]);
  t.equal(usage.status, 2);
  t.match(usage.stderr, /unknown option '--frobnicate'/);
});

t.test(
  "-t refuses a service principal of another realm, which would fail every slave",
  async (t) => {
    const dir = tempDir(t);
    const conf = path.join(dir, "master.conf");
    writeFileSync(
      conf,
      [
        "[master]",
        "realm = EXAMPLE.TEST",
        "auth = kerberos",
        `keytab = ${dir}/abs.keytab`,
        "service_principal = abs/backup.example.test@OTHER.TEST",
        "",
        HOME,
      ].join("\n"),
    );
    const bad = await runNode([MASTER_BIN, "-t", "-c", conf]);
    t.equal(bad.status, 1);
    t.equal(
      bad.stderr,
      `${conf}:5: service_principal "abs/backup.example.test@OTHER.TEST": its realm OTHER.TEST is not the master's realm EXAMPLE.TEST (write it without @REALM, or with @EXAMPLE.TEST)\n` +
        "abs-master: 1 error(s) in the config\n",
    );
  },
);

t.test(
  "an address it cannot listen on: abs-master exits 1 naming the setting and why",
  async (t) => {
    // Another program holds the slave link's port.
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    t.teardown(() => holder.close());
    const port = (holder.address() as net.AddressInfo).port;
    const taken = await MasterProcess.prepare(t, { listen: `127.0.0.1:${port}` });
    const r1 = await runNode([
      MASTER_BIN,
      "-f",
      "--no-voting",
      "--yes-do-it",
      "-c",
      taken.confPath,
    ]);
    t.equal(r1.status, 1);
    t.match(
      r1.stderr,
      `abs-master: cannot listen for slaves on 127.0.0.1:${port} (listen): the address is already in use (by another abs-master, or another program)\n`,
    );

    // The admin socket's name held by a directory; its parent a file.
    const m = await MasterProcess.prepare(t);
    const conf = readFileSync(m.confPath, "utf8");
    const dirThere = path.join(m.dir, "a-dir");
    mkdirSync(dirThere);
    writeFileSync(
      m.confPath,
      conf.replace(`admin_socket = ${m.socket}`, `admin_socket = ${dirThere}`),
    );
    const r2 = await runNode([MASTER_BIN, "-f", "--no-voting", "--yes-do-it", "-c", m.confPath]);
    t.equal(r2.status, 1);
    t.match(
      r2.stderr,
      `abs-master: cannot listen for admin requests on ${dirThere} (admin_socket): something that is not a socket already has that name\n`,
    );
    const underFile = path.join(m.dir, "master.conf", "admin.sock");
    writeFileSync(
      m.confPath,
      conf.replace(`admin_socket = ${m.socket}`, `admin_socket = ${underFile}`),
    );
    const r3 = await runNode([MASTER_BIN, "-f", "--no-voting", "--yes-do-it", "-c", m.confPath]);
    t.equal(r3.status, 1);
    t.match(
      r3.stderr,
      `abs-master: cannot create ${m.confPath} (the directory of admin_socket): EEXIST: file already exists`,
    );
  },
);

t.test("SIGHUP: a good config applies at once, a bad one keeps the running config", async (t) => {
  const m = await MasterProcess.start(t, { jobs: HOME });
  t.same(await definitions(m), ["home"]);

  // Good: a new definition in jobs.d and a new limit in master.conf.
  writeFileSync(
    path.join(m.dir, "jobs.d", "attic.conf"),
    HOME.replace("[job home]", "[job attic]"),
  );
  m.writeConfig({ master: "max_concurrent = 7", jobs: HOME });
  let from = m.log.length;
  m.signal("SIGHUP");
  await m.waitForOutput(
    /reloaded: .*2 job definitions: home \(green-acres, manual only\), attic/,
    10_000,
    from,
  );
  t.same(await definitions(m), ["home", "attic"]);

  // Bad: an unknown key. The running config stays, and the log says why.
  writeFileSync(
    path.join(m.dir, "jobs.d", "attic.conf"),
    HOME.replace("[job home]", "[job attic]") + "colour = blue\n",
  );
  from = m.log.length;
  m.signal("SIGHUP");
  const refused = await m.waitForOutput(
    /reload refused; keeping the running config:\n(.*)/,
    10_000,
    from,
  );
  const attic = path.join(m.dir, "jobs.d", "attic.conf");
  t.equal(refused[1], `${attic}:5: colour "blue": unknown key`);
  t.same(await definitions(m), ["home", "attic"], "still the last good config");
  // `reload` over the admin socket reports the same error.
  await t.rejects(m.call("reload"), {
    code: "CONFIG",
    message: `${attic}:5: colour "blue": unknown key`,
  });
  const status = (await m.call("status")) as { mode: string };
  t.equal(status.mode, "real", "still serving");
  // A mistake in master.conf itself: abs, told where master.conf is, still
  // takes admin_socket from it, so `abs reload` reaches the master, which
  // lists the mistake and logs it.
  writeFileSync(m.confPath, readFileSync(m.confPath, "utf8") + "\n[master]\n");
  const viaConfig = await runAbs(["-c", m.confPath, "reload"]);
  t.equal(viaConfig.code, 6, viaConfig.stderr);
  t.match(viaConfig.stderr, `${m.confPath}:`);
  t.match(viaConfig.stderr, /cannot take admin_socket/, "a second [master]: not certain, refused");
  writeFileSync(m.confPath, readFileSync(m.confPath, "utf8").replace(/\n\[master\]\n$/, "\n"));
  const lines = readFileSync(m.confPath, "utf8").split("\n");
  const at = lines.findIndex((l) => l.startsWith("[master]")) + 1;
  lines.splice(at, 0, "orphan_grace = soon");
  writeFileSync(m.confPath, lines.join("\n"));
  from = m.log.length;
  const reached = await runAbs(["-c", m.confPath, "reload"]);
  t.equal(reached.code, 6, reached.stderr);
  t.match(reached.stderr, `${m.confPath}:${at + 1}: orphan_grace "soon": `);
  t.notMatch(reached.stderr, /cannot take admin_socket/, "the master answered");
  await m.waitForOutput(/reload refused; keeping the running config/, 10_000, from);

  // A setting that needs a restart is named, not silently ignored.
  writeFileSync(
    path.join(m.dir, "jobs.d", "attic.conf"),
    HOME.replace("[job home]", "[job attic]"),
  );
  m.writeConfig({ master: "handshake_timeout = 5s", jobs: HOME });
  const r = (await m.call("reload")) as { summary: string };
  t.match(r.summary, /; needs a restart to change: handshake_timeout$/);
  await m.stop();
});

t.test("jobs.d is watched: adding, changing and removing a file acts like SIGHUP", async (t) => {
  const m = await MasterProcess.start(t, { jobs: HOME });
  const file = path.join(m.dir, "jobs.d", "attic.conf");
  let from = m.log.length;
  writeFileSync(file, HOME.replace("[job home]", "[job attic]"));
  await m.waitForOutput(/reloaded: .*attic/, 10_000, from);
  t.same(await definitions(m), ["home", "attic"]);

  from = m.log.length;
  writeFileSync(file, HOME.replace("[job home]", "[job cellar]"));
  await m.waitForOutput(/reloaded: .*cellar/, 10_000, from);
  t.same(await definitions(m), ["home", "cellar"]);

  from = m.log.length;
  unlinkSync(file);
  await m.waitForOutput(/reloaded: .*1 job definition: home/, 10_000, from);
  t.same(await definitions(m), ["home"]);
  await m.stop();
});

t.test(
  "a jobs.d made after the start is watched too; removing it drops its definitions",
  async (t) => {
    const m = await MasterProcess.prepare(t, { jobs: HOME });
    const jobsD = path.join(m.dir, "jobs.d");
    rmSync(jobsD, { recursive: true });
    await m.launch();
    let from = m.log.length;
    // Made with a file already in it (as `cp -r` or a deploy would).
    mkdirSync(path.join(m.dir, "jobs.d.new"));
    writeFileSync(
      path.join(m.dir, "jobs.d.new", "attic.conf"),
      HOME.replace("[job home]", "[job attic]"),
    );
    renameSync(path.join(m.dir, "jobs.d.new"), jobsD);
    await m.waitForOutput(/reloaded: .*attic/, 10_000, from);
    t.same(await definitions(m), ["home", "attic"]);

    // Then watched like one there from the start.
    from = m.log.length;
    writeFileSync(path.join(jobsD, "cellar.conf"), HOME.replace("[job home]", "[job cellar]"));
    await m.waitForOutput(/reloaded: .*cellar/, 10_000, from);
    t.same(await definitions(m), ["home", "attic", "cellar"]);

    from = m.log.length;
    rmSync(jobsD, { recursive: true });
    await m.waitForOutput(/reloaded: .*1 job definition: home/, 10_000, from);
    t.same(await definitions(m), ["home"]);
    await m.stop();
  },
);

t.test(
  "a second master on the same jobs directory is refused; the first keeps serving",
  async (t) => {
    const m = await MasterProcess.start(t, { jobs: HOME });
    // Same config: same jobs directory (and same admin socket).
    const second = await runNode([MASTER_BIN, "-f", "-c", m.confPath]);
    t.equal(second.status, 1);
    t.match(second.stderr, /abs-master: .*(locked|in use)/);
    const status = (await m.call("status")) as { pid: number };
    t.equal(status.pid, m.pid);
    await m.stop();
  },
);

t.test(
  "without -f the master goes into the background once it serves, with a pid file",
  async (t) => {
    const m = await MasterProcess.start(t, { jobs: HOME });
    await m.stop();
    const started = await runNode([MASTER_BIN, "-c", m.confPath]);
    t.equal(started.status, 0, started.stderr);
    const pidFile = path.join(path.dirname(m.socket), "abs-master.pid");
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    t.teardown(() => {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    });
    const status = (await m.call("status")) as { pid: number };
    t.equal(status.pid, pid, "the pid file names the daemon that answers");
    const mode = (f: string): string => (statSync(f).mode & 0o777).toString(8);
    t.equal(mode(pidFile), "644", "the pid file is readable by all");
    t.equal(mode(path.join(m.dir, "log")), "750", "log_dir as asked, despite the daemon's umask");
    t.equal(mode(path.dirname(m.socket)), "755", "the socket's directory is reachable");
    t.equal(mode(m.socket), "660", "the socket has admin_socket_mode");
    process.kill(pid, "SIGTERM");
    // The daemon removes its pid file as it exits: wait for that event.
    await new Promise<void>((resolve) => {
      const watcher = watch(path.dirname(pidFile), () => {
        if (!existsSync(pidFile)) {
          watcher.close();
          resolve();
        }
      });
      if (!existsSync(pidFile)) {
        watcher.close();
        resolve();
      }
    });
    t.notOk(existsSync(pidFile));

    // A start that fails in the background reports why, in the foreground.
    writeFileSync(m.keyFile, "not a key\n");
    const failed = await runNode([MASTER_BIN, "-c", m.confPath]);
    t.equal(failed.status, 1);
    t.match(failed.stderr, /^abs-master: .*realm\.key/);
  },
);

t.test("abs-master -f | head: the master outlives its console, and logs to its file", async (t) => {
  const m = await MasterProcess.prepare(t);
  const child = spawn(
    process.execPath,
    [MASTER_BIN, "-f", "--no-voting", "--yes-do-it", "-c", m.confPath],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  t.teardown(() => void child.kill("SIGKILL"));
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  // Read the first line, then close the pipe, as head does.
  await new Promise<void>((resolve) => {
    child.stdout.once("data", () => {
      child.stdout.destroy();
      resolve();
    });
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  const log = path.join(m.dir, "log", "master-daemon.log");
  await Promise.race([
    waitForFile(log, /abs-master pid \d+ serving/),
    exited.then((c) => Promise.reject(new Error(`abs-master exited (${c}): ${stderr}`))),
  ]);
  t.match(await m.call("status"), { mode: "real" }, "still serving");
  t.match(readFileSync(log, "utf8"), /warn the console went away \(EPIPE\); logging to .* only/);
  child.kill("SIGTERM");
  t.equal(await exited, 0, `stopped cleanly (stderr: ${stderr})`);
});

/** Resolves once `file` exists and matches `pattern`; watches its directory, no polling. */
function waitForFile(file: string, pattern: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    const matches = (): boolean => existsSync(file) && pattern.test(readFileSync(file, "utf8"));
    if (matches()) return resolve();
    const watcher = watch(path.dirname(file), () => {
      if (!matches()) return;
      watcher.close();
      clearTimeout(timer);
      resolve();
    });
    const timer = setTimeout(() => {
      watcher.close();
      reject(new Error(`${file} never matched ${String(pattern)}`));
    }, 30_000);
  });
}

t.test("admin socket: its directory writable by others is refused", async (t) => {
  // The attack: in such a directory anyone may put their own socket in the
  // master's place and read (or answer) every admin request.
  for (const mode of [0o777, 0o1777]) {
    const m = await MasterProcess.prepare(t);
    const run = path.dirname(m.socket);
    mkdirSync(run);
    chmodSync(run, mode);
    const r = await runNode([MASTER_BIN, "-f", "-c", m.confPath]);
    const octal = mode.toString(8).padStart(4, "0");
    const sticky =
      mode & 0o1000
        ? " (the sticky bit does not keep out a socket made while the master is down)"
        : "";
    t.equal(r.status, 1, octal);
    t.equal(
      r.stderr,
      `abs-master: the directory of admin_socket ${run} is writable by others (mode ${octal})${sticky}: anyone could replace the socket and read or answer admin requests; use a directory of its own, mode 0755 (such as /run/abs)\n`,
    );
    t.notOk(existsSync(m.socket), "no socket made");
  }
});

t.test("admin_socket_group: the socket's group, mode 0660", async (t) => {
  const own = process.getgid?.() ?? 0;
  const other = readFileSync("/etc/group", "utf8")
    .split("\n")
    .map((l) => l.split(":"))
    .find(
      (f) => f[0] !== undefined && f[2] !== undefined && /^\d+$/.test(f[2]) && Number(f[2]) !== own,
    );
  if (other === undefined) throw new Error("/etc/group has no group but the test's own");
  const [name, , gid] = other as [string, string, string];
  const m = await MasterProcess.start(t, { master: `admin_socket_group = ${name}` });
  const st = statSync(m.socket);
  t.equal(st.gid, Number(gid), `group ${name}`);
  t.equal(st.mode & 0o7777, 0o660);
  await m.stop();

  const missing = await MasterProcess.prepare(t, { master: "admin_socket_group = no-such-group" });
  const r = await runNode([MASTER_BIN, "-f", "-c", missing.confPath]);
  t.equal(r.status, 1);
  t.equal(
    r.stderr,
    'abs-master: admin_socket_group "no-such-group": no such group in /etc/group (create it with groupadd, or give a numeric gid)\n',
  );
});
