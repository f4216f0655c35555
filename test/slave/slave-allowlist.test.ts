// What a slave lets a dispatch run, with a real abs-master and abs-slave
// (processes, port 0, temp dirs, realm key): a command job of a program
// slave.conf does not list, or on a slave whose allowed_methods leave
// command out, is refused and never runs, and the slave goes on serving; a
// listed program runs with PATH, HOME, LANG and command.env only, not the
// slave's environment; a slave.conf without allowed_paths does not start.

import { existsSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import t, { type Test } from "tap";
import { MasterProcess, runNode } from "../helpers/master-process.js";
import { SLAVE_BIN, SlaveProcess, type SlaveSetup } from "../helpers/slave-process.js";
import { runDefinition, waitForState } from "../helpers/admin-wait.js";
import { tempDir } from "../helpers/tmp.js";
import { COMMAND_PATH } from "../../src/slave/methods/allowed-programs.js";

function job(name: string, lines: string[]): string {
  return [`[job ${name}]`, "slave = green-acres", "method = command", ...lines, ""].join("\n");
}

/** A master with the definitions; a slave with `setup`; `data` for marker files. */
async function start(
  t: Test,
  jobs: (data: string) => string,
  setup: Omit<SlaveSetup, "master"> = {},
): Promise<{ m: MasterProcess; s: SlaveProcess; data: string }> {
  const data = tempDir(t, "abs-data-");
  const m = await MasterProcess.start(t, { jobs: jobs(data) });
  const s = await SlaveProcess.start(t, { master: m, ...setup });
  return { m, s, data };
}

t.test(
  "a command job of a program not in allowed_programs is refused, never runs; the slave goes on",
  async (t) => {
    const { m, s, data } = await start(
      t,
      (d) =>
        [
          // What a rogue master would send: a shell, told to leave a mark.
          job("attack", ["command.program = /bin/sh", `command.args = -c "touch ${d}/pwned"`]),
          job("by-name", ["command.program = touch", `command.args = ${d}/pwned-by-name`]),
          job("dotdot", [
            "command.program = /usr/bin/../bin/touch",
            `command.args = ${d}/pwned-dotdot`,
          ]),
          job("listed", ["command.program = /usr/bin/touch", `command.args = ${d}/listed`]),
        ].join("\n"),
      { programs: ["/usr/bin/touch"] },
    );
    const [attack] = await runDefinition(m, "attack");
    const refused = await waitForState(m, attack, "failed");
    t.equal(
      refused.result,
      `refused by the slave: command.program "/bin/sh" is not in allowed_programs of ${s.confPath}: /usr/bin/touch`,
    );
    t.notOk(
      refused.log.some((e) => e.message.startsWith("started")),
      "refused before it started",
    );
    const shown = await m.abs(["show", "job", String(attack)]);
    t.equal(shown.status, 0, shown.stderr);
    t.match(shown.stdout, `command.program "/bin/sh" is not in allowed_programs of ${s.confPath}`);

    // A name is matched by the path it is found at; ".." is refused.
    const [byName] = await runDefinition(m, "by-name");
    const found = await waitForState(m, byName, "succeeded");
    t.equal(found.resultData?.["program"], "touch");
    t.ok(existsSync(path.join(data, "pwned-by-name")), "touch, found at /usr/bin/touch, ran");
    const [dotdot] = await runDefinition(m, "dotdot");
    const d = await waitForState(m, dotdot, "failed");
    t.match(d.result, /is not a plain absolute path/);

    // The slave goes on serving: the listed program runs.
    const [listed] = await runDefinition(m, "listed");
    await waitForState(m, listed, "succeeded");
    t.ok(existsSync(path.join(data, "listed")), "the listed program ran");
    t.notOk(existsSync(path.join(data, "pwned")), "the shell never ran");
    t.notOk(existsSync(path.join(data, "pwned-dotdot")), "nor the .. path");
  },
);

t.test("a command job on a slave whose allowed_methods leave command out is refused", async (t) => {
  const { m, s, data } = await start(t, (d) =>
    job("attack", ["command.program = /usr/bin/touch", `command.args = ${d}/pwned`]),
  );
  const [id] = await runDefinition(m, "attack");
  const refused = await waitForState(m, id, "failed");
  t.equal(
    refused.result,
    `refused by the slave: method "command" is not in allowed_methods of ${s.confPath}: tar, restore, verify; command jobs run only where allowed_methods lists command and allowed_programs their program`,
  );
  t.notOk(existsSync(path.join(data, "pwned")), "the program never ran");
  // Still registered and serving: a second refusal comes back the same way.
  const [again] = await runDefinition(m, "attack");
  await waitForState(m, again, "failed");
  t.notOk(existsSync(path.join(data, "pwned")), "nor the second time");
});

t.test("a reload that takes command out of allowed_methods applies to the next job", async (t) => {
  const { m, s, data } = await start(
    t,
    (d) => job("touch", ["command.program = /usr/bin/touch", `command.args = ${d}/touched`]),
    { programs: ["/usr/bin/touch"] },
  );
  const [first] = await runDefinition(m, "touch");
  await waitForState(m, first, "succeeded");
  t.ok(existsSync(path.join(data, "touched")), "allowed: it ran");
  rmSync(path.join(data, "touched"));
  const from = s.log.length;
  s.writeConfig({ master: m });
  s.signal("SIGHUP");
  await s.waitForOutput(/reload: slave\.conf applied/, 30_000, from);
  const [second] = await runDefinition(m, "touch");
  const refused = await waitForState(m, second, "failed");
  t.match(refused.result, /^refused by the slave: method "command" is not in allowed_methods/);
  t.notOk(existsSync(path.join(data, "touched")), "refused: it did not run");

  // And a reload to a slave.conf without allowed_paths is refused; the running config stays.
  const before = s.log.length;
  s.writeConfig({ master: m, allowedPaths: null });
  s.signal("SIGHUP");
  await s.waitForOutput(/reload refused: .*missing required key "allowed_paths"/, 30_000, before);
});

t.test(
  "a listed program runs with PATH, HOME, LANG and command.env, not the slave's environment",
  async (t) => {
    const { m } = await start(
      t,
      () =>
        job("env", ["command.program = /usr/bin/env", "command.env.ABS_JOB_VAR = from-the-job"]),
      {
        programs: ["/usr/bin/env"],
        // The slave's own: a secret, its Kerberos keytab, a locale.
        env: {
          ABS_SLAVE_SECRET: "hunter2",
          KRB5_CLIENT_KTNAME: "/etc/abs/slave.keytab",
          LANG: "C.UTF-8",
        },
        // tap's preloads would add their variables to every program it starts.
        withoutPreloads: true,
      },
    );
    const [id] = await runDefinition(m, "env");
    const done = await waitForState(m, id, "succeeded");
    const lines = done.resultData?.["lastLines"];
    t.ok(Array.isArray(lines), "the output is in the result");
    t.same([...(lines as string[])].sort(), [
      "ABS_JOB_VAR=from-the-job",
      `HOME=${os.userInfo().homedir}`,
      "LANG=C.UTF-8",
      `PATH=${COMMAND_PATH}`,
    ]);
  },
);

t.test("a slave.conf without allowed_paths is refused at -t and at start", async (t) => {
  const m = await MasterProcess.start(t);
  const s = SlaveProcess.prepare(t, { master: m, allowedPaths: null });
  const why =
    `${s.confPath}:1: file "${s.confPath}": missing required key "allowed_paths": ` +
    'the paths jobs may read and write under (e.g. "allowed_paths: /home, /srv/backup"); ' +
    'write "allowed_paths: /" for a whole-system backup\n' +
    "abs-slave: the config is invalid\n";
  const check = await runNode([SLAVE_BIN, "-t", "-c", s.confPath]);
  t.same({ status: check.status, stderr: check.stderr }, { status: 1, stderr: why }, "-t");
  const run = await runNode([SLAVE_BIN, "-f", "-c", s.confPath]);
  t.same({ status: run.status, stderr: run.stderr }, { status: 1, stderr: why }, "start");
  t.notOk(existsSync(s.stateDir), "it did not start: no state directory");
});
