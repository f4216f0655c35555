// What a job's policy decides: the limits a new run gets from its
// definition, whether a failed attempt is retried (and when), and the next
// moment the master must look at a job again. Pure: times are inputs.

import type { JobDefinition } from "../config/job-definition.js";
import { formatDuration } from "../config/duration.js";
import type { Job, JobPolicy, JobResult } from "../jobsdir/job.js";
import type { Transition } from "../jobsdir/job-state.js";
import { BadArgumentError } from "../errors.js";

/**
 * The slaves `abs run DEF [--slave X]` runs `def` on: all of its slaves, or
 * X if it is one of them. A slave the definition does not name is refused:
 * the definition's paths and commands were written for its own slaves, and
 * running them elsewhere is a way round whoever wrote it.
 */
export function slavesToRun(def: JobDefinition, only: string | null): string[] {
  if (only === null) return [...def.slaves];
  if (!def.slaves.includes(only)) {
    throw new BadArgumentError(
      `args.slave: slave "${only}" is not one of job definition ${def.name}'s slaves (${def.slaves.join(", ")})`,
      "slave",
    );
  }
  return [only];
}

/** The policy of a run of `def` triggered (or submitted by hand) at `at`. */
export function policyFor(def: JobDefinition, at: number): JobPolicy {
  return {
    maxRunTimeMs: def.maxRunTimeMs,
    startBy: def.startDeadlineMs === null ? null : at + def.startDeadlineMs,
    retries: def.retries,
    retryBackoffMs: def.retryBackoffMs,
    retryBackoffMaxMs: def.retryBackoffMaxMs,
  };
}

/** The wait before retry number `retry` (1 for the first): doubling, capped. */
export function retryBackoff(policy: JobPolicy, retry: number): number {
  const doubled = policy.retryBackoffMs * 2 ** Math.min(retry - 1, 40);
  return Math.min(doubled, Math.max(policy.retryBackoffMaxMs, policy.retryBackoffMs));
}

/**
 * A failed attempt: queued again after its backoff while retries are left,
 * else failed for good with `result`. `why` says what failed, for the log.
 */
export function afterFailure(job: Job, now: number, why: string, result: JobResult): Transition {
  const retry = job.attempt; // attempt 1 failed: this is retry 1
  if (retry <= job.policy.retries) {
    const wait = retryBackoff(job.policy, retry);
    return {
      to: "queued",
      now,
      level: "warning",
      notBefore: now + wait,
      message: `attempt ${job.attempt} failed: ${why}; retry ${retry} of ${job.policy.retries} in ${formatDuration(wait)}`,
    };
  }
  const tries = job.attempt === 1 ? "" : ` (attempt ${job.attempt}, no retries left)`;
  return { to: "failed", now, message: `${why}${tries}`, result };
}

export type DeadlineKind = "start-deadline" | "retry" | "max-run-time" | "orphan-grace";

export interface Deadline {
  at: number;
  kind: DeadlineKind;
}

/**
 * The next time after `now` the master must act on `job` by itself, or
 * null (a deadline already past is returned as it is: act at once).
 * `orphanedUntil` is when an orphaned job's grace ends (the dispatcher
 * keeps it: the grace counts from when the master noticed, not from a
 * time in the file).
 */
export function nextDeadline(
  job: Job,
  now: number,
  orphanedUntil: number | undefined,
): Deadline | null {
  switch (job.state) {
    case "queued": {
      const { startBy } = job.policy;
      const { notBefore } = job.timestamps;
      // The earlier of a retry's end of backoff (while still ahead) and the
      // start deadline; once the backoff is over, the deadline still holds.
      if (notBefore !== null && notBefore > now && (startBy === null || notBefore < startBy)) {
        return { at: notBefore, kind: "retry" };
      }
      return startBy === null ? null : { at: startBy, kind: "start-deadline" };
    }
    case "dispatched":
    case "running": {
      const { maxRunTimeMs } = job.policy;
      const since = job.timestamps.started ?? job.timestamps.dispatched;
      return maxRunTimeMs === null || since === null
        ? null
        : { at: since + maxRunTimeMs, kind: "max-run-time" };
    }
    case "orphaned":
      return orphanedUntil === undefined ? null : { at: orphanedUntil, kind: "orphan-grace" };
    case "canceling":
    case "succeeded":
    case "failed":
    case "canceled":
      return null;
  }
}
