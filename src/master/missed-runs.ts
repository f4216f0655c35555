// What to do at startup about runs a definition missed while the master was
// down. Pure: the last trigger (persisted in schedule-state.json), the
// schedule and the time now go in; a decision comes out.

import type { CronTimes } from "./cron-times.js";

/** skip: missed runs are dropped. run-once: one run now stands for all of them. */
export type MissedRunPolicy = "skip" | "run-once";

export interface CatchUp {
  /** How many fire times passed while the master was down (counted up to `limit`). */
  missed: number;
  /** The latest missed fire time, when the policy says to run once for it now; else null. */
  runFor: number | null;
}

/**
 * `lastTrigger` is the last fire time the master acted on, null for a
 * definition never triggered (new: nothing was missed).
 */
export function catchUp(
  times: CronTimes,
  lastTrigger: number | null,
  now: number,
  policy: MissedRunPolicy,
  limit = 100_000,
): CatchUp {
  if (lastTrigger === null || lastTrigger >= now) return { missed: 0, runFor: null };
  const missedTimes = times.next(lastTrigger, { until: now, count: limit });
  const latest = missedTimes.length === 0 ? null : missedTimes[missedTimes.length - 1];
  return { missed: missedTimes.length, runFor: policy === "run-once" ? latest : null };
}
