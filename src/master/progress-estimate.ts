// What a job that is not finished is expected to come to, for the progress
// bar of `abs watch`: the counts of the newest earlier run of the same job
// definition on the same slave that succeeded, if it used the same method
// (a definition whose method changed has no comparable run). A
// failed or canceled run stopped part-way, and another slave backs up other
// files, so neither says anything.
//
// The estimate is rough on purpose: an incremental tar run stores less than
// the full one before it, and a definition may have been edited since. The
// bar copes with being wrong (src/cli/progress-bar.ts): it stops at 99%
// and drops the percentage once the estimate is passed.
//
// Cost: one pass over the unarchived jobs (the store keeps no index by
// definition), the cost of `abs show jobs --definition NAME`, and only for
// a job not finished.

import { isFinished, type Job } from "../jobsdir/job.js";
import type { JobQuery } from "../jobsdir/job-query.js";
import type { JsonValue } from "../json-shape.js";
import type { ExpectedTotals, JobView } from "../protocol/admin-api.js";

/** The part of the job store this needs (JobStore has it). */
export interface JobSource {
  query(q: JobQuery): Job[];
}

/** What `job` is expected to come to, or null when no earlier run says. */
export function expectedTotals(
  jobs: JobSource,
  job: Pick<JobView, "id" | "definition" | "slave" | "method" | "state">,
): ExpectedTotals | null {
  if (isFinished(job.state)) return null;
  // Ids grow with submission, so the highest id below this job's is the newest earlier run.
  const [previous] = jobs.query({
    definition: job.definition,
    slave: job.slave,
    states: ["succeeded"],
    toId: job.id - 1,
    limit: 1,
    newest: true,
  });
  if (previous === undefined || previous.method !== job.method) return null;
  return totalsOf(previous);
}

/**
 * The counts a succeeded job came to: its last progress (a method reports
 * its final counts before its result), else the counts of its result data
 * (tar: stored and bytes; verify and restore: entries and bytes), else null.
 */
export function totalsOf(job: Job): ExpectedTotals | null {
  if (job.progress !== null) return { files: job.progress.files, bytes: job.progress.bytes };
  const data = job.result?.data ?? {};
  const files = data.files ?? data.stored ?? data.entries;
  const bytes = data.bytes;
  return isCount(files) && isCount(bytes) ? { files, bytes } : null;
}

function isCount(v: JsonValue | undefined): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}
