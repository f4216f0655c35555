// The dispatcher and the slave session together on a real jobs directory and
// a fake clock, in the orders of events a review found dangerous: a decision
// taken on what was read earlier must not overwrite a change that landed in
// between.

import t, { type Test } from "tap";
import type { AbsError } from "../../src/errors.js";
import { JobStore } from "../../src/jobsdir/job-store.js";
import { Dispatcher } from "../../src/master/dispatcher.js";
import { SlaveSession } from "../../src/master/slave-session.js";
import type { MasterToSlaveMessage } from "../../src/protocol/slave-messages.js";
import { FakeClock, settle } from "../helpers/fake-clock.js";
import { CollectingLogger } from "../helpers/log.js";
import { tempDir } from "../helpers/tmp.js";

const SPEC = { definition: "home", slave: "green-acres", method: "tar", params: {}, priority: 0 };
const GRACE = 60_000;

async function setup(t: Test) {
  const clock = new FakeClock(Date.parse("2026-06-01T00:00:00Z"));
  const store = await JobStore.open({ dir: tempDir(t), clock: () => clock.now() });
  t.teardown(() => store.close());
  const logger = new CollectingLogger();
  const dispatcher = new Dispatcher({
    store,
    clock,
    logger,
    limits: { maxConcurrent: 10, defaultSlaveMaxJobs: 2, orphanGraceMs: GRACE },
  });
  t.teardown(() => dispatcher.stop());
  await dispatcher.start();
  const connect = async (running: { jobId: number; attempt: number }[] = []) => {
    const sent: MasterToSlaveMessage[] = [];
    const closed: (AbsError | undefined)[] = [];
    const listeners = new Set<(m: MasterToSlaveMessage) => void>();
    /** The first message of `type` sent to this slave, already or to come (an event, not a poll). */
    const next = (type: MasterToSlaveMessage["type"]): Promise<MasterToSlaveMessage> => {
      const early = sent.find((m) => m.type === type);
      if (early !== undefined) return Promise.resolve(early);
      return new Promise((resolve) => {
        const listener = (m: MasterToSlaveMessage): void => {
          if (m.type !== type) return;
          listeners.delete(listener);
          resolve(m);
        };
        listeners.add(listener);
      });
    };
    const session = new SlaveSession({
      name: "green-acres",
      master: "master.test",
      heartbeatMs: 10_000,
      store,
      logger,
      clock: () => clock.now(),
      port: {
        send: (m) => {
          sent.push(m);
          for (const l of [...listeners]) l(m);
          return true;
        },
        close: (e) => void closed.push(e),
      },
      onRegistered: (s) => dispatcher.slaveRegistered(s),
    });
    await session.handle({
      type: "register",
      name: "green-acres",
      maxJobs: 2,
      running: running.map((r) => ({ ...r, state: "running" as const, progress: null })),
      results: [],
    });
    return { session, sent, closed, next };
  };
  /** Resolves once job `id` is in `state` (store events, not sleeps). */
  const reach = (id: number, state: string) =>
    new Promise<void>((resolve) => {
      if (store.get(id)?.state === state) return resolve();
      const off = store.onChange((j) => {
        if (j.id === id && j.state === state) {
          off();
          resolve();
        }
      });
    });
  return { clock, store, dispatcher, connect, reach };
}

t.test("a cancel while the dispatch is being written goes through the slave", async (t) => {
  const { store, dispatcher, connect, reach } = await setup(t);
  const { sent } = await connect();
  const job = await store.submit(SPEC);
  // The submission's event starts a pass on the next turn; let it reserve the job.
  await new Promise<void>((resolve) => setImmediate(resolve));
  t.equal(store.get(job.id)?.state, "queued", "the move to dispatched is still being written");
  const canceled = await dispatcher.cancel(job, "canceled by an administrator");
  t.equal(canceled.state, "canceling", "decided on the dispatch being written, not on queued");
  await reach(job.id, "canceling");
  t.same(
    sent.filter((m) => m.type !== "registered").map((m) => m.type),
    ["dispatch", "cancel"],
    "the slave is sent the job, then told to stop it",
  );
});

t.test("a job reattached as its grace period ends is not retried", async (t) => {
  const { clock, store, dispatcher, connect, reach } = await setup(t);
  const first = await connect();
  const job = await store.submit({ ...SPEC });
  await reach(job.id, "dispatched");
  await settle(); // the dispatch is sent once its move is written
  const dispatch = first.sent.at(-1);
  t.equal(dispatch?.type, "dispatch");
  await first.session.handle({ type: "started", jobId: job.id, attempt: 1 });
  await reach(job.id, "running");
  first.session.close();
  await dispatcher.slaveGone(first.session);
  await reach(job.id, "orphaned");
  // The slave comes back reporting the job, and its reattach is decided
  // (but not yet written) when the grace period ends.
  const back = connect([{ jobId: job.id, attempt: 1 }]);
  for (let i = 0; i < 20; i++) await Promise.resolve();
  t.equal(store.get(job.id)?.state, "orphaned", "the reattach is not written yet");
  await clock.advanceTo(clock.now() + GRACE);
  await back;
  await settle();
  const after = store.get(job.id);
  t.equal(after?.state, "running", "reattached; the grace timer changed nothing");
  t.notOk(
    after?.log.some((e) => e.message.startsWith("lost:")),
    `not declared lost: ${JSON.stringify(after?.log.map((e) => e.message))}`,
  );
  t.equal(after?.attempt, 1, "no retry was queued");
});

t.test("the grace period starts even when a progress write lands after the loss", async (t) => {
  const { clock, store, dispatcher, connect, reach } = await setup(t);
  const { session } = await connect();
  const job = await store.submit(SPEC);
  await reach(job.id, "dispatched");
  await session.handle({ type: "started", jobId: job.id, attempt: 1 });
  await reach(job.id, "running");
  // A progress report being written as the connection drops.
  void session.handle({
    type: "progress",
    jobId: job.id,
    attempt: 1,
    files: 1,
    bytes: 2,
    path: null,
  });
  session.close();
  await dispatcher.slaveGone(session);
  await reach(job.id, "orphaned");
  await clock.advanceTo(clock.now() + GRACE + 1);
  await reach(job.id, "failed");
  t.equal(
    store.get(job.id)?.result?.message,
    "lost: slave green-acres did not report it within 1m",
  );
});

t.test(
  "a dispatch lost with its connection before it was written is sent again, same attempt",
  async (t) => {
    const { store, dispatcher, connect } = await setup(t);
    const a = await connect();
    const job = await store.submit(SPEC);
    // The dispatch goes out as soon as it is applied; its write waits a little.
    await a.next("dispatch");
    t.equal(store.get(job.id)?.state, "queued", "not yet written");
    a.session.close();
    await dispatcher.slaveGone(a.session);
    // Back, without the job: it never reached the slave.
    const b = await connect();
    const again = await b.next("dispatch");
    t.match(again, { type: "dispatch", jobId: job.id, attempt: 1 }, "the same attempt, sent again");
  },
);
