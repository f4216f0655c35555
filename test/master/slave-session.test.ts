import t, { type Test } from "tap";
import { isFinished } from "../../src/jobsdir/job.js";
import { realFsOps } from "../../src/storage/fs-ops.js";
import { JobStore } from "../../src/jobsdir/job-store.js";
import { transition } from "../../src/jobsdir/job-state.js";
import type { AbsError } from "../../src/errors.js";
import { SlaveSession } from "../../src/master/slave-session.js";
import type { MasterToSlaveMessage, RegisterMessage } from "../../src/protocol/slave-messages.js";
import { CollectingLogger } from "../helpers/log.js";
import { heldWrites } from "../helpers/held-writes.js";
import { tempDir } from "../helpers/tmp.js";

const SPEC = { definition: "home", slave: "green-acres", method: "tar", params: {}, priority: 0 };

/** `ackAfterStore`: check that every ack of one of its own jobs follows the job's durable result. */
async function setup(t: Test, ackAfterStore = true) {
  const store = await JobStore.open({ dir: tempDir(t) });
  t.teardown(() => store.close());
  const sent: MasterToSlaveMessage[] = [];
  const closed: (AbsError | undefined)[] = [];
  const log = new CollectingLogger();
  const session = new SlaveSession({
    name: "green-acres",
    master: "master.test",
    heartbeatMs: 10_000,
    store,
    logger: log,
    port: {
      send: (m) => {
        // The ack of one of its own jobs must follow the durable write.
        const job = m.type === "ack" ? store.get(m.jobId) : undefined;
        if (ackAfterStore && job?.slave === "green-acres")
          t.ok(isFinished(job.state), `job ${job.id} is stored before its ack`);
        sent.push(m);
        return true;
      },
      close: (e) => void closed.push(e),
    },
  });
  return { store, sent, closed, log, session };
}

/** A session of green-acres on `store`, its messages to the slave pushed on `sent`. */
function sessionOn(store: JobStore, sent: MasterToSlaveMessage[]): SlaveSession {
  return new SlaveSession({
    name: "green-acres",
    master: "master.test",
    heartbeatMs: 10_000,
    store,
    logger: new CollectingLogger(),
    port: { send: (m) => (sent.push(m), true), close: () => undefined },
  });
}

async function running(store: JobStore, slave = "green-acres"): Promise<number> {
  const job = await store.submit({ ...SPEC, slave });
  await store.transition(job.id, { to: "dispatched", now: 1, message: "sent" });
  await store.transition(job.id, { to: "running", now: 2, message: "started" });
  return job.id;
}

/** The slave's registration: green-acres, 2 jobs at once, with what it runs and its results. */
function register(
  session: SlaveSession,
  running: RegisterMessage["running"] = [],
  results: RegisterMessage["results"] = [],
): Promise<void> {
  return session.handle({ type: "register", name: "green-acres", maxJobs: 2, running, results });
}

const result = (jobId: number, outcome: "succeeded" | "failed" = "succeeded") => ({
  jobId,
  attempt: 1,
  outcome,
  message: "12 files",
  data: { files: 12 },
});

t.test(
  "a result is stored once, then acknowledged; a repeat is acknowledged again and changes nothing",
  async (t) => {
    const { store, sent, session } = await setup(t);
    const id = await running(store);
    await register(session, [{ jobId: id, attempt: 1, state: "running", progress: null }]);
    t.same(sent, [{ type: "registered", master: "master.test", heartbeatMs: 10_000 }]);
    await session.handle({ type: "result", ...result(id) });
    const stored = store.get(id);
    t.equal(stored?.state, "succeeded");
    t.same(stored?.result, { message: "12 files", data: { files: 12 } });
    await session.handle({ type: "result", ...result(id) });
    t.equal(store.get(id)?.serial, stored?.serial, "the repeat changed nothing");
    t.same(
      sent.filter((m) => m.type === "ack"),
      [
        { type: "ack", jobId: id, attempt: 1 },
        { type: "ack", jobId: id, attempt: 1 },
      ],
    );
  },
);

