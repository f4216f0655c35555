// A real abs-master process (port 0, temp dirs) driven through its admin
// socket and by test slaves that speak the real, authenticated slave link.

import net from "node:net";
import t from "tap";
import { FrameDecoder } from "../../src/protocol/frame.js";
import { adminCallText } from "../../src/admin-client.js";
import { MasterProcess } from "../helpers/master-process.js";
import { runDefinition, showJobs, waitForJob, waitForState } from "../helpers/admin-wait.js";
import { TestSlave } from "../fixtures/test-slave.js";
import { checkJournalWarning } from "../helpers/journal-warning.js";

/** A job definition on green-acres running a no-op command, plus `extra` lines. */
function def(name: string, extra = "", slave = "green-acres"): string {
  return [
    `[job ${name}]`,
    `slave = ${slave}`,
    "method = command",
    "command.program = /bin/true",
    extra,
    "",
  ].join("\n");
}

function slave(
  m: MasterProcess,
  name = "green-acres",
  extra: Partial<Parameters<typeof TestSlave.connect>[0]> = {},
): Promise<TestSlave> {
  return TestSlave.connect({ port: m.port, name, realmKeyFile: m.keyFile, ...extra });
}

t.test("a scheduled job fires at its time and is dispatched to its slave", async (t) => {
  // Every second (6 fields); the test slave finishes each run at once.
  const m = await MasterProcess.start(t, { jobs: def("tick", "schedule = * * * * * *") });
  checkJournalWarning(t, m.log, m.jobsDir);
  const s = await slave(m);
  t.teardown(() => s.close());
  const dispatch = await s.next("dispatch", (d) => d.definition === "tick");
  t.equal(dispatch.method, "command");
  t.same(
    dispatch.params,
    { program: "/bin/true", args: [], env: {}, cwd: null, shell: false },
    "the definition's parameters",
  );
  const job = await waitForState(m, dispatch.jobId, "succeeded");
  t.match(job.log[0].message, /^received: tick on green-acres, scheduled for \d{4}-/);
  t.same(
    job.log.map((e) => e.message.replace(/:.*/, "")),
    ["received", "dispatched to green-acres", "started on green-acres", "succeeded on green-acres"],
  );
  t.equal(job.result, "no-op done");
  await m.stop();
});

t.test("priorities and limits order dispatch; wait reasons say why jobs wait", async (t) => {
  const m = await MasterProcess.start(t, {
    master: "default_slave_max_jobs = 1",
    jobs: [
      def("low", "priority = 0"),
      def("mid", "priority = 5"),
      def("high", "priority = 10"),
    ].join("\n"),
  });
  // No slave yet: every job waits for it.
  const [low] = await runDefinition(m, "low");
  const [mid] = await runDefinition(m, "mid");
  const [high] = await runDefinition(m, "high");
  const waiting = await showJobs(m);
  t.same(
    waiting.map((j) => j.waitReason),
    Array(3).fill("waiting for slave green-acres to connect"),
  );

  const s = await slave(m, "green-acres", { behavior: "hold", maxJobs: 4 });
  t.teardown(() => s.close());
  // The slave may run 4, the master allows it 1: highest priority first.
  const first = await s.next("dispatch");
  t.equal(first.jobId, high, "priority 10 first");
  await waitForState(m, high, "dispatched");
  const reasons = await showJobs(m, { states: ["queued"] });
  t.same(
    reasons.map((j) => [j.id, j.waitReason]),
    [
      [low, "slave green-acres at its limit 1/1"],
      [mid, "slave green-acres at its limit 1/1"],
    ],
  );
  s.started(first);
  s.result(first, "succeeded", "ok");
  const second = await s.next("dispatch");
  t.equal(second.jobId, mid, "then priority 5");
  s.result(second, "succeeded", "ok");
  const third = await s.next("dispatch");
  t.equal(third.jobId, low, "then priority 0");
  s.result(third, "succeeded", "ok");
  await waitForState(m, low, "succeeded");
  await m.stop();
});

t.test("equal priority: first in, first out, within the global limit", async (t) => {
  const m = await MasterProcess.start(t, {
    master: "max_concurrent = 1\ndefault_slave_max_jobs = 10",
    jobs: [def("a"), def("b", "", "red-barn")].join("\n"),
  });
  const ga = await slave(m, "green-acres", { behavior: "hold", maxJobs: 10 });
  const rb = await slave(m, "red-barn", { behavior: "hold", maxJobs: 10 });
  t.teardown(() => {
    ga.close();
    rb.close();
  });
  const [a1] = await runDefinition(m, "a");
  const d1 = await ga.next("dispatch");
  t.equal(d1.jobId, a1);
  const [b1] = await runDefinition(m, "b");
  const [a2] = await runDefinition(m, "a");
  await waitForJob(m, b1, (j) => j.waitReason === "master at its limit of 1 running jobs");
  ga.result(d1, "succeeded", "ok");
  const d2 = await rb.next("dispatch");
  t.equal(d2.jobId, b1, "b1 came before a2");
  rb.result(d2, "succeeded", "ok");
  const d3 = await ga.next("dispatch");
  t.equal(d3.jobId, a2);
  ga.result(d3, "succeeded", "ok");
  await waitForState(m, a2, "succeeded");
  await m.stop();
});

