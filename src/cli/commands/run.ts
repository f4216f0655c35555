// abs run NAME and abs cancel ID: making and stopping jobs by hand.

import type { JsonObject } from "../../json-shape.js";
import type { CancelResult } from "../../protocol/admin-api.js";
import type { CliContext } from "../context.js";

/**
 * The slave and state of each job made, for the "job 12 queued: home on
 * green-acres" lines (the fake master of disaster mode sends a job at once,
 * and a quick job may have started, or ended, by the time it is listed). `run` answers job ids only; one show-jobs call filtered by
 * the definition finds them (the new jobs are unfinished or just ended, so
 * in its default window). Printing is all this is for: if that call fails,
 * the lines go with what is known.
 */
async function jobsMade(
  ctx: CliContext,
  definition: string,
  ids: readonly number[],
): Promise<Map<number, { slave: string; state: string }>> {
  if (ids.length === 0) return new Map();
  try {
    const { jobs } = await ctx.call("show-jobs", { definition });
    const wanted = new Set(ids);
    return new Map(jobs.filter((j) => wanted.has(j.id)).map((j) => [j.id, j]));
  } catch {
    return new Map();
  }
}

export async function run(
  ctx: CliContext,
  definition: string,
  o: { slave?: string; json?: boolean },
): Promise<void> {
  const args: JsonObject = { definition };
  if (o.slave !== undefined) args.slave = o.slave;
  const result = await ctx.call("run", args);
  if (o.json === true) {
    ctx.out.write(JSON.stringify(result, null, 2) + "\n");
    return;
  }
  if (result.jobs.length === 0) {
    ctx.out.write(`no jobs made: ${definition} has no slaves\n`);
    return;
  }
  const made = await jobsMade(ctx, definition, result.jobs);
  for (const id of result.jobs) {
    const job = made.get(id);
    const on = job?.slave ?? o.slave;
    // As the master has it now: a quick job may be past queued already.
    const state = job?.state ?? "queued";
    ctx.out.write(`job ${id} ${state}: ${definition}${on === undefined ? "" : ` on ${on}`}\n`);
  }
}

/** What cancel did, in words: at once for a job not yet on a slave, else asked of the slave. */
export function cancelLine(result: CancelResult): string {
  const { job } = result;
  if (job.state === "canceling") {
    return `job ${job.id} canceling: ${job.slave} is asked to stop it (abs watch ${job.id} follows it)`;
  }
  return `job ${job.id} ${job.state}`;
}

export async function cancel(ctx: CliContext, id: number): Promise<void> {
  ctx.out.write(cancelLine(await ctx.call("cancel", { id })) + "\n");
}
