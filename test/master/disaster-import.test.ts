// The disaster-log import's decisions, pure: how reports fold into one
// attempt, and what each attempt does to the job it matches (or the new
// job that records it). The end-to-end import, with a real fake master, a
// real master and a real slave, is in fake-master.test.ts.

import t from "tap";
import type { Job } from "../../src/jobsdir/job.js";
import { isLost, lostResult, transition } from "../../src/jobsdir/job-state.js";
import {
  applyToKnownJob,
  applyToRecordedJob,
  CLOCK_SKEW_MS,
  finishUnknownJob,
  foldRecord,
  isSameJob,
  notDispatchedBecause,
  notVouchedBecause,
  type ReportedAttempt,
  unknownJobSpec,
  whyUnknown,
} from "../../src/master/disaster-import.js";
import type { DisasterRecord } from "../../src/master/disaster-log.js";
import { sampleJob } from "../helpers/job.js";

const T0 = Date.parse("2026-11-20T03:00:00Z");
const NOW = T0 + 3_600_000;
const who = { slave: "green-acres", identity: "green-acres" };

function fold(records: DisasterRecord[]): ReportedAttempt[] {
  const map = new Map<string, ReportedAttempt>();
  records.forEach((r, i) => foldRecord(map, r, i + 1));
  return [...map.values()];
}

function succeeded(jobId = 7, attempt = 1, time = T0 + 60_000): ReportedAttempt {
  const [a] = fold([
    { ...who, time: T0, report: "running", jobId, attempt, state: "running", progress: null },
    {
      ...who,
      time,
      report: "result",
      jobId,
      attempt,
      outcome: "succeeded",
      message: "12 files, 3 MiB",
      data: { files: 12 },
    },
  ]);
  if (a === undefined) throw new Error("no attempt");
  return a;
}

function runningOnly(jobId = 7, attempt = 1): ReportedAttempt {
  const [a] = fold([
    { ...who, time: T0, report: "running", jobId, attempt, state: "running", progress: null },
    {
      ...who,
      time: T0 + 10,
      report: "progress",
      jobId,
      attempt,
      progress: { files: 1, bytes: 2, path: "/x" },
    },
  ]);
  if (a === undefined) throw new Error("no attempt");
  return a;
}

function running(extra: Partial<Job> = {}): Job {
  const j = transition(sampleJob(), { to: "dispatched", now: 2000, message: "dispatched" });
  return { ...transition(j, { to: "running", now: 3000, message: "started" }), ...extra };
}

function lost(job: Job): Job {
  const why = "lost: green-acres no longer runs it";
  return transition(job, { to: "failed", now: NOW - 1000, message: why, result: lostResult(why) });
}

t.test("foldRecord: one attempt per slave, job and attempt; the first result counts", (t) => {
  const attempts = fold([
    { ...who, time: T0 + 5, report: "started", jobId: 7, attempt: 1 },
    { ...who, time: T0, report: "running", jobId: 7, attempt: 1, state: "dispatched" },
    {
      ...who,
      time: T0 + 9,
      report: "result",
      jobId: 7,
      attempt: 1,
      outcome: "failed",
      message: "first",
      data: {},
    },
    {
      ...who,
      time: T0 + 20,
      report: "result",
      jobId: 7,
      attempt: 1,
      outcome: "failed",
      message: "repeat",
      data: {},
    },
    { ...who, time: T0, report: "started", jobId: 7, attempt: 2 },
    { ...who, slave: "red-barn", time: T0, report: "reject", jobId: 7, attempt: 1, reason: "busy" },
  ]);
  t.equal(attempts.length, 3);
  t.match(attempts[0], {
    jobId: 7,
    attempt: 1,
    firstTime: T0,
    lastTime: T0 + 20,
    startedTime: T0 + 5,
    result: { outcome: "failed", message: "first", time: T0 + 9 },
    line: 1,
  });
  t.match(attempts[1], { attempt: 2, result: null, line: 5 });
  t.match(attempts[2], { slave: "red-barn", reject: { reason: "busy" }, result: null });
  t.end();
});

