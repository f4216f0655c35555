// Waiting on a job through the admin socket's `watch` (a long poll on the
// job's serial): tests wait on the master's own change events, not sleeps.

import type { JobDetail, JobView, ShowJobsResult } from "../../src/protocol/admin-api.js";
import type { MasterProcess } from "./master-process.js";

/** Resolves with the job once `pred` holds for it; rejects after `timeoutMs`. */
export async function waitForJob(
  m: MasterProcess,
  id: number,
  pred: (job: JobDetail) => boolean,
  timeoutMs = 30_000,
): Promise<JobDetail> {
  const deadline = Date.now() + timeoutMs;
  let serial = 0;
  let last: JobDetail | undefined;
  while (Date.now() < deadline) {
    const left = Math.max(0, Math.min(10_000, deadline - Date.now()));
    const r = (await m.call("watch", { id, serial, timeoutMs: left })) as unknown as {
      job: JobDetail;
    };
    last = r.job;
    if (pred(r.job)) return r.job;
    serial = r.job.serial;
    // A finished job answers at once: nothing more will change.
    if (["succeeded", "failed", "canceled"].includes(r.job.state)) break;
  }
  throw new Error(
    `job ${id} did not reach the expected state within ${timeoutMs} ms; last seen: ${JSON.stringify(last)}`,
  );
}

export function waitForState(
  m: MasterProcess,
  id: number,
  state: JobView["state"],
  timeoutMs?: number,
): Promise<JobDetail> {
  return waitForJob(m, id, (j) => j.state === state, timeoutMs);
}

export async function showJobs(
  m: MasterProcess,
  args: Record<string, unknown> = {},
): Promise<JobView[]> {
  const r = (await m.call("show-jobs", args as never)) as unknown as ShowJobsResult;
  return r.jobs;
}

/** Runs definition `name` by hand and returns the job ids made. */
export async function runDefinition(
  m: MasterProcess,
  name: string,
  slave?: string,
): Promise<number[]> {
  const args: Record<string, string> =
    slave === undefined ? { definition: name } : { definition: name, slave };
  const r = (await m.call("run", args)) as { jobs: number[] };
  return r.jobs;
}
