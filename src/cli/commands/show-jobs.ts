// abs show jobs: what runs where.

import type { JobState } from "../../jobsdir/job.js";
import type { JsonObject } from "../../json-shape.js";
import type { JobView } from "../../protocol/admin-api.js";
import type { CliContext } from "../context.js";
import { formatRelative } from "../format.js";
import { jobInfo } from "../job-text.js";
import { renderTable } from "../table.js";

export interface ShowJobsOptions {
  all?: boolean;
  state?: JobState[];
  slave?: string;
  definition?: string;
  limit?: number;
  json?: boolean;
}

/** The show-jobs arguments for these options; absent filters are left out, not sent as null. */
export function showJobsArgs(o: ShowJobsOptions): JsonObject {
  const args: JsonObject = {};
  if (o.all === true) args.all = true;
  if (o.state !== undefined) args.states = o.state;
  if (o.slave !== undefined) args.slave = o.slave;
  if (o.definition !== undefined) args.definition = o.definition;
  if (o.limit !== undefined) args.limit = o.limit;
  return args;
}

const COLUMNS = [
  { title: "ID", align: "right" },
  { title: "DEFINITION" },
  { title: "SLAVE" },
  { title: "STATE" },
  { title: "ATTEMPT", align: "right" },
  { title: "RECEIVED" },
  { title: "STARTED" },
  { title: "INFO" },
] as const;

export function formatJobsTable(jobs: readonly JobView[], now: number): string {
  return renderTable(
    COLUMNS,
    jobs.map((j) => [
      String(j.id),
      j.definition,
      j.slave,
      j.state,
      String(j.attempt),
      formatRelative(j.received, now),
      j.started === null ? "-" : formatRelative(j.started, now),
      jobInfo(j, now),
    ]),
  );
}

/** The line shown instead of an empty table: says whether filters or the default window hid jobs. */
export function noJobsLine(o: ShowJobsOptions): string {
  const filtered = o.state !== undefined || o.slave !== undefined || o.definition !== undefined;
  if (filtered) return "no jobs match";
  if (o.all === true) return "no jobs";
  // The master decides what "recent" is (24 hours by default): not named here.
  return "no unfinished or recently ended jobs (--all lists every job)";
}

export async function showJobs(ctx: CliContext, o: ShowJobsOptions): Promise<void> {
  if (o.json === true) {
    // Up to 100,000 jobs: the master's JSON as it came, one write, no
    // parse-and-stringify in between.
    const text =
      ctx.callText !== undefined
        ? await ctx.callText("show-jobs", showJobsArgs(o))
        : JSON.stringify(await ctx.call("show-jobs", showJobsArgs(o)));
    ctx.out.write(text + "\n");
    return;
  }
  const result = await ctx.call("show-jobs", showJobsArgs(o));
  if (result.jobs.length === 0) {
    ctx.out.write(noJobsLine(o) + "\n");
    return;
  }
  ctx.out.write(formatJobsTable(result.jobs, ctx.now()));
}
