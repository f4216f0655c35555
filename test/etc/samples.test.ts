// The sample configs in etc/ stay valid: abs-master -t accepts them as
// shipped, abs-slave -t accepts etc/slave.conf, and the systemd units check
// the config before each reload.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { MASTER_BIN, runNode } from "../helpers/master-process.js";
import { SLAVE_BIN } from "../helpers/slave-process.js";

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
    "ExecStartPre=/usr/bin/abs-master -t -c /etc/abs/master.conf",
    "ExecStart=/usr/bin/abs-master -f -c /etc/abs/master.conf",
    "ExecReload=/usr/bin/abs-master -t -c /etc/abs/master.conf",
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
        "ExecStartPre=/usr/bin/abs-slave -t -c /etc/abs/slave.conf",
        "ExecStart=/usr/bin/abs-slave -f -c /etc/abs/slave.conf",
        "ExecReload=/usr/bin/abs-slave -t -c /etc/abs/slave.conf",
        "ExecReload=/bin/kill -HUP $MAINPID",
      ],
    );
  },
);