t.test(
  "a success, then the restarted slave's 'slave restarted' failure of the same attempt: acknowledged, the job stays succeeded",
  async (t) => {
    // The slave sends a result as it writes it (job-runner.ts); if it dies
    // before its write is done, its next start reports the job failed.
    let hold = false;
    const writes = heldWrites(() => hold);
    const store = await JobStore.open({ dir: tempDir(t), fs: writes.fs });
    t.teardown(() => store.close());
    const sent: MasterToSlaveMessage[] = [];
    const connect = () => sessionOn(store, sent);
    const restarted = {
      outcome: "failed" as const,
      message: "slave restarted: the job was running when abs-slave pid 7 stopped",
      data: { code: "SLAVE_RESTARTED" },
    };
    const stored = await running(store);
    const inFlight = await running(store);
    const first = connect();
    await register(first, [
      { jobId: stored, attempt: 1, state: "running", progress: null },
      { jobId: inFlight, attempt: 1, state: "running", progress: null },
    ]);
    await first.handle({ type: "result", ...result(stored) });
    const serial = store.get(stored)?.serial;
    // The second success is still being written when the slave comes back.
    hold = true;
    const success = first.handle({ type: "result", ...result(inFlight) });
    const second = connect();
    const registered = register(
      second,
      [],
      [
        { ...result(stored), ...restarted },
        { ...result(inFlight), ...restarted },
      ],
    );
    writes.release();
    await Promise.all([success, registered]);
    t.equal(store.get(stored)?.state, "succeeded");
    t.equal(store.get(stored)?.serial, serial, "the stored success: unchanged");
    t.equal(store.get(inFlight)?.state, "succeeded");
    t.same(
      store.get(inFlight)?.log.filter((e) => /^(succeeded|failed)/.test(e.message)).length,
      1,
      "the success in flight: one outcome",
    );
    t.same(
      sent
        .filter((m) => m.type === "ack")
        .map((m) => (m.type === "ack" ? m.jobId : 0))
        .sort((a, b) => a - b),
      [stored, stored, inFlight, inFlight],
      "every report acknowledged, so the slave stops repeating it",
    );
  },
);

t.test(
  "a slave's results are written together: one held write does not hold the next",
  async (t) => {
    let holdJob1 = false;
    const writes = heldWrites((file) => holdJob1 && file.includes("job-1.json"));
    const store = await JobStore.open({ dir: tempDir(t), fs: writes.fs });
    t.teardown(() => store.close());
    const sent: MasterToSlaveMessage[] = [];
    const session = sessionOn(store, sent);
    const first = await running(store);
    const second = await running(store);
    await register(session, [
      { jobId: first, attempt: 1, state: "running", progress: null },
      { jobId: second, attempt: 1, state: "running", progress: null },
    ]);
    holdJob1 = true;
    const firstDone = session.handle({ type: "result", ...result(first) });
    await session.handle({ type: "result", ...result(second) });
    t.equal(store.get(second)?.state, "succeeded", "the second result is stored");
    t.equal(store.get(first)?.state, "running", "while the first one's write is held");
    t.same(
      sent.filter((m) => m.type === "ack"),
      [{ type: "ack", jobId: second, attempt: 1 }],
      "only the stored one is acknowledged",
    );
    // A repeat of the held result is applied after it: it changes nothing
    // and is acknowledged once the first write has landed.
    await session.handle({ type: "heartbeat", time: 1 });
    const repeat = session.handle({ type: "result", ...result(first) });
    writes.release();
    await Promise.all([firstDone, repeat]);
    t.equal(store.get(first)?.state, "succeeded");
    t.equal(
      store.get(first)?.log.filter((e) => e.message.startsWith("succeeded")).length,
      1,
      "one change for the two reports",
    );
    t.same(
      sent.filter((m) => m.type === "ack").map((m) => (m.type === "ack" ? m.jobId : 0)),
      [second, first, first],
    );
  },
);

