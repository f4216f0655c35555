// The sample configs in etc/ stay valid: abs-master -t accepts them as
// shipped, abs-slave -t accepts etc/slave.conf, and the systemd units check
// the config before each reload; etc/abs.logrotate's script makes running
// daemons reopen their logs.

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, renameSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { DEFAULT_ADMIN_SOCKET } from "../../src/config/default-paths.js";
import { loadSlaveConfig } from "../../src/config/slave-config.js";
import { MASTER_BIN, MasterProcess, runNode } from "../helpers/master-process.js";
import { SLAVE_BIN, SlaveProcess } from "../helpers/slave-process.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

t.test("etc/master.conf and etc/jobs.d pass abs-master -t", async (t) => {
  const conf = path.join(repo, "etc", "master.conf");
  const r = await runNode([MASTER_BIN, "-t", "-c", conf]);
  t.equal(r.status, 0, r.stderr);
  t.equal(
    r.stdout,
    `${conf}: OK; 4 job definitions: home-full (green-acres, 30 2 * * *, Europe/Paris), home-hourly (green-acres, 0 8-20 * * 1-5, Europe/Paris), accounting-db (red-barn, 15 1 * * *, Europe/Paris), restore-home (green-acres, manual only)\n`,
  );
});

t.test("the systemd unit runs in the foreground and checks the config before SIGHUP", (t) => {
  const unit = readFileSync(path.join(repo, "etc", "abs-master.service"), "utf8");
  const lines = unit.split("\n").filter((l) => /^Exec/.test(l));
  t.same(lines, [
    "ExecStartPre=/usr/sbin/abs-master -t -c /etc/abs/master.conf",
    "ExecStart=/usr/sbin/abs-master -f -c /etc/abs/master.conf",
    "ExecReload=/usr/sbin/abs-master -t -c /etc/abs/master.conf",
    "ExecReload=/bin/kill -HUP $MAINPID",
  ]);
  t.end();
});

t.test(
  "etc/slave.conf passes abs-slave -t; its unit checks the config before SIGHUP",
  async (t) => {
    const conf = path.join(repo, "etc", "slave.conf");
    const r = await runNode([SLAVE_BIN, "-t", "-c", conf], { ABS_SLAVE_CONFIG: "" });
    t.equal(r.status, 0, r.stderr);
    t.match(
      r.stdout,
      new RegExp(
        `^${conf.replace(/[.]/g, "\\.")}: OK; slave \\S+, master green-acres:7370 \\(realm-key\\), max_jobs 2, allowed paths /srv/backup, methods tar, restore, verify, state in /var/lib/abs/slave\\n$`,
      ),
    );
    const unit = readFileSync(path.join(repo, "etc", "abs-slave.service"), "utf8");
    t.same(
      unit.split("\n").filter((l) => /^Exec/.test(l)),
      [
        "ExecStartPre=/usr/sbin/abs-slave -t -c /etc/abs/slave.conf",
        "ExecStart=/usr/sbin/abs-slave -f -c /etc/abs/slave.conf",
        "ExecReload=/usr/sbin/abs-slave -t -c /etc/abs/slave.conf",
        "ExecReload=/bin/kill -HUP $MAINPID",
      ],
    );
  },
);

t.test("etc/abs.logrotate: its postrotate makes running daemons reopen their logs", async (t) => {
  const sample = readFileSync(path.join(repo, "etc", "abs.logrotate"), "utf8");
  // The files it rotates and the pid files it signals are the defaults.
  t.match(sample, /^\/var\/log\/abs\/\*\.log \{$/m);
  t.equal(DEFAULT_ADMIN_SOCKET, "/run/abs/admin.sock");
  t.match(sample, "/run/abs/abs-master.pid /var/lib/abs/slave/abs-slave.pid");
  const slaveDefaults = loadSlaveConfig(
    "slave.conf",
    "master: m.example.com\nkey_file: /k\nallowed_paths: /\n",
    { hostName: "s.example.com" },
  );
  if ("config" in slaveDefaults) {
    t.equal(slaveDefaults.config.stateDir, "/var/lib/abs/slave");
    t.equal(slaveDefaults.config.logDir, "/var/log/abs");
  } else {
    t.fail(`slave.conf defaults: ${JSON.stringify(slaveDefaults.errors)}`);
  }

  // Its script, run as logrotate would after the rename, on a real master
  // and slave whose pid files stand in for the defaults.
  const script = /^\s*postrotate\n([\s\S]*?)^\s*endscript$/m.exec(sample)?.[1];
  if (script === undefined) throw new Error("etc/abs.logrotate has no postrotate script");
  const m = await MasterProcess.start(t);
  const s = await SlaveProcess.start(t, { master: { port: m.port, keyFile: m.keyFile } });
  const logs = [
    path.join(m.dir, "log", "master-daemon.log"),
    path.join(m.dir, "log", "admin-access.log"),
    path.join(s.dir, "log", "slave-daemon.log"),
  ];
  for (const f of logs) renameSync(f, `${f}.1`);
  const run = spawnSync(
    "sh",
    [
      "-c",
      script
        .replace("/run/abs/abs-master.pid", path.join(m.dir, "run", "abs-master.pid"))
        .replace("/var/lib/abs/slave/abs-slave.pid", path.join(s.stateDir, "abs-slave.pid")),
    ],
    {
      encoding: "utf8",
    },
  );
  t.equal(run.status, 0, run.stderr);
  await m.waitForOutput(/SIGUSR2: log files reopened/);
  await s.waitForOutput(/SIGUSR2: log files reopened/);
  await m.call("status");
  await s.stop();
  await m.stop();
  for (const f of logs) t.ok(existsSync(f), `${path.basename(f)} made anew`);
  t.match(readFileSync(logs[0] ?? "", "utf8"), /SIGUSR2: log files reopened/);
  t.match(readFileSync(logs[1] ?? "", "utf8"), /admin request/);
  t.match(readFileSync(logs[2] ?? "", "utf8"), /SIGUSR2: log files reopened/);
});
