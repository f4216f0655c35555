// The job record: one run of a job definition, as stored in
// `<jobs_dir>/job-<id>.json`. Times are milliseconds since the epoch (UTC),
// null until the event happens.

import type { JsonObject } from "../json-shape.js";
import type { JobLogEntry, JobState } from "../model/job-vocabulary.js";

// The states and the log entry live in src/model/ so that src/protocol can
// name them without importing the jobs store; they are re-exported here
// because every reader of a Job record needs them beside it.
export {
  JOB_STATES,
  isFinished,
  type FinishedState,
  type JobLogEntry,
  type JobState,
  type LogLevel,
} from "../model/job-vocabulary.js";

export interface JobTimestamps {
  /** When the master accepted the job (submission or schedule trigger). */
  received: number;
  /** When it was last sent to a slave. */
  dispatched: number | null;
  /** When the slave last reported it started. */
  started: number | null;
  /** When it finished (succeeded, failed or canceled). */
  ended: number | null;
  /** A retry waits for its backoff: not dispatched before this time; null otherwise. */
  notBefore: number | null;
}

/**
 * The limits a job runs under, copied from its definition when the job is
 * made: a later change of the definition does not change a run under way.
 */
export interface JobPolicy {
  /** Milliseconds a run may take before the master cancels it; null for no limit. */
  maxRunTimeMs: number | null;
  /** The job fails ("start deadline passed") if not started by this time; null for no deadline. */
  startBy: number | null;
  /** Further attempts after a failed one. */
  retries: number;
  /** Milliseconds before the first retry; each next one waits twice as long, up to retryBackoffMaxMs. */
  retryBackoffMs: number;
  retryBackoffMaxMs: number;
}

/** No limits, no retries: what an ad-hoc job runs under unless told otherwise. */
export const NO_POLICY: JobPolicy = {
  maxRunTimeMs: null,
  startBy: null,
  retries: 0,
  retryBackoffMs: 0,
  retryBackoffMaxMs: 0,
};

/** What a running job reported last. */
export interface JobProgress {
  files: number;
  bytes: number;
  /** The path being worked on, when the method has one. */
  path: string | null;
}

/** The outcome of a finished job, as reported by its slave or decided by the master. */
export interface JobResult {
  /** One line for people: "12034 files, 1.2 GiB", "exit status 2", "lost". */
  message: string;
  /** Method-specific detail (archive name, sizes, exit status, last output lines). */
  data: JsonObject;
}

export interface Job {
  id: number;
  /** The job definition this job is a run of (or "(manual)" for ad-hoc runs). */
  definition: string;
  /** The slave it runs on. */
  slave: string;
  /** The backup method (tar, restore, verify, command) and its parameters as dispatched. */
  method: string;
  params: JsonObject;
  state: JobState;
  /** Higher runs first. */
  priority: number;
  /** 1 for the first try; a retry increases it. */
  attempt: number;
  timestamps: JobTimestamps;
  progress: JobProgress | null;
  result: JobResult | null;
  policy: JobPolicy;
  log: JobLogEntry[];
  /** Increases by one on every change of the record; what wait-for-change compares. */
  serial: number;
}

/** What a submission names; the store fills in the rest. */
export interface NewJob {
  definition: string;
  slave: string;
  method: string;
  params: JsonObject;
  priority: number;
  /** Default NO_POLICY. */
  policy?: JobPolicy;
  /** The first log line. Default "received: DEFINITION on SLAVE". */
  message?: string;
}

/** The first version of a job made from `spec`, with id `id`, received at `now`. */
export function newQueuedJob(spec: NewJob, id: number, now: number): Job {
  return {
    id,
    definition: spec.definition,
    slave: spec.slave,
    method: spec.method,
    params: spec.params,
    state: "queued",
    priority: spec.priority,
    attempt: 1,
    timestamps: { received: now, dispatched: null, started: null, ended: null, notBefore: null },
    progress: null,
    result: null,
    policy: spec.policy ?? NO_POLICY,
    log: [
      {
        serial: 1,
        time: now,
        level: "info",
        message: spec.message ?? `received: ${spec.definition} on ${spec.slave}`,
      },
    ],
    serial: 1,
  };
}
