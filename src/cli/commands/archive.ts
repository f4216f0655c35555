// abs archive ID... and abs autoarchive AGE: moving finished jobs out of the
// jobs directory.

import { formatDuration } from "../../config/duration.js";
import type { CliContext } from "../context.js";
import { plural } from "../format.js";

export async function archive(ctx: CliContext, ids: readonly number[]): Promise<void> {
  const result = await ctx.call("archive", { ids: [...ids] });
  ctx.out.write(`archived ${plural(result.archived, "job")}\n`);
}

/**
 * The master archives in batches to bound the time of one call and says how
 * many remain; `abs autoarchive` calls again until none do, so one command
 * does the whole job. It stops early if a call archives nothing (the rest
 * cannot be archived now), rather than loop.
 */
export async function autoarchive(ctx: CliContext, ageMs: number): Promise<void> {
  let archived = 0;
  let remaining = 0;
  for (;;) {
    const result = await ctx.call("autoarchive", { ageMs });
    archived += result.archived;
    remaining = result.remaining;
    if (remaining === 0 || result.archived === 0) break;
  }
  const left = remaining === 0 ? "" : `; ${remaining} more could not be archived now`;
  ctx.out.write(
    `archived ${plural(archived, "job")} that ended more than ${formatDuration(ageMs)} ago${left}\n`,
  );
}