t.test("cancel: a queued job at once, a running one through its slave", async (t) => {
  const m = await MasterProcess.start(t, { jobs: def("home") });
  const [queued] = await runDefinition(m, "home");
  const canceled = (await m.call("cancel", { id: queued })) as { job: { state: string } };
  t.equal(canceled.job.state, "canceled");

  const s = await slave(m, "green-acres", { behavior: "hold" });
  t.teardown(() => s.close());
  const [id] = await runDefinition(m, "home");
  const d = await s.next("dispatch", (x) => x.jobId === id);
  s.started(d);
  await waitForState(m, id, "running");
  const asked = s.next("cancel", (c) => c.jobId === id);
  const r = (await m.call("cancel", { id })) as { job: { state: string } };
  t.equal(r.job.state, "canceling", "canceling until the slave confirms");
  const c = await asked;
  t.equal(c.attempt, d.attempt);
  s.result(d, "canceled", "stopped on request");
  const job = await waitForState(m, id, "canceled");
  t.match(
    job.log.map((e) => e.message),
    [
      /^received/,
      /^dispatched/,
      /^started/,
      /^canceled by an administrator; asking slave green-acres to stop it$/,
      /^canceled on green-acres: stopped on request$/,
    ],
  );
  await t.rejects(m.call("cancel", { id }), {
    code: "ILLEGAL_TRANSITION",
    message: `job ${id} is already canceled`,
  });
  await t.rejects(m.call("cancel", { id: 999 }), { code: "JOB_NOT_FOUND" });
  await m.stop();
});

t.test("retries with backoff, then failed for good", async (t) => {
  const m = await MasterProcess.start(t, {
    jobs: def("flaky", "retries = 2\nretry_backoff = 1s\nretry_backoff_max = 2s"),
  });
  const s = await slave(m, "green-acres", { behavior: "fail" });
  t.teardown(() => s.close());
  const [id] = await runDefinition(m, "flaky");
  const job = await waitForState(m, id, "failed");
  t.equal(job.attempt, 3, "two retries after the first attempt");
  const retries = job.log.filter((e) => e.message.includes("retry"));
  t.match(
    retries.map((e) => e.message),
    [
      /^attempt 1 failed: failed on green-acres: no-op failed on purpose; retry 1 of 2 in 1s$/,
      /^attempt 2 failed: failed on green-acres: no-op failed on purpose; retry 2 of 2 in 2s$/,
    ],
  );
  t.match(job.log[job.log.length - 1].message, /no retries left/);
  const dispatched = job.log.filter((e) => e.message.startsWith("dispatched"));
  t.equal(dispatched.length, 3);
  t.ok(dispatched[1].time - retries[0].time >= 1000, "the first retry waited its backoff");
  t.ok(dispatched[2].time - retries[1].time >= 2000, "the second waited twice as long");
  await m.stop();
});

t.test("max run time cancels a running job; a start deadline fails a waiting one", async (t) => {
  const m = await MasterProcess.start(t, {
    jobs: [
      def("slow", "max_run_time = 1s"),
      def("late", "start_deadline = 1s", "nobody-home"),
    ].join("\n"),
  });
  const s = await slave(m, "green-acres", { behavior: "hold" });
  t.teardown(() => s.close());
  const [slow] = await runDefinition(m, "slow");
  const d = await s.next("dispatch", (x) => x.jobId === slow);
  t.equal(d.maxRunTimeMs, 1000, "the slave is told the limit too");
  s.started(d);
  const c = await s.next("cancel", (x) => x.jobId === slow, 10_000);
  s.result(c, "canceled", "stopped: max run time");
  const job = await waitForState(m, slow, "canceled");
  t.ok(
    job.log.some(
      (e) => e.message === "max run time 1s exceeded; asking slave green-acres to stop it",
    ),
  );

  const [late] = await runDefinition(m, "late");
  const failed = await waitForState(m, late, "failed");
  t.match(failed.result, /^start deadline passed: not started by \d{4}-/);
  await m.stop();
});

