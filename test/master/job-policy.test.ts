import t from "tap";
import { NO_POLICY } from "../../src/jobsdir/job.js";
import { waitReason } from "../../src/master/dispatch-plan.js";
import { afterFailure, nextDeadline, retryBackoff } from "../../src/master/job-policy.js";
import { sampleJob } from "../helpers/job.js";

const POLICY = { ...NO_POLICY, retries: 3, retryBackoffMs: 60_000, retryBackoffMaxMs: 150_000 };
const RESULT = { message: "exit status 2", data: {} };

t.test("the backoff doubles up to its maximum", (t) => {
  t.same(
    [1, 2, 3, 4, 50].map((n) => retryBackoff(POLICY, n)),
    [60_000, 120_000, 150_000, 150_000, 150_000],
  );
  t.equal(
    retryBackoff({ ...POLICY, retryBackoffMaxMs: 0 }, 3),
    60_000,
    "a max below the base is the base",
  );
  t.end();
});

t.test("a failure is retried while retries are left, then fails for good", (t) => {
  const first = afterFailure(
    sampleJob({ state: "running", policy: POLICY }),
    1000,
    "exit status 2",
    RESULT,
  );
  t.same(first, {
    to: "queued",
    now: 1000,
    level: "warning",
    notBefore: 61_000,
    message: "attempt 1 failed: exit status 2; retry 1 of 3 in 1m",
  });
  const last = afterFailure(
    sampleJob({ state: "running", policy: POLICY, attempt: 4 }),
    1000,
    "exit status 2",
    RESULT,
  );
  t.same(last, {
    to: "failed",
    now: 1000,
    message: "exit status 2 (attempt 4, no retries left)",
    result: RESULT,
  });
  const none = afterFailure(sampleJob({ state: "running" }), 1000, "exit status 2", RESULT);
  t.same(none, { to: "failed", now: 1000, message: "exit status 2", result: RESULT });
  t.end();
});

t.test("the next deadline of a job, by state", (t) => {
  const p = { ...NO_POLICY, maxRunTimeMs: 5000, startBy: 9000 };
  const ts = { received: 0, dispatched: null, started: null, ended: null, notBefore: null };
  t.same(nextDeadline(sampleJob({ policy: p, timestamps: ts }), 0, undefined), {
    at: 9000,
    kind: "start-deadline",
  });
  t.same(
    nextDeadline(sampleJob({ policy: p, timestamps: { ...ts, notBefore: 4000 } }), 0, undefined),
    { at: 4000, kind: "retry" },
  );
  t.same(
    nextDeadline(sampleJob({ policy: p, timestamps: { ...ts, notBefore: 9500 } }), 0, undefined),
    { at: 9000, kind: "start-deadline" },
    "a backoff past the deadline: the deadline first",
  );
  t.equal(
    nextDeadline(sampleJob({ timestamps: ts }), 0, undefined),
    null,
    "no policy, no deadline",
  );
  t.same(
    nextDeadline(
      sampleJob({ state: "dispatched", policy: p, timestamps: { ...ts, dispatched: 100 } }),
      0,
      undefined,
    ),
    { at: 5100, kind: "max-run-time" },
  );
  t.same(
    nextDeadline(
      sampleJob({
        state: "running",
        policy: p,
        timestamps: { ...ts, dispatched: 100, started: 200 },
      }),
      0,
      undefined,
    ),
    { at: 5200, kind: "max-run-time" },
  );
  t.same(nextDeadline(sampleJob({ state: "orphaned" }), 0, 7000), {
    at: 7000,
    kind: "orphan-grace",
  });
  t.equal(nextDeadline(sampleJob({ state: "canceling", policy: p }), 0, undefined), null);
  t.equal(nextDeadline(sampleJob({ state: "succeeded", policy: p }), 0, undefined), null);
  t.end();
});

t.test("wait reasons, in order of precedence", (t) => {
  const slave = { name: "green-acres", connected: true, maxJobs: 2, active: 0 };
  const ctx = { now: 1000, slave, globalMax: 10, globalActive: 0, orphanedUntil: undefined };
  const q = sampleJob();
  t.equal(waitReason(q, { ...ctx, slave: undefined }), "waiting for slave green-acres to connect");
  t.equal(
    waitReason(q, { ...ctx, slave: { ...slave, active: 2 } }),
    "slave green-acres at its limit 2/2",
  );
  t.equal(waitReason(q, { ...ctx, globalActive: 10 }), "master at its limit of 10 running jobs");
  t.equal(waitReason(q, ctx), "about to be dispatched");
  const retry = sampleJob({ attempt: 2, timestamps: { ...q.timestamps, notBefore: 61_000 } });
  t.equal(
    waitReason(retry, { ...ctx, slave: undefined }),
    "retry backoff: attempt 2 not before 1970-01-01T00:01:01Z",
  );
  t.equal(
    waitReason(sampleJob({ state: "orphaned" }), { ...ctx, orphanedUntil: 601_000 }),
    "waiting until 1970-01-01T00:10:01Z for slave green-acres to report it",
  );
  t.equal(waitReason(sampleJob({ state: "running" }), ctx), null);
  t.end();
});
