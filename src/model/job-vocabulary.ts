// A job's states and log entries: the words the jobs store, the admin
// protocol and abs share. This folder imports nothing, so every layer may
// import it (the layering rules are in eslint.config.js).

/**
 * A job's states. The transitions between them live in jobsdir/job-state.ts and
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

export type LogLevel = "info" | "warning" | "error";

export interface JobLogEntry {
  /** Increases by one per entry within a job, from 1. */
  serial: number;
  time: number;
  level: LogLevel;
  message: string;
}
