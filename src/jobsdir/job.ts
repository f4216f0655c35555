// The job record: one run of a job definition, as stored in
// `<jobs_dir>/job-<id>.json`. Times are milliseconds since the epoch (UTC),
// null until the event happens.

import type { JsonObject } from "../json-shape.js";

/**
 * A job's states. The transitions between them live in job-state.ts and
 * nowhere else.
 *
 * - queued: waiting to be dispatched (for its slave to connect, or below limits).
 * - dispatched: sent to the slave, not yet reported started.
 * - running: the slave reported it started.
 * - canceling: a cancel was requested; waiting for the slave to confirm.
 * - orphaned: was dispatched or running when the master stopped or the slave
 *   vanished; waits a grace period for the slave to report it.
 * - succeeded, failed, canceled: finished; nothing changes them again.
 */
export type JobState =
  | "queued"
  | "dispatched"
  | "running"
  | "canceling"
  | "orphaned"
  | "succeeded"
  | "failed"
  | "canceled";

export const JOB_STATES: readonly JobState[] = [
  "queued",
  "dispatched",
  "running",
  "canceling",
  "orphaned",
  "succeeded",
  "failed",
  "canceled",
];

export type FinishedState = "succeeded" | "failed" | "canceled";

export function isFinished(state: JobState): state is FinishedState {
  return state === "succeeded" || state === "failed" || state === "canceled";
}

export interface JobTimestamps {
  /** When the master accepted the job (submission or schedule trigger). */
  received: number;
  /** When it was last sent to a slave. */
  dispatched: number | null;
  /** When the slave last reported it started. */
  started: number | null;
  /** When it finished (succeeded, failed or canceled). */
  ended: number | null;
}

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

export type LogLevel = "info" | "warning" | "error";

export interface JobLogEntry {
  /** Increases by one per entry within a job, from 1. */
  serial: number;
  time: number;
  level: LogLevel;
  message: string;
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
  /** Why a queued job is not dispatched yet, for `abs show jobs`; null otherwise. */
  waitReason: string | null;
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
}