t.test("register after a master restart: results land, running jobs are reattached", async (t) => {
  const { store, sent, session, log } = await setup(t);
  const finished = await running(store);
  const stillRunning = await running(store);
  for (const id of [finished, stillRunning])
    await store.transition(id, { to: "orphaned", now: 3, message: "master restarted" });
  await register(
    session,
    [{ jobId: stillRunning, attempt: 1, state: "running", progress: null }],
    [result(finished)],
  );
  t.equal(store.get(finished)?.state, "succeeded");
  t.equal(store.get(stillRunning)?.state, "running");
  t.match(
    store.get(stillRunning)?.log.at(-1)?.message,
    /^reattached: green-acres reports it running$/,
  );
  t.same(
    sent.map((m) => m.type),
    ["ack", "registered"],
  );
  t.equal(session.state, "registered");
  t.match(log.messages("info"), [/slave green-acres registered: 1 running, 1 results/]);
});

t.test("a job the master does not expect is canceled on the slave", async (t) => {
  const { sent, session } = await setup(t);
  await register(session, [{ jobId: 77, attempt: 1, state: "running", progress: null }]);
  t.same(sent[0], { type: "cancel", jobId: 77, attempt: 1 });
});

t.test(
  "reports about other slaves' jobs, unknown jobs or old attempts change nothing",
  async (t) => {
    const { store, sent, session, log } = await setup(t);
    const theirs = await running(store, "other-host");
    await register(session);
    await session.handle({ type: "result", ...result(theirs) });
    await session.handle({ type: "result", ...result(999) });
    await session.handle({
      type: "progress",
      jobId: theirs,
      attempt: 1,
      files: 1,
      bytes: 1,
      path: null,
    });
    t.equal(store.get(theirs)?.state, "running");
    t.equal(
      sent.filter((m) => m.type === "ack").length,
      2,
      "acknowledged so the slave stops repeating them",
    );
    // The first in full; the others of the minute in one line, here when the session ends.
    session.close();
    t.match(log.messages("warn"), [
      /result for job \d+, which belongs to slave other-host; ignored/,
      /^slave green-acres: 2 more reports about jobs this master does not expect in the 60 s after the one logged; ignored$/,
    ]);
  },
);

t.test("started, progress and reject move the job", async (t) => {
  const { store, session } = await setup(t);
  await register(session);
  const a = await store.submit(SPEC);
  await store.transition(a.id, { to: "dispatched", now: 1, message: "sent" });
  // Started and progress are written without holding up the session: wait for the store.
  await session.handle({ type: "started", jobId: a.id, attempt: 1 });
  await store.waitForChange(a.id, 2, 10_000);
  t.equal(store.get(a.id)?.state, "running");
  await session.handle({
    type: "progress",
    jobId: a.id,
    attempt: 1,
    files: 3,
    bytes: 300,
    path: "/home/x",
  });
  await store.waitForChange(a.id, 3, 10_000);
  t.same(store.get(a.id)?.progress, { files: 3, bytes: 300, path: "/home/x" });
  const b = await store.submit(SPEC);
  await store.transition(b.id, { to: "dispatched", now: 1, message: "sent" });
  await session.handle({
    type: "reject",
    jobId: b.id,
    attempt: 1,
    reason: "/etc is outside the allowed paths",
  });
  t.equal(store.get(b.id)?.state, "failed");
  t.equal(
    store.get(b.id)?.result?.message,
    "refused by the slave: /etc is outside the allowed paths",
  );
});

