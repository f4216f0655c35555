// One-line descriptions of a job, shared by show jobs, show job and watch.
// Pure code.

import { assertNever } from "../errors.js";
import type { JobLogEntry } from "../jobsdir/job.js";
import type { JobView } from "../protocol/admin-api.js";
import { formatBytes, formatRelative, formatTimestamp, printable } from "./format.js";

/** "1204 files, 1.2 GiB, /home/alice/Mail". */
export function formatProgress(progress: NonNullable<JobView["progress"]>): string {
  const parts = [`${progress.files} files`, formatBytes(progress.bytes)];
  if (progress.path !== null) parts.push(progress.path);
  return parts.join(", ");
}

/**
 * What matters about a job in its state, for the INFO column: why a waiting
 * job waits, how far a running one got, how a finished one ended.
 */
export function jobInfo(job: JobView, now: number): string {
  switch (job.state) {
    case "queued":
    case "orphaned":
      if (job.waitReason !== null) return job.waitReason;
      // A retry waiting out its backoff has no other reason to show.
      if (job.notBefore !== null && job.notBefore > now) {
        return `retry ${formatRelative(job.notBefore, now)}`;
      }
      return "";
    case "dispatched":
    case "running":
    case "canceling":
      return job.progress === null ? "" : formatProgress(job.progress);
    case "succeeded":
    case "failed":
    case "canceled":
      return job.result ?? "";
    default:
      return assertNever(job.state);
  }
}

/** One line of a job's log: "2026-11-23T11:05:00+01:00  warning  message". */
export function formatLogEntry(entry: JobLogEntry): string {
  return `${formatTimestamp(entry.time)}  ${entry.level.padEnd(7)}  ${printable(entry.message)}`;
}
