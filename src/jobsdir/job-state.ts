// The one place that changes a job's state. Pure: takes a job and a change,
// returns the new job. An illegal move throws IllegalTransitionError and
// leaves the job as it was.
//
//   queued ──► dispatched ──► running ──► succeeded | failed | canceled
//      │           │             │
//      │           └──► canceling ◄┘      (cancel requested, slave to confirm)
//      │
//   dispatched, canceling ──► finished           (the slave's result or refusal;
//                                                 from dispatched, before started)
//   dispatched, running, canceling ──► orphaned  (master restarted, slave gone)
//   orphaned ──► dispatched | running | canceling | finished
//                                                (slave reported it: reattached)
//   orphaned ──► failed                          (grace period over: "lost")
//   dispatched, running, orphaned ──► queued     (a retry: attempt + 1)
//   queued ──► canceled | failed                 (canceled before dispatch, start deadline)
//
// Finished is final, with one exception, in correctLost: a job the master
// failed as lost (its slave did not report it) takes the outcome its slave
// did report, to a fake master, when the disaster log is imported.

import { IllegalTransitionError, assertNever } from "../errors.js";
import {
  isFinished,
  type Job,
  type JobLogEntry,
  type JobProgress,
  type JobResult,
  type JobState,
  type LogLevel,
} from "./job.js";

/** The states a job in `from` may move to. */
export function allowedTargets(from: JobState): readonly JobState[] {
  switch (from) {
    case "queued":
      return ["dispatched", "canceled", "failed"];
    case "dispatched":
      return ["running", "queued", "canceling", "orphaned", "succeeded", "failed", "canceled"];
    case "running":
      return ["queued", "canceling", "orphaned", "succeeded", "failed", "canceled"];
    case "canceling":
      return ["orphaned", "succeeded", "failed", "canceled"];
    case "orphaned":
      return ["dispatched", "running", "canceling", "queued", "succeeded", "failed", "canceled"];
    case "succeeded":
    case "failed":
    case "canceled":
      return [];
    default:
      return assertNever(from);
  }
}

export interface Transition {
  to: JobState;
  /** When it happened (ms since the epoch). */
  now: number;
  /** The log line recorded with the change. */
  message: string;
  level?: LogLevel;
  /** For a finished state: the outcome. Required for succeeded, failed and canceled. */
  result?: JobResult;
  /** For a retry (to queued): not dispatched before this time. Default: at once. */
  notBefore?: number;
  /**
   * To queued without a new attempt: a dispatch that never reached the slave
   * (its registration does not list the job, and it never started). Default false.
   */
  sameAttempt?: boolean;
}

/** Returns the job in its new state, with its serial bumped and a log entry appended. */
export function transition(job: Job, change: Transition): Job {
  const { to, now } = change;
  if (!allowedTargets(job.state).includes(to)) {
    throw new IllegalTransitionError(`job ${job.id}: cannot move from ${job.state} to ${to}`, {
      jobId: job.id,
    });
  }
  const timestamps = { ...job.timestamps };
  let attempt = job.attempt;
  let progress: JobProgress | null = job.progress;
  let result: JobResult | null = job.result;
  timestamps.notBefore = null;

  switch (to) {
    case "queued":
      // A retry: a new attempt starts from scratch.
      if (change.sameAttempt !== true) attempt += 1;
      timestamps.dispatched = null;
      timestamps.started = null;
      timestamps.notBefore = change.notBefore ?? null;
      progress = null;
      break;
    case "dispatched":
      timestamps.dispatched = now;
      break;
    case "running":
      // Reattached jobs keep the start time they had.
      timestamps.started ??= now;
      break;
    case "canceling":
    case "orphaned":
      break;
    case "succeeded":
    case "failed":
    case "canceled":
      if (change.result === undefined) {
        throw new IllegalTransitionError(`job ${job.id}: moving to ${to} needs a result`, {
          jobId: job.id,
        });
      }
      timestamps.ended = now;
      result = change.result;
      break;
    default:
      return assertNever(to);
  }

  return {
    ...job,
    state: to,
    attempt,
    timestamps,
    progress,
    result,
    log: appendEntry(job.log, now, change.level ?? levelFor(to), change.message),
    serial: job.serial + 1,
  };
}

/**
 * A result the master decided because the slave did not report the job
 * (lost): marked in its data, so that an imported disaster log may put the
 * slave's own outcome in its place. A slave's report never carries the mark.
 */
export function lostResult(message: string): JobResult {
  return { message, data: { lost: true } };
}

/** Whether `job` failed as lost (see lostResult). */
export function isLost(job: Job): boolean {
  return job.state === "failed" && job.result?.data["lost"] === true;
}

/**
 * Replaces the master's "lost" verdict on `job` with the outcome its slave
 * reported while the master was away (disaster-log import). Only a lost
 * job, only to a finished state with a result.
 */
export function correctLost(job: Job, change: Transition): Job {
  if (!isLost(job)) {
    throw new IllegalTransitionError(
      `job ${job.id}: only a job failed as lost takes an imported outcome; it is ${job.state}`,
      { jobId: job.id },
    );
  }
  if (!isFinished(change.to) || change.result === undefined) {
    throw new IllegalTransitionError(
      `job ${job.id}: a lost job takes a finished state with its result, not ${change.to}`,
      { jobId: job.id },
    );
  }
  return {
    ...job,
    state: change.to,
    timestamps: { ...job.timestamps, ended: change.now, notBefore: null },
    result: change.result,
    log: appendEntry(job.log, change.now, change.level ?? levelFor(change.to), change.message),
    serial: job.serial + 1,
  };
}

/** Records progress of a job that is running (or being canceled). */
export function recordProgress(job: Job, progress: JobProgress): Job {
  if (job.state !== "running" && job.state !== "canceling") {
    throw new IllegalTransitionError(`job ${job.id}: progress reported while ${job.state}`, {
      jobId: job.id,
    });
  }
  return { ...job, progress, serial: job.serial + 1 };
}

/** Appends a log line without changing the state (e.g. an imported report, a warning). */
export function recordLog(job: Job, now: number, level: LogLevel, message: string): Job {
  return { ...job, log: appendEntry(job.log, now, level, message), serial: job.serial + 1 };
}

function appendEntry(
  log: JobLogEntry[],
  time: number,
  level: LogLevel,
  message: string,
): JobLogEntry[] {
  const last = log.length === 0 ? 0 : log[log.length - 1].serial;
  return [...log, { serial: last + 1, time, level, message }];
}

function levelFor(to: JobState): LogLevel {
  if (to === "failed" || to === "orphaned") return "warning";
  return "info";
}