t.test("registration settles the jobs the slave does not report", async (t) => {
  const { store, session } = await setup(t);
  const started = await running(store);
  const unseen = (await store.submit(SPEC)).id;
  await store.transition(unseen, { to: "dispatched", now: 3, message: "sent" });
  const stopping = await running(store);
  await store.transition(stopping, { to: "canceling", now: 4, message: "cancel asked" });
  await register(session);
  const lost = store.get(started);
  t.equal(lost?.state, "failed", "a started job it no longer runs is lost (no retries)");
  t.equal(lost?.result?.message, "lost: green-acres no longer runs it");
  const requeued = store.get(unseen);
  t.equal(requeued?.state, "queued", "a dispatch it never got is queued again");
  t.equal(requeued?.attempt, 1, "as the same attempt");
  t.equal(requeued?.log.at(-1)?.message, "green-acres never received it; queued again");
  t.equal(store.get(stopping)?.state, "canceled", "one being canceled is canceled");
});

t.test("started and result back to back: one write, the ack after it", async (t) => {
  const { store, sent, session } = await setup(t);
  await register(session);
  const a = await store.submit(SPEC);
  await store.transition(a.id, { to: "dispatched", now: 1, message: "sent" });
  void session.handle({ type: "started", jobId: a.id, attempt: 1 });
  await session.handle({ type: "result", ...result(a.id) });
  const job = store.get(a.id);
  t.equal(job?.state, "succeeded", "durable before the ack (the port checks it too)");
  t.same(
    job?.log.map((e) => e.message),
    [
      "received: home on green-acres",
      "sent",
      "started on green-acres",
      "succeeded on green-acres: 12 files",
    ],
  );
  t.same(sent.at(-1), { type: "ack", jobId: a.id, attempt: 1 });
});

