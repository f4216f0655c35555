// abs show job ID: everything about one job, then its log.

import { formatDuration } from "../../config/duration.js";
import type { JobDetail } from "../../protocol/admin-api.js";
import type { CliContext } from "../context.js";
import { formatWhen } from "../format.js";
import { formatLogEntry, formatProgress } from "../job-text.js";
import { renderFields } from "../table.js";

function formatPolicy(policy: JobDetail["policy"], now: number): [string, string][] {
  const retries =
    policy.retries === 0
      ? "none"
      : `${policy.retries} (backoff ${formatDuration(policy.retryBackoffMs)}, doubling up to ${formatDuration(policy.retryBackoffMaxMs)})`;
  return [
    [
      "max run time",
      policy.maxRunTimeMs === null ? "no limit" : formatDuration(policy.maxRunTimeMs),
    ],
    ["start by", policy.startBy === null ? "no deadline" : formatWhen(policy.startBy, now)],
    ["retries", retries],
  ];
}

export function formatJobDetail(job: JobDetail, now: number): string {
  const fields: [string, string][] = [
    ["job", String(job.id) + (job.archived ? " (archived)" : "")],
    ["definition", job.definition],
    ["slave", job.slave],
    ["method", job.method],
    ["params", JSON.stringify(job.params)],
    ["state", job.state],
    ["attempt", `${job.attempt} of ${job.policy.retries + 1}`],
    ["priority", String(job.priority)],
    ...formatPolicy(job.policy, now),
    ["received", formatWhen(job.received, now)],
    ["dispatched", formatWhen(job.dispatched, now)],
    ["started", formatWhen(job.started, now)],
    ["ended", formatWhen(job.ended, now)],
  ];
  // Shown only when they say something: most jobs have none of these.
  if (job.notBefore !== null) fields.push(["not before", formatWhen(job.notBefore, now)]);
  if (job.waitReason !== null) fields.push(["waiting", job.waitReason]);
  if (job.progress !== null) fields.push(["progress", formatProgress(job.progress)]);
  if (job.result !== null) fields.push(["result", job.result]);
  if (job.resultData !== null && Object.keys(job.resultData).length > 0) {
    fields.push(["result data", JSON.stringify(job.resultData)]);
  }
  const log = job.log.map((entry) => formatLogEntry(entry) + "\n").join("");
  return `${renderFields(fields)}\nlog:\n${log === "" ? "(empty)\n" : log}`;
}

export async function showJob(ctx: CliContext, id: number, o: { json?: boolean }): Promise<void> {
  const result = await ctx.call("show-job", { id });
  if (o.json === true) {
    ctx.out.write(JSON.stringify(result, null, 2) + "\n");
    return;
  }
  ctx.out.write(formatJobDetail(result.job, ctx.now()));
}
