// The sample configs in etc/ stay valid: abs-master -t accepts them as
// shipped, and the systemd unit checks the config before each reload.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { MASTER_BIN, runNode } from "../helpers/master-process.js";

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