t.test(
  "a dispatch sent but not written before the master stopped is recorded from the slave's report",
  async (t) => {
    const { store, sent, session } = await setup(t);
    // Both queued on disk, as a master that died before writing their dispatch leaves them.
    const running = await store.submit(SPEC);
    const finished = await store.submit(SPEC);
    await register(
      session,
      [{ jobId: running.id, attempt: 1, state: "running", progress: null }],
      [{ ...result(finished.id) }],
    );
    const r = store.get(running.id);
    t.equal(r?.state, "running");
    t.match(
      r?.log.map((e) => e.message),
      [
        /^received/,
        /^dispatched to green-acres \(recorded late: /,
        "reattached: green-acres reports it running",
      ],
    );
    const f = store.get(finished.id);
    t.equal(f?.state, "succeeded");
    t.match(
      f?.log.map((e) => e.message),
      [/^received/, /^dispatched to green-acres \(recorded late: /, /^succeeded on green-acres/],
    );
    t.same(
      sent.filter((m) => m.type === "cancel"),
      [],
      "nothing canceled",
    );
  },
);

t.test(
  "a report of an attempt is not applied to the next one, queued but not yet written",
  async (t) => {
    // Attempt 1's result is acknowledged without being stored: the master has moved on.
    const { store, sent, session } = await setup(t, false);
    const id = await running(store);
    await register(session, [{ jobId: id, attempt: 1, state: "running", progress: null }]);
    // A retry as attempt 2, applied but its write waiting (as a deferred one does).
    const retry = store.update(
      id,
      (j) => transition(j, { to: "queued", now: 5, message: "retry 1 of 1" }),
      { deferMs: 60_000 },
    );
    await session.handle({ type: "result", ...result(id) });
    t.same(sent.at(-1), { type: "ack", jobId: id, attempt: 1 }, "acknowledged, so not repeated");
    t.equal((await retry).attempt, 2);
    await store.close();
    t.equal(store.get(id)?.state, "queued", "attempt 2 still waits for its turn");
    t.equal(store.get(id)?.result, null, "attempt 1's result was not given to attempt 2");
  },
);

t.test("a repeated result is not acknowledged when the first one's write failed", async (t) => {
  let failWrites = false;
  const store = await JobStore.open({
    dir: tempDir(t),
    fs: {
      ...realFsOps,
      writeSynced: (file, data) =>
        failWrites && file.includes("job-")
          ? Promise.reject(Object.assign(new Error("EIO: simulated"), { code: "EIO" }))
          : realFsOps.writeSynced(file, data),
    },
  });
  t.teardown(() => store.close());
  const id = await running(store);
  // Two sessions of the slave at once (an old connection and its replacement).
  const sessions = [0, 1].map(() => {
    const sent: MasterToSlaveMessage[] = [];
    return { session: sessionOn(store, sent), sent };
  });
  for (const { session } of sessions) {
    await register(session, [{ jobId: id, attempt: 1, state: "running", progress: null }]);
  }
  failWrites = true;
  await Promise.all(
    sessions.map(({ session }) => session.handle({ type: "result", ...result(id) })),
  );
  t.equal(store.get(id)?.state, "running", "the result is not on disk");
  t.same(
    sessions.flatMap(({ sent }) => sent.filter((m) => m.type === "ack")),
    [],
    "so neither copy is acknowledged: the slave keeps it and reports it again",
  );
});

t.test("protocol errors close the session", async (t) => {
  const cases: [string, Parameters<SlaveSession["handle"]>[0], string][] = [
    [
      "a report before register",
      { type: "started", jobId: 1, attempt: 1 },
      "started before register",
    ],
    [
      "a register under another name",
      { type: "register", name: "impostor", maxJobs: 1, running: [], results: [] },
      'register names slave "impostor", but hello said "green-acres"',
    ],
  ];
  for (const [name, message, why] of cases) {
    const { session, closed } = await setup(t);
    await session.handle(message);
    t.equal(session.state, "closed", name);
    t.match(closed[0], { code: "PROTOCOL", message: why }, name);
  }
});

t.test(
  "a slave that keeps reporting unknown jobs: one line, a summary, then disconnected",
  async (t) => {
    const store = await JobStore.open({ dir: tempDir(t) });
    t.teardown(() => store.close());
    const own = await running(store);
    const other = await running(store, "red-barn");
    let now = 1_000_000;
    const log = new CollectingLogger();
    const closed: (AbsError | undefined)[] = [];
    const sent: MasterToSlaveMessage[] = [];
    const session = new SlaveSession({
      name: "green-acres",
      master: "master.test",
      heartbeatMs: 10_000,
      store,
      logger: log,
      clock: () => now,
      port: { send: (m) => (sent.push(m), true), close: (e) => void closed.push(e) },
      unexpectedReports: { windowMs: 60_000, max: 50 },
    });
    await register(session, [{ jobId: own, attempt: 1, state: "running", progress: null }]);
    const progress = (jobId: number) =>
      session.handle({ type: "progress", jobId, attempt: 1, files: 1, bytes: 1, path: "/x" });
    const warnings = () => log.messages("warn");

    // Twenty reports of jobs it does not have, in the first window: one line.
    for (let i = 0; i < 10; i++) await progress(900_000 + i);
    for (let i = 0; i < 10; i++) await progress(other);
    t.same(warnings(), [
      "slave green-acres: progress for job 900000, which is not in the jobs directory",
    ]);
    // Its own job's reports are not affected.
    await progress(own);
    t.equal(warnings().length, 1);

    // The next window opens with the summary of the last, then its first line in full.
    now += 60_000;
    await progress(900_100);
    t.same(warnings().slice(1), [
      "slave green-acres: 19 more reports about jobs this master does not expect in the 60 s after the one logged; ignored",
      "slave green-acres: progress for job 900100, which is not in the jobs directory",
    ]);

    // Fifty within one window: disconnected, with a line that says why.
    for (let i = 1; i < 50 && closed.length === 0; i++) await progress(900_100 + i);
    t.equal(closed.length, 1, "disconnected");
    t.equal(closed[0]?.code, "PROTOCOL");
    t.equal(
      closed[0]?.message,
      "50 reports within 60 s about jobs this master does not expect from slave green-acres (the last: slave green-acres: progress for job 900149, which is not in the jobs directory); disconnected",
    );
    t.equal(warnings().length, 4, "three lines and the disconnect, for 71 reports");
    t.match(warnings()[3], /^slave green-acres: 50 reports within 60 s/);
  },
);
