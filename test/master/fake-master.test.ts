// Disaster mode with real processes: the real master is stopped mid-job and
// the fake master (abs-master --disaster) started in its place; the slave
// re-registers there, its job finishes, and the result is written to the
// disaster log before it is acknowledged. abs show jobs on the fake master
// shows what the slave reported; a slave of another realm is refused; the
// fake master dispatches nothing.
//
// Then the real master comes back on its jobs directory: the slave no longer
// has the job, so it is failed as lost, until `abs import-disaster-log`
// brings in its real outcome. Importing again changes nothing; a job run by
// hand on the fake master is recorded. What cannot be trusted is refused,
// line by line, and the rest imported: a line written by hand (no MAC, or
// a MAC that does not verify), and the reports an authenticated slave made
// of jobs never dispatched to it (one still queued here, one this master
// never had). A log others could have written is refused whole.

import { execFileSync } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  copyFileSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import t from "tap";
import { generateRealmKey } from "../../src/auth/realm-key.js";
import { DISASTER_LOG_FILE } from "../../src/master/fake-master.js";
import type {
  ImportDisasterLogResult,
  JobDetail,
  ShowJobResult,
} from "../../src/protocol/admin-api.js";
import { runDefinition, showJobs, waitForState } from "../helpers/admin-wait.js";
import { MASTER_BIN, MasterProcess, runNode } from "../helpers/master-process.js";
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
        "[job quick]",
        "slave = green-acres",
        "method = command",
        "command.program = /bin/true",
        "[job pair]",
        "slave = green-acres, blue-sky",
        "method = command",
        "command.program = /bin/true",
        "[job elsewhere]",
        "slave = blue-sky",
        "method = command",
        "command.program = /bin/true",
        "",
      ].join("\n"),
    });
    const s = await SlaveProcess.start(t, {
      master: m,
      programs: ["/usr/bin/head", "/bin/true"],
    });
    const [id] = await runDefinition(m, "long");
    await waitForState(m, id, "running");
    // blue-sky never connects to the real master: its job stays queued.
    const [queuedId] = await runDefinition(m, "elsewhere");
    if (queuedId === undefined) throw new Error("no job");
    await waitForState(m, queuedId, "queued");

    // Disaster: the real master is gone; the fake one starts on its address.
    await m.stop();
    const from = s.log.length;
    await m.launch(["--disaster"]);
    t.match(m.log, /disaster mode: no jobs directory/);
    t.match(m.log, /serving as the fake master \(disaster mode; auth realm-key\)/);
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
    t.match(JSON.parse(status.stdout), {
      mode: "disaster",
      jobsDir: null,
      slavesConnected: 1,
      auth: "realm-key",
      servicePrincipal: null,
    });
    const shown = await m.abs(["show", "jobs"]);
    t.equal(shown.status, 0, shown.stderr);
    t.match(shown.stdout, new RegExp(`^\\s*${id}\\s+\\?\\s+green-acres\\s+succeeded\\s+1\\b`, "m"));

    // It dispatches nothing by itself; an admin may run a job by hand on a
    // slave registered there, under an id far above the real master's.
    const outside = await m.abs(["run", "quick", "--slave", "blue-sky"]);
    t.equal(outside.status, 2, "not one of quick's slaves");
    t.match(outside.stderr, /slave "blue-sky" is not one of job definition quick's slaves/);
    const absent = await m.abs(["run", "pair", "--slave", "blue-sky"]);
    t.equal(absent.status, 5);
    t.match(
      absent.stderr,
      /slave blue-sky is not registered with the fake master, which queues nothing/,
    );
    const handFrom = s.log.length;
    const run = await m.abs(["run", "quick"]);
    t.equal(run.status, 0, run.stderr);
    const handId = Number(
      /^job (\d+) (?:dispatched|running|succeeded): quick on green-acres$/m.exec(run.stdout)?.[1],
    );
    t.ok(handId > 1e15, `job ${handId}: an id no real master gives`);
    await s.waitForOutput(
      new RegExp(`job ${handId}: the master has the result of attempt 1`),
      30_000,
      handFrom,
    );
    t.match(
      (await m.abs(["show", "jobs"])).stdout,
      new RegExp(`^\\s*${handId}\\s+quick\\s+green-acres\\s+succeeded\\b`, "m"),
    );
    const cancel = await m.abs(["cancel", String(handId)]);
    t.equal(cancel.status, 5, "refused: needs the real master");
    t.match(cancel.stderr, /cancel needs the real master/);

    // An authenticated slave reports results of jobs never dispatched to
    // it: one the real master has queued for it, one nobody ever made. The
    // fake master takes every report (it knows no jobs) and MACs it; the
    // import is where they are refused.
    const liar = await TestSlave.connect({
      port: m.port,
      name: "blue-sky",
      realmKeyFile: m.keyFile,
      results: [queuedId, 4711].map((jobId) => ({
        jobId,
        attempt: 1,
        outcome: "succeeded" as const,
        message: "all files saved",
        data: {},
      })),
    });
    liar.close();

    // A slave of another realm is refused.
    const otherKey = path.join(data, "other.key");
    await generateRealmKey(otherKey);
    await t.rejects(TestSlave.connect({ port: m.port, name: "intruder", realmKeyFile: otherKey }), {
      code: "AUTH_FAILED",
    });
    const refusedImport = await m.abs(["import-disaster-log", "/nonexistent.jsonl"]);
    t.equal(refusedImport.status, 5, "refused: needs the real master");
    t.match(refusedImport.stderr, /import-disaster-log needs the real master/);

    // The disaster is over: the admin copies the log over and starts the
    // real master on its jobs directory. The slave comes back without the
    // job (the fake master acknowledged its result), so it is lost.
    const log = path.join(data, "disaster-log.jsonl");
    copyFileSync(path.join(m.dir, "state", DISASTER_LOG_FILE), log);
    await m.stop();
    const back = s.log.length;
    await m.launch();
    await s.waitForOutput(
      /registered with master \S+ at .*: 0 running, 0 results reported/,
      60_000,
      back,
    );
    const lost = await waitForState(m, id, "failed");
    t.match(lost.result, /^lost: green-acres no longer runs it/);

    const imported = await m.abs(["import-disaster-log", log]);
    // What blue-sky reported of jobs never dispatched to it is refused,
    // each attempt named by its line; the rest is imported, and abs says
    // so with status 1. The queued job stays queued, not "succeeded".
    t.equal(imported.status, 1, imported.stderr);
    t.match(imported.stderr, `${log}: 2 line(s) refused, the rest imported:`);
    t.match(
      imported.stderr,
      new RegExp(
        `${log}:\\d+: blue-sky reported job ${queuedId} attempt 1, which was never dispatched to it \\(job ${queuedId} here \\(queued\\) was never dispatched\\); its reports are refused`,
      ),
    );
    t.match(
      imported.stderr,
      new RegExp(
        `${log}:\\d+: blue-sky reported job 4711 attempt 1, which was never dispatched to it \\(this jobs directory has no job 4711 it could be\\)`,
      ),
    );
    t.equal((await detail(m, queuedId)).state, "queued", "the job never dispatched stays queued");

    t.match(imported.stdout, `imported ${log}: `);
    t.match(
      imported.stdout,
      new RegExp(
        `^\\s*${id}\\s+succeeded\\s+corrected\\s+green-acres\\s+job ${id} attempt 1\\s+\\d+$`,
        "m",
      ),
    );
    t.match(
      imported.stdout,
      new RegExp(
        `^\\s*\\d+\\s+succeeded\\s+recorded\\s+green-acres\\s+job ${handId} attempt 1\\s+\\d+$`,
        "m",
      ),
    );
    const handJobId = Number(
      new RegExp(`^\\s*(\\d+)\\s+succeeded\\s+recorded\\s+green-acres\\s+job ${handId} `, "m").exec(
        imported.stdout,
      )?.[1],
    );
    const hand = await detail(m, handJobId);
    t.match(hand, { definition: "(disaster)", method: "command", state: "succeeded" });
    t.match(
      hand.log[0]?.message,
      `green-acres reported job ${handId} attempt 1 (run by hand on the fake master: definition quick), which this jobs directory does not have`,
    );
    const after = await detail(m, id);
    t.equal(after.state, "succeeded");
    t.match(after.result, /exited with status 0/);
    t.match(after.resultData, { exitStatus: 0 });
    t.match(
      after.log[after.log.length - 1]?.message,
      /^succeeded on green-acres: .*exited with status 0.* \(it had been failed as "lost: green-acres no longer runs it"\) \(from the disaster log: green-acres, attempt 1, at \S+Z\)$/,
    );
    const shown2 = await m.abs(["show", "jobs"]);
    t.match(shown2.stdout, new RegExp(`^\\s*${id}\\s+long\\s+green-acres\\s+succeeded\\b`, "m"));

    // A second import changes nothing (and refuses the same).
    const second = await m.abs(["import-disaster-log", "--json", log]);
    const again = JSON.parse(second.stdout) as ImportDisasterLogResult;
    t.equal(again.refusedCount, 2);
    t.same(
      again.attempts.map((a) => [a.reportedJobId, a.verdict, a.state]),
      [
        [id, "unchanged", "succeeded"],
        [handId, "unchanged", "succeeded"],
      ],
    );
    t.equal((await detail(m, id)).serial, after.serial, "the job was not written again");

    // Lines written by hand: a result for the queued job with no MAC, and a
    // genuine line of the fake master's changed to say "failed". Both are
    // refused by their line; the good records around them still count, and
    // an unfinished last line is skipped.
    const now = Date.now();
    const forged = {
      slave: "blue-sky",
      identity: "blue-sky",
      attempt: 1,
      time: now,
      report: "result",
      jobId: queuedId,
      outcome: "succeeded",
      message: "9 files, 1 KiB",
      data: {},
    };
    const genuine = readFileSync(log, "utf8")
      .split("\n")
      .find((l) => l.includes(`"jobId":${id},`) && l.includes('"report":"result"'));
    if (genuine === undefined) throw new Error("no result line for the job");
    const changed = genuine.replace('"outcome":"succeeded"', '"outcome":"failed"');
    t.not(changed, genuine);
    const before = readFileSync(log, "utf8").split("\n").length - 1;
    appendFileSync(log, `${JSON.stringify(forged)}\n${changed}\n{"time":1,"slav`);
    const jobsBefore = (await showJobs(m, { all: true })).length;
    const third = await m.abs(["import-disaster-log", "--json", log]);
    t.equal(third.status, 1, "something was refused: abs says so");
    const result = JSON.parse(third.stdout) as ImportDisasterLogResult;
    t.equal(result.unfinishedLine, result.lines, "the unfinished last line is named");
    t.match(result.refused, [
      { reason: /never dispatched/ },
      { reason: /never dispatched/ },
      { line: before + 1, reason: /^no MAC/ },
      {
        line: before + 2,
        reason: /^the MAC does not verify with the key derived from .*realm\.key/,
      },
    ]);
    t.equal(result.refusedCount, 4);
    t.match(third.stderr, `${log}: 4 line(s) refused, the rest imported:`);
    t.match(third.stderr, `${log}:${before + 1}: no MAC`);
    t.same(
      result.attempts.map((a) => [a.reportedJobId, a.verdict]),
      [
        [id, "unchanged"],
        [handId, "unchanged"],
      ],
      "the genuine records were read, and changed nothing",
    );
    t.equal((await detail(m, queuedId)).state, "queued", "the forged result changed nothing");
    t.equal((await detail(m, id)).state, "succeeded", "the changed line changed nothing");
    t.equal((await showJobs(m, { all: true })).length, jobsBefore, "no job was recorded");

    // A log someone else could have written is refused whole.
    chmodSync(log, 0o666);
    const loose = await m.abs(["import-disaster-log", log]);
    t.equal(loose.status, 2);
    t.match(
      loose.stderr,
      `cannot read the disaster log ${log}: writable by group and others (mode 0666)`,
    );
    chmodSync(log, 0o600);

    // Archived, and the master restarted: the recorded job is still found.
    t.equal((await m.abs(["archive", String(handJobId)])).status, 0);
    await m.stop();
    await m.launch();
    const fifth = JSON.parse(
      (await m.abs(["import-disaster-log", "--json", log])).stdout,
    ) as ImportDisasterLogResult;
    t.match(
      fifth.attempts.find((a) => a.reportedJobId === handId),
      { verdict: "archived", jobId: handJobId },
      "not recorded a second time once archived",
    );
    t.equal((await showJobs(m, { all: true })).length, jobsBefore - 1);

    // A file that is not a disaster log: every line refused, nothing recorded.
    const bad = path.join(data, "bad.jsonl");
    writeFileSync(
      bad,
      [
        JSON.stringify({ ...forged, report: "started", jobId: 4713 }),
        '{"time":1,"slave":"x","identity":"x","report":"result","jobId":0,"attempt":1}',
        "not json",
        "",
      ].join("\n"),
    );
    const refused = await m.abs(["import-disaster-log", bad]);
    t.equal(refused.status, 1);
    t.match(refused.stderr, `${bad}: 3 line(s) refused, the rest imported:`);
    t.match(refused.stderr, `${bad}:1: no MAC`);
    t.match(refused.stderr, `${bad}:3: no MAC`);
    t.equal((await showJobs(m, { all: true })).length, jobsBefore - 1, "nothing was recorded");
    const missing = await m.abs(["import-disaster-log", path.join(data, "nope.jsonl")]);
    t.equal(missing.status, 2);
    t.match(missing.stderr, /cannot read the disaster log .*nope\.jsonl: .*ENOENT|no such file/);

    await s.stop();
    await m.stop();
  },
);

