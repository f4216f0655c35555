// Disaster mode with real processes: the real master is stopped mid-job and
// the fake master (abs-master --disaster) started in its place; the slave
// re-registers there, its job finishes, and the result is written to the
// disaster log before it is acknowledged. abs show jobs on the fake master
// shows what the slave reported; a slave of another realm is refused; the
// fake master dispatches nothing.

import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import t from "tap";
import { generateRealmKey } from "../../src/auth/realm-key.js";
import { DISASTER_LOG_FILE } from "../../src/master/fake-master.js";
import { runDefinition, waitForState } from "../helpers/admin-wait.js";
import { MasterProcess } from "../helpers/master-process.js";
import { freeLoopbackPort } from "../../src/free-port.js";
import { SlaveProcess } from "../helpers/slave-process.js";
import { tempDir } from "../helpers/tmp.js";
import { TestSlave } from "../fixtures/test-slave.js";

t.test(
  "the fake master takes the slave's reports in the real master's place and logs them durably",
  async (t) => {
    const data = tempDir(t, "abs-data-");
    const fifo = path.join(data, "go.fifo");
    execFileSync("mkfifo", [fifo]);
    const m = await MasterProcess.start(t, {
      listen: `127.0.0.1:${await freeLoopbackPort()}`,
      jobs: [
        "[job long]",
        "slave = green-acres",
        "method = command",
        "command.program = /usr/bin/head",
        `command.args = -c 1 ${fifo}`,
        "",
      ].join("\n"),
    });
    const s = await SlaveProcess.start(t, { master: m });
    const [id] = await runDefinition(m, "long");
    await waitForState(m, id, "running");

    // Disaster: the real master is gone; the fake one starts on its address.
    await m.stop();
    const from = s.log.length;
    await m.launch(["--disaster"]);
    t.match(m.log, /disaster mode: no jobs directory/);
    await s.waitForOutput(
      /registered with master \S+ at .*: 1 running, 0 results reported/,
      60_000,
      from,
    );
    await writeFile(fifo, "x");
    await s.waitForOutput(
      new RegExp(`job ${id}: the master has the result of attempt 1`),
      30_000,
      from,
    );
    t.same(
      readdirSync(s.stateDir).filter((n) => /^(run|result)-/.test(n)),
      [],
      "the slave forgot the result once the fake master acknowledged it",
    );

    const lines = readFileSync(path.join(m.dir, "state", DISASTER_LOG_FILE), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const mine = lines.filter((l) => l["jobId"] === id);
    t.same(
      mine.map((l) => l["report"]).filter((r) => r !== "progress"),
      ["running", "result"],
      "the running job and its result, in order (with any progress between)",
    );
    t.match(mine[mine.length - 1], {
      slave: "green-acres",
      identity: "green-acres",
      attempt: 1,
      outcome: "succeeded",
      message: /exited with status 0/,
    });

    const status = await m.abs(["status", "--json"]);
    t.match(JSON.parse(status.stdout), { mode: "disaster", jobsDir: null, slavesConnected: 1 });
    const shown = await m.abs(["show", "jobs"]);
    t.equal(shown.status, 0, shown.stderr);
    t.match(shown.stdout, new RegExp(`^\\s*${id}\\s+\\?\\s+green-acres\\s+succeeded\\s+1\\b`, "m"));

    // It dispatches nothing, and says why.
    const run = await m.abs(["run", "long"]);
    t.equal(run.status, 2);
    t.match(run.stderr, /run needs the real master: this is the fake master of disaster mode/);

    // A slave of another realm is refused.
    const otherKey = path.join(data, "other.key");
    await generateRealmKey(otherKey);
    await t.rejects(TestSlave.connect({ port: m.port, name: "intruder", keyFile: otherKey }), {
      code: "AUTH_FAILED",
    });
    await s.stop();
    await m.stop();
  },
);
