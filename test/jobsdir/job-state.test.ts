import t from "tap";
import { IllegalTransitionError } from "../../src/errors.js";
import { sampleJob } from "../helpers/job.js";
import { JOB_STATES, type Job, type JobState, isFinished } from "../../src/jobsdir/job.js";
import {
  allowedTargets,
  correctLost,
  isLost,
  lostResult,
  recordLog,
  recordProgress,
  transition,
} from "../../src/jobsdir/job-state.js";

function job(state: JobState, extra: Partial<Job> = {}): Job {
  return sampleJob({ state, ...extra });
}

const RESULT = { message: "done", data: {} };

// The whole table: every (from, to) pair is either allowed or throws, and the
// allowed set is exactly the design's.
const EXPECTED: Record<JobState, JobState[]> = {
  queued: ["dispatched", "canceled", "failed"],
  dispatched: ["running", "queued", "canceling", "orphaned", "succeeded", "failed", "canceled"],
  running: ["queued", "canceling", "orphaned", "succeeded", "failed", "canceled"],
  canceling: ["orphaned", "succeeded", "failed", "canceled"],
  orphaned: ["dispatched", "running", "canceling", "queued", "succeeded", "failed", "canceled"],
  succeeded: [],
  failed: [],
  canceled: [],
};

t.test("every pair of states is allowed or refused as designed", (t) => {
  for (const from of JOB_STATES) {
    t.same([...allowedTargets(from)].sort(), [...EXPECTED[from]].sort(), `targets of ${from}`);
    for (const to of JOB_STATES) {
      const before = job(from);
      const change = { to, now: 2000, message: `to ${to}`, result: RESULT };
      if (EXPECTED[from].includes(to)) {
        const after = transition(before, change);
        t.equal(after.state, to);
        t.equal(after.serial, 2, "serial bumped");
        t.equal(after.log.length, 2);
        t.same(after.log[1], {
          serial: 2,
          time: 2000,
          level: to === "failed" || to === "orphaned" ? "warning" : "info",
          message: `to ${to}`,
        });
      } else {
        t.throws(
          () => transition(before, change),
          IllegalTransitionError,
          `${from} -> ${to} refused`,
        );
        try {
          transition(before, change);
        } catch (err) {
          t.equal((err as IllegalTransitionError).code, "ILLEGAL_TRANSITION");
          t.equal((err as Error).message, `job 7: cannot move from ${from} to ${to}`);
        }
        t.equal(before.state, from, "the job is left as it was");
        t.equal(before.serial, 1);
      }
    }
  }
  t.end();
});

t.test("timestamps follow the life of a job", (t) => {
  let j = job("queued");
  j = transition(j, { to: "dispatched", now: 2000, message: "dispatched" });
  t.equal(j.timestamps.dispatched, 2000);
  j = transition(j, { to: "running", now: 3000, message: "started" });
  t.equal(j.timestamps.started, 3000);
  j = transition(j, { to: "orphaned", now: 4000, message: "master restarted" });
  j = transition(j, { to: "running", now: 5000, message: "reattached" });
  t.equal(j.timestamps.started, 3000, "a reattached job keeps its start time");
  j = transition(j, { to: "succeeded", now: 6000, message: "ok", result: RESULT });
  t.equal(j.timestamps.ended, 6000);
  t.same(j.result, RESULT);
  t.ok(isFinished(j.state));
  t.same(
    j.log.map((e) => e.serial),
    [1, 2, 3, 4, 5, 6],
  );
  t.end();
});

t.test("a retry is a new attempt from scratch", (t) => {
  let j = job("running", {
    timestamps: { received: 1, dispatched: 2, started: 3, ended: null, notBefore: null },
    progress: { files: 3, bytes: 10, path: "/x" },
  });
  j = transition(j, { to: "queued", now: 9, message: "retry 2 of 3 in 60s", notBefore: 60_009 });
  t.equal(j.attempt, 2);
  t.same(j.timestamps, {
    received: 1,
    dispatched: null,
    started: null,
    ended: null,
    notBefore: 60_009,
  });
  j = transition(j, { to: "dispatched", now: 60_010, message: "dispatched" });
  t.equal(j.timestamps.notBefore, null, "the backoff is over once dispatched");
  t.equal(j.progress, null);
  t.end();
});

t.test("finishing needs a result", (t) => {
  for (const to of ["succeeded", "failed", "canceled"] as const) {
    t.throws(() => transition(job("running"), { to, now: 1, message: "x" }), {
      code: "ILLEGAL_TRANSITION",
      message: `job 7: moving to ${to} needs a result`,
    });
  }
  t.end();
});

t.test("progress and log lines", (t) => {
  const running = job("running");
  const p = recordProgress(running, { files: 1, bytes: 2, path: "/a" });
  t.equal(p.serial, 2);
  t.same(p.progress, { files: 1, bytes: 2, path: "/a" });
  t.throws(() => recordProgress(job("queued"), { files: 1, bytes: 2, path: null }), {
    code: "ILLEGAL_TRANSITION",
    message: "job 7: progress reported while queued",
  });

  const l = recordLog(job("succeeded"), 5, "warning", "imported from the disaster log");
  t.equal(l.log[1].serial, 2);
  t.equal(l.serial, 2);
  t.end();
});

t.test("correctLost: only a job failed as lost, only to a finished state with a result", (t) => {
  const running = transition(transition(sampleJob(), { to: "dispatched", now: 2, message: "d" }), {
    to: "running",
    now: 3,
    message: "r",
  });
  const why = "lost: green-acres no longer runs it";
  const lostJob = transition(running, {
    to: "failed",
    now: 4,
    message: why,
    result: lostResult(why),
  });
  t.ok(isLost(lostJob));
  const result = { message: "done", data: { files: 1 } };
  const fixed = correctLost(lostJob, { to: "succeeded", now: 9, message: "imported", result });
  t.match(fixed, { state: "succeeded", result, serial: lostJob.serial + 1 });
  t.equal(fixed.timestamps.ended, 9);
  t.match(fixed.log.at(-1), { message: "imported", level: "info" });
  t.throws(() => correctLost(fixed, { to: "failed", now: 10, message: "x", result }), {
    code: "ILLEGAL_TRANSITION",
    message: /only a job failed as lost/,
  });
  const failedBySlave = transition(running, {
    to: "failed",
    now: 4,
    message: "f",
    result: { message: "lost: said the slave", data: {} },
  });
  t.notOk(isLost(failedBySlave), "a slave's message is not the master's verdict");
  t.throws(() => correctLost(lostJob, { to: "running", now: 10, message: "x" }), {
    message: /takes a finished state with its result, not running/,
  });
  t.throws(() => correctLost(lostJob, { to: "canceled", now: 10, message: "x" }), {
    message: /takes a finished state with its result/,
  });
  t.end();
});
