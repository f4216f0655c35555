// abs show schedule: each job definition's schedule and its next fire times.

import { MAX_SCHEDULE_RUNS, type ScheduleView } from "../../protocol/admin-api.js";
import type { CliContext } from "../context.js";
import { formatLocalMinute, formatLocalSecond, formatRelative, plural } from "../format.js";
import { renderTable } from "../table.js";

/** The window when --days is not given, as on the master. */
export const DEFAULT_DAYS = 1;

/** Fire times shown per definition; --json lists up to MAX_SCHEDULE_RUNS (an hourly job has 168 in 7 days). */
export const SHOWN_RUNS = 3;

const COLUMNS = [
  { title: "DEFINITION" },
  { title: "SLAVES" },
  { title: "SCHEDULE" },
  { title: "TIMEZONE" },
  { title: "NEXT RUNS" },
] as const;

/** The NEXT RUNS cell: local times with relative ones, or why there are none. */
export function nextRuns(d: ScheduleView, days: number, now: number): string {
  if (d.schedule === null) return "runs only by abs run";
  if (!d.enabled) return "disabled";
  if (d.next.length === 0) return `none within ${plural(days, "day")}`;
  // A 6-field cron fires on seconds: to the minute, its runs would look alike.
  const withSeconds = d.schedule.trim().split(/\s+/).length === 6;
  const when = withSeconds ? formatLocalSecond : formatLocalMinute;
  const shown = d.next.slice(0, SHOWN_RUNS).map((t) => `${when(t)} (${formatRelative(t, now)})`);
  const more = d.next.length - shown.length;
  // The master lists at most MAX_SCHEDULE_RUNS: at the cap there may be more.
  if (more > 0)
    shown.push(d.next.length >= MAX_SCHEDULE_RUNS ? `+${more} or more` : `+${more} more`);
  return shown.join(", ");
}

export function formatScheduleTable(
  definitions: readonly ScheduleView[],
  days: number,
  now: number,
): string {
  return renderTable(
    COLUMNS,
    definitions.map((d) => [
      d.definition,
      d.slaves.join(","),
      d.schedule ?? "-",
      d.timezone,
      nextRuns(d, days, now),
    ]),
  );
}

export async function showSchedule(
  ctx: CliContext,
  o: { days?: number; json?: boolean },
): Promise<void> {
  // Sent even when not given, so the "none within N days" line names the window used.
  const days = o.days ?? DEFAULT_DAYS;
  const result = await ctx.call("show-schedule", { days });
  if (o.json === true) {
    ctx.out.write(JSON.stringify(result, null, 2) + "\n");
    return;
  }
  if (result.definitions.length === 0) {
    ctx.out.write("no job definitions\n");
    return;
  }
  ctx.out.write(formatScheduleTable(result.definitions, days, ctx.now()));
}