t.test("bad admin requests get clear errors and the master keeps serving", async (t) => {
  const m = await MasterProcess.start(t, { jobs: def("home") });
  await t.rejects(m.call("no-such-method"), {
    code: "BAD_ARGUMENT",
    message: 'unknown method "no-such-method"',
  });
  await t.rejects(m.call("show-job", { id: "7" }), {
    code: "BAD_ARGUMENT",
    message: 'show-job: args.id: expected an integer >= 1, got "7"',
  });
  await t.rejects(m.call("show-jobs", { states: ["runing"] }), {
    code: "BAD_ARGUMENT",
    message: /args\.states\[0\]: expected one of queued, dispatched/,
  });
  await t.rejects(m.call("run", { definition: "nope" }), {
    code: "DEFINITION_NOT_FOUND",
    message: 'no job definition "nope" (defined: home)',
  });
  await t.rejects(m.call("show-job", { id: 4242 }), { code: "JOB_NOT_FOUND" });
  const status = (await m.call("status")) as { jobs: number; mode: string };
  t.equal(status.mode, "real", "still serving");
  // The unparsed path of `abs ... --json`: the same result, and the same errors.
  await runDefinition(m, "home");
  const parsed = await m.call("show-jobs", { all: true });
  t.same(JSON.parse(await adminCallText(m.socket, "show-jobs", { all: true })), parsed);
  await t.rejects(adminCallText(m.socket, "show-job", { id: 4242 }), { code: "JOB_NOT_FOUND" });
  await m.stop();
});

/** Sends raw bytes on the admin socket; resolves with the reply frames' JSON and whether the master closed. */
function rawAdmin(socket: string, bytes: Buffer): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socket);
    const decoder = new FrameDecoder({ maxFrameBytes: 1 << 24 });
    const frames: unknown[] = [];
    conn.on("connect", () => conn.end(bytes));
    conn.on("data", (c: Buffer) => frames.push(...decoder.push(c)));
    conn.on("error", reject);
    conn.on("close", () => resolve(frames));
  });
}

t.test(
  "garbage, an oversized frame and a wrong version on the real master's admin socket",
  async (t) => {
    const m = await MasterProcess.start(t, { jobs: def("home") });
    const cases: [string, Buffer, RegExp][] = [
      ["garbage bytes", Buffer.from("\x00\xffnot json at all\x03"), /UTF-8|JSON/],
      [
        "a frame over the limit",
        Buffer.concat([Buffer.alloc(2 * 1024 * 1024, 0x20), Buffer.from("\x03")]),
        /1048576|1 MiB|limit/,
      ],
      [
        "a wrong version",
        Buffer.from('{"method":"status","args":{},"version":1}\x03'),
        /admin protocol version 1 is not spoken by this master \(it speaks 2\)/,
      ],
      [
        "args of the wrong type",
        Buffer.from(
          '{"method":"cancel","args":{"id":[1]},"version":2,"requestId":"test-0001"}\x03',
        ),
        /cancel: args\.id: expected an integer >= 1/,
      ],
      [
        "a changing request without a request id",
        Buffer.from('{"method":"cancel","args":{"id":1},"version":2}\x03'),
        /cancel changes something, so its request needs a request id \(requestId\)/,
      ],
      [
        "a request id that is not one",
        Buffer.from('{"method":"cancel","args":{"id":1},"version":2,"requestId":"a b"}\x03'),
        /request id "a b" is not one/,
      ],
    ];
    for (const [what, bytes, message] of cases) {
      const [reply] = await rawAdmin(m.socket, bytes);
      t.match(reply, { success: false, error: { message } }, what);
      const status = (await m.call("status")) as { mode: string };
      t.equal(status.mode, "real", `still serving after ${what}`);
    }
    await m.stop();
  },
);

t.test("abs run --slave: only one of the definition's slaves", async (t) => {
  const m = await MasterProcess.start(t, { jobs: def("nightly-db", "", "db1, db2") });
  // The attack: run the definition's command on a slave it does not name.
  const outside = await m.abs(["run", "nightly-db", "--slave", "web1"]);
  t.equal(outside.status, 2, "a bad argument");
  t.equal(
    outside.stderr,
    'abs: args.slave: slave "web1" is not one of job definition nightly-db\'s slaves (db1, db2)\n',
  );
  t.same(await showJobs(m, { all: true }), [], "nothing was queued");
  const inside = await m.abs(["run", "nightly-db", "--slave", "db2"]);
  t.equal(inside.status, 0, inside.stderr);
  t.match(inside.stdout, /^job \d+ queued: nightly-db on db2\n$/);
  t.same(
    (await showJobs(m, { all: true })).map((j) => j.slave),
    ["db2"],
  );
  await m.stop();
});