async function detail(m: MasterProcess, id: number): Promise<JobDetail> {
  return ((await m.call("show-job", { id })) as unknown as ShowJobResult).job;
}

t.test(
  "with Kerberos and no disaster_log_key_file, the fake master neither passes -t nor starts",
  async (t) => {
    const m = await MasterProcess.prepare(t, {
      kerberos: {
        realm: "MAIN.TEST",
        keytab: path.join(tempDir(t), "abs.keytab"),
        servicePrincipal: "abs/127.0.0.1",
      },
    });
    const why = `${m.confPath}: auth = kerberos has no realm key to authenticate the disaster log with: set disaster_log_key_file to a key made with \`abs keygen FILE\``;
    for (const args of [["-t"], ["-f"]]) {
      const r = await runNode([MASTER_BIN, ...args, "--disaster", "-c", m.confPath]);
      t.equal(r.status, 1, `${args[0]} --disaster`);
      t.match(r.stderr, why);
    }
    const plain = await runNode([MASTER_BIN, "-t", "-c", m.confPath]);
    t.equal(plain.status, 0, "the real master needs it only to import a log");
    m.writeConfig({
      kerberos: {
        realm: "MAIN.TEST",
        keytab: path.join(tempDir(t), "abs.keytab"),
        servicePrincipal: "abs/127.0.0.1",
      },
      master: `disaster_log_key_file = ${m.keyFile}`,
    });
    const withKey = await runNode([MASTER_BIN, "-t", "--disaster", "-c", m.confPath]);
    t.equal(withKey.status, 0, withKey.stderr);
  },
);