t.test("a known job is the same id on the same slave, received before the report", (t) => {
  const a = succeeded();
  t.ok(isSameJob(running(), a));
  t.notOk(isSameJob(running({ slave: "red-barn" }), a));
  const later = running();
  const receivedAt = (received: number): Job => ({
    ...later,
    timestamps: { ...later.timestamps, received },
  });
  t.ok(isSameJob(receivedAt(T0 + CLOCK_SKEW_MS), a), "a fake master's clock a minute behind");
  t.notOk(isSameJob(receivedAt(T0 + CLOCK_SKEW_MS + 1), a), "a job received after the report");
  t.match(whyUnknown(undefined, a), /does not have/);
  t.match(whyUnknown(running({ slave: "red-barn" }), a), /job 7 here runs on red-barn/);
  t.end();
});

t.test("a running or orphaned job takes the reported outcome", (t) => {
  for (const job of [
    running(),
    transition(running(), { to: "orphaned", now: 4000, message: "o" }),
  ]) {
    const { job: after, verdict } = applyToKnownJob(job, succeeded(), NOW);
    t.equal(verdict, "merged");
    t.equal(after.state, "succeeded");
    t.same(after.result, { message: "12 files, 3 MiB", data: { files: 12 } });
    t.equal(after.timestamps.ended, NOW);
    t.match(
      after.log.at(-1)?.message,
      /^succeeded on green-acres: 12 files, 3 MiB \(from the disaster log: green-acres, attempt 1, at 2026-11-20T03:01:00\.000Z\)$/,
    );
    t.same(applyToKnownJob(after, succeeded(), NOW + 1), { job: after, verdict: "unchanged" });
  }
  t.end();
});

t.test("a run dispatched again since the report keeps going; the log's result is noted", (t) => {
  // Dispatched, then the disaster before `started` was written: the slave,
  // back without it, had it queued again as the same attempt, and the
  // dispatcher sent it again after the report in the log.
  const again = transition(
    transition(sampleJob(), { to: "dispatched", now: T0 + 3_600_000, message: "dispatched again" }),
    { to: "running", now: T0 + 3_600_001, message: "started" },
  );
  const { job, verdict } = applyToKnownJob(again, succeeded(), NOW);
  t.equal(verdict, "noted");
  t.equal(job.state, "running", "the new run's own result decides");
  t.match(
    job.log.at(-1)?.message,
    /from a run before the job was dispatched again; the job goes on \(running\)/,
  );
  t.same(applyToKnownJob(job, succeeded(), NOW + 1), { job, verdict: "unchanged" });
  t.end();
});

t.test("a failure follows the retry policy; a job queued again gets its dispatch first", (t) => {
  const [failedAttempt] = fold([
    {
      ...who,
      time: T0,
      report: "result",
      jobId: 7,
      attempt: 1,
      outcome: "failed",
      message: "disk full",
      data: {},
    },
  ]);
  if (failedAttempt === undefined) throw new Error("no attempt");
  const retried = running({ policy: { ...running().policy, retries: 2, retryBackoffMs: 1000 } });
  const { job: after, verdict } = applyToKnownJob(retried, failedAttempt, NOW);
  t.equal(verdict, "merged");
  t.match(after, { state: "queued", attempt: 2, timestamps: { notBefore: NOW + 1000 } });
  t.same(
    applyToKnownJob(after, failedAttempt, NOW + 1),
    { job: after, verdict: "unchanged" },
    "imported again once the job has moved on to its retry: nothing",
  );

  const requeued = transition(running(), {
    to: "queued",
    now: 5000,
    sameAttempt: true,
    message: "never received it",
  });
  const r = applyToKnownJob(requeued, succeeded(), NOW);
  t.equal(r.job.state, "succeeded");
  t.match(
    r.job.log.slice(-2).map((e) => e.message),
    [/^dispatched to green-acres \(as the disaster log shows\)$/, /^succeeded on green-acres/],
  );
  t.end();
});

