// Restarting a real abs-master mid-job: the job is orphaned, then reattached
// when its slave reports it, or failed as lost when the slave does not come
// back within the grace period. SIGTERM never touches the slaves' jobs.

import t from "tap";
import { TestSlave, type TestSlaveOptions } from "../fixtures/test-slave.js";
import { runDefinition, waitForJob, waitForState } from "../helpers/admin-wait.js";
import { MasterProcess } from "../helpers/master-process.js";

const JOBS = [
  "[job home]",
  "slave = green-acres",
  "method = command",
  "command.program = /bin/true",
  "",
  "[job attic]",
  "slave = red-barn",
  "method = command",
  "command.program = /bin/true",
  "",
].join("\n");

/** A test slave that leaves the jobs it gets to the test. */
function connectHolding(
  m: MasterProcess,
  name: string,
  extra: Partial<TestSlaveOptions> = {},
): Promise<TestSlave> {
  return TestSlave.connect({
    port: m.port,
    name,
    realmKeyFile: m.keyFile,
    behavior: "hold",
    ...extra,
  });
}

/** Connects `slave`, runs `definition` on it and reports it started: a job running on a slave. */
async function runningJob(m: MasterProcess, slave: string, definition: string) {
  const s = await connectHolding(m, slave);
  const [id] = await runDefinition(m, definition);
  const d = await s.next("dispatch", (x) => x.jobId === id);
  s.started(d);
  await waitForState(m, id, "running");
  return { s, d, id };
}

t.test("a master restarted mid-job reattaches it when the slave reports it", async (t) => {
  const m = await MasterProcess.start(t, { jobs: JOBS, master: "orphan_grace = 1m" });
  const started = await runningJob(m, "green-acres", "home");
  let s = started.s;
  const { d, id } = started;

  t.same(await m.stop(), { code: 0, signal: null }, "SIGTERM: a clean exit");
  await s.closed();
  await m.launch();
  const orphaned = await waitForState(m, id, "orphaned");
  t.match(orphaned.waitReason, /^waiting until \S+ for slave green-acres to report it$/);
  t.match(
    orphaned.log[orphaned.log.length - 1].message,
    /^master restarted while running; waiting 1m for slave green-acres to report it$/,
  );

  // The slave comes back (on the master's new port) and says it still runs the job.
  s = await connectHolding(m, "green-acres", {
    running: [{ jobId: id, attempt: d.attempt, state: "running", progress: null }],
  });
  t.teardown(() => s.close());
  const running = await waitForState(m, id, "running");
  t.match(
    running.log[running.log.length - 1].message,
    "reattached: green-acres reports it running",
  );
  s.result(d, "succeeded", "finished after the restart");
  const done = await waitForState(m, id, "succeeded");
  t.equal(done.result, "finished after the restart");
  await m.stop();
});

t.test("a result reported while the master was away is stored once, at registration", async (t) => {
  const m = await MasterProcess.start(t, { jobs: JOBS });
  const started = await runningJob(m, "green-acres", "home");
  let s = started.s;
  const { d, id } = started;
  await m.stop();
  await s.closed();
  await m.launch();
  const report = {
    jobId: id,
    attempt: d.attempt,
    outcome: "succeeded" as const,
    message: "done while away",
    data: {},
  };
  s = await connectHolding(m, "green-acres", { results: [report] });
  t.teardown(() => s.close());
  const ack = s.received.find((x) => x.type === "ack");
  t.same(ack, { type: "ack", jobId: id, attempt: d.attempt }, "acknowledged before `registered`");
  const job = await waitForState(m, id, "succeeded");
  t.equal(job.result, "done while away");
  // The same result again (the slave missed the ack): acknowledged, nothing changes.
  s.result(d, "succeeded", "a repeat");
  await s.next("ack");
  const again = (await m.call("show-job", { id })) as { job: { serial: number; result: string } };
  t.equal(again.job.serial, job.serial, "no second change");
  t.equal(again.job.result, "done while away");
  await m.stop();
});

t.test("a job whose slave never comes back fails as lost after the grace period", async (t) => {
  const m = await MasterProcess.start(t, { jobs: JOBS, master: "orphan_grace = 2s" });
  const { s, id } = await runningJob(m, "red-barn", "attic");
  await m.stop();
  s.close();
  await m.launch();
  const job = await waitForState(m, id, "failed", 20_000);
  t.equal(job.result, "lost: slave red-barn did not report it within 2s");
  t.match(
    job.log.map((e) => e.message),
    [
      /^received/,
      /^dispatched/,
      /^started/,
      /^master restarted while running/,
      /^lost: slave red-barn did not report it within 2s$/,
    ],
  );
  await m.stop();
});

t.test(
  "a slave that disconnects orphans its jobs; registering without them settles them",
  async (t) => {
    const m = await MasterProcess.start(t, { jobs: JOBS, master: "orphan_grace = 1m" });
    const first = await runningJob(m, "green-acres", "home");
    const started = first.id;
    first.s.close();
    await waitForState(m, started, "orphaned");
    // Back, running nothing: the started job is lost (no retries).
    const s = await connectHolding(m, "green-acres");
    t.teardown(() => s.close());
    const lost = await waitForState(m, started, "failed");
    t.equal(lost.result, "lost: green-acres no longer runs it");
    await m.stop();
  },
);

t.test("SIGKILL of the master: the next start takes over its lock and reattaches", async (t) => {
  const m = await MasterProcess.start(t, { jobs: JOBS });
  const started = await runningJob(m, "green-acres", "home");
  let s = started.s;
  const { d, id } = started;
  m.signal("SIGKILL");
  t.same(await m.exit(), { code: null, signal: "SIGKILL" });
  await s.closed();
  await m.launch();
  t.match(m.log, /took over the stale lock of abs-master pid \d+/);
  s = await connectHolding(m, "green-acres", {
    running: [{ jobId: id, attempt: d.attempt, state: "running", progress: null }],
  });
  t.teardown(() => s.close());
  await waitForJob(
    m,
    id,
    (j) => j.state === "running" && j.log.some((e) => e.message.startsWith("reattached")),
  );
  s.result(d, "succeeded", "ok");
  await waitForState(m, id, "succeeded");
  await m.stop();
});

t.test("a queued job's start deadline still counts after a restart", async (t) => {
  const late =
    JOBS +
    [
      "[job late]",
      "slave = nobody-home",
      "start_deadline = 3s",
      "method = command",
      "command.program = /bin/true",
      "",
    ].join("\n");
  const m = await MasterProcess.start(t, { jobs: late });
  const [id] = await runDefinition(m, "late");
  await m.stop();
  await m.launch();
  const job = await waitForState(m, id, "failed", 20_000);
  t.match(job.result, /^start deadline passed: not started by \d{4}-/);
  await m.stop();
});

t.test("a job being canceled whose slave goes away is canceled, never retried", async (t) => {
  const retried = JOBS.replace(
    "command.program = /bin/true",
    "command.program = /bin/true\nretries = 3",
  );
  const m = await MasterProcess.start(t, { jobs: retried });
  const { s, id } = await runningJob(m, "green-acres", "home");
  const asked = s.next("cancel");
  await m.call("cancel", { id });
  await asked;
  s.close(); // gone before confirming
  const job = await waitForState(m, id, "canceled");
  t.equal(
    job.result,
    "canceled: lost contact with slave green-acres before slave green-acres confirmed the cancel",
  );
  t.equal(job.attempt, 1);
  await m.stop();
});