t.test("a lost job takes the reported outcome in place of lost; only a lost one", (t) => {
  const wasLost = lost(running());
  t.ok(isLost(wasLost));
  const { job: after, verdict } = applyToKnownJob(wasLost, succeeded(), NOW);
  t.equal(verdict, "corrected");
  t.match(after, {
    state: "succeeded",
    result: { data: { files: 12 } },
    serial: wasLost.serial + 1,
  });
  t.notOk(isLost(after));
  t.match(
    after.log.at(-1)?.message,
    /it had been failed as "lost: green-acres no longer runs it"\) \(from the disaster log: green-acres, attempt 1, at \S+Z\)$/,
  );
  t.same(applyToKnownJob(after, succeeded(), NOW), { job: after, verdict: "unchanged" });
  // Only reported running: nothing to say about the outcome.
  t.same(applyToKnownJob(wasLost, runningOnly(), NOW), { job: wasLost, verdict: "unchanged" });
  t.end();
});

t.test("a job that ended otherwise, or moved on, keeps its state and gets one log line", (t) => {
  const failedBySlave = transition(running(), {
    to: "failed",
    now: 9000,
    message: "failed",
    result: { message: "exit status 2", data: {} },
  });
  const noted = applyToKnownJob(failedBySlave, succeeded(), NOW);
  t.equal(noted.verdict, "noted");
  t.equal(noted.job.state, "failed");
  t.match(noted.job.log.at(-1), {
    level: "warning",
    message:
      /^the disaster log has attempt 1 succeeded on green-acres: 12 files, 3 MiB; the job stays failed \(from the disaster log: green-acres, attempt 1, at \S+Z\)$/,
  });
  t.same(applyToKnownJob(noted.job, succeeded(), NOW), { job: noted.job, verdict: "unchanged" });

  const retry = running({ attempt: 2 });
  const earlier = applyToKnownJob(retry, succeeded(7, 1), NOW);
  t.equal(earlier.verdict, "noted");
  t.equal(earlier.job.state, "running");
  t.match(
    earlier.job.log.at(-1)?.message,
    /earlier attempt 1 succeeded .*; the job is at attempt 2 \(running\) \(from the disaster log/,
  );
  t.same(applyToKnownJob(running(), runningOnly(), NOW).verdict, "unchanged");
  t.same(applyToKnownJob(earlier.job, succeeded(7, 1), NOW + 5), {
    job: earlier.job,
    verdict: "unchanged",
  });
  const beyond = applyToKnownJob(running(), succeeded(7, 3), NOW);
  t.match(beyond.job.log.at(-1)?.message, /attempt 3 succeeded .*, beyond the job's attempt 1/);
  t.end();
});

t.test("an unknown attempt is recorded finished; a lost record can be completed later", (t) => {
  const a = succeeded(4711, 1);
  const spec = unknownJobSpec(a, whyUnknown(undefined, a));
  t.match(spec, {
    definition: "(disaster)",
    slave: "green-acres",
    method: "unknown",
    params: { reportedJobId: 4711, reportedAttempt: 1 },
  });
  const queued = sampleJob({ id: 90, definition: spec.definition, params: spec.params });
  const done = finishUnknownJob(queued, a);
  t.match(done, {
    state: "succeeded",
    timestamps: { dispatched: T0, started: T0, ended: T0 + 60_000 },
    result: { message: "12 files, 3 MiB" },
  });
  t.same(applyToRecordedJob(done, a, NOW), { job: done, verdict: "unchanged" });

  const seen = runningOnly(4712, 1);
  const lostOne = finishUnknownJob(sampleJob({ id: 91 }), seen);
  t.equal(lostOne.state, "failed");
  t.ok(isLost(lostOne), "recorded lost, so a longer log may complete it");
  t.match(lostOne.result?.message, /^lost: green-acres reported it running during the disaster/);
  const completed = applyToRecordedJob(lostOne, succeeded(4712, 1), NOW);
  t.equal(completed.verdict, "corrected");
  t.equal(completed.job.state, "succeeded");

  const [byHand] = fold([
    {
      ...who,
      time: T0,
      report: "dispatched",
      jobId: 1_795_000_000_000_000,
      attempt: 1,
      definition: "quick",
      method: "command",
      params: { program: "/bin/true" },
    },
    {
      ...who,
      time: T0 + 5,
      report: "result",
      jobId: 1_795_000_000_000_000,
      attempt: 1,
      outcome: "succeeded",
      message: "ok",
      data: {},
    },
  ]);
  if (byHand === undefined) throw new Error("no attempt");
  t.match(unknownJobSpec(byHand, "which this jobs directory does not have"), {
    definition: "(disaster)",
    method: "command",
    message: /\(run by hand on the fake master: definition quick\), which this jobs directory/,
  });
  t.match(finishUnknownJob(sampleJob({ id: 93 }), byHand).log[1], {
    message: "dispatched to green-acres by the fake master",
    time: T0,
  });

  const [rejected] = fold([
    { ...who, time: T0, report: "reject", jobId: 4713, attempt: 1, reason: "at its limit 1/1" },
  ]);
  if (rejected === undefined) throw new Error("no attempt");
  t.match(finishUnknownJob(sampleJob({ id: 92 }), rejected), {
    state: "failed",
    result: { message: "refused by green-acres: at its limit 1/1" },
  });
  t.end();
});

t.test("a result counts only for an attempt dispatched to its slave", (t) => {
  const queued = sampleJob();
  t.equal(queued.state, "queued");
  t.equal(
    notDispatchedBecause(queued, succeeded()),
    `job ${queued.id} here (queued) was never dispatched`,
    "a job still queued at its first attempt: the slave never had it",
  );
  t.equal(notDispatchedBecause(running(), succeeded()), null);
  t.equal(notDispatchedBecause(lost(running()), succeeded()), null, "lost: it had been dispatched");
  const requeued = transition(running(), {
    to: "queued",
    now: 5000,
    sameAttempt: true,
    message: "green-acres never received it; queued again",
  });
  t.equal(notDispatchedBecause(requeued, succeeded()), null, "queued again as the same attempt");
  const canceled = transition(sampleJob(), {
    to: "canceled",
    now: 5000,
    message: "canceled",
    result: { message: "canceled", data: {} },
  });
  t.match(notDispatchedBecause(canceled, succeeded()), /\(canceled\) was never dispatched/);
  t.equal(
    notDispatchedBecause(running({ attempt: 2 }), succeeded(7, 1)),
    null,
    "an earlier attempt",
  );
  t.equal(
    notDispatchedBecause(running(), succeeded(7, 2)),
    `job ${running().id} here is at attempt 1, so attempt 2 was never dispatched`,
  );
  t.end();
});

t.test("a record's slave name must be one its identity vouches for", (t) => {
  const r = (slave: string, identity: string): DisasterRecord => ({
    time: T0,
    slave,
    identity,
    report: "started",
    jobId: 7,
    attempt: 1,
  });
  const policy = { service: "host", realm: "EXAMPLE.COM", map: {} };
  t.equal(
    notVouchedBecause(r("green-acres", "green-acres"), policy),
    null,
    "realm key: the name itself",
  );
  t.equal(
    notVouchedBecause(r("green-acres", "host/green-acres.example.com@EXAMPLE.COM"), policy),
    null,
  );
  t.match(
    notVouchedBecause(r("green-acres", "red-barn"), policy),
    /^slave "green-acres" is not vouched for by its identity: the key of slave "red-barn" proves the name "red-barn", not "green-acres"$/,
  );
  t.match(
    notVouchedBecause(r("green-acres", "host/red-barn@EXAMPLE.COM"), policy),
    /not vouched for/,
  );
  t.match(
    notVouchedBecause(r("green-acres", "alice/green-acres@EXAMPLE.COM"), policy),
    /not vouched for/,
  );
  t.end();
});
