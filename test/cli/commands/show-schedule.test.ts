// The NEXT RUNS cell of abs show schedule: seconds for a 6-field schedule
// (its runs would look alike to the minute), and "or more" when the master
// hit its cap of fire times. Pure; the table end to end is in abs-show.test.ts.

import t from "tap";
import { nextRuns } from "../../../src/cli/commands/show-schedule.js";
import { MAX_SCHEDULE_RUNS } from "../../../src/protocol/admin-api.js";
import { scheduleView } from "../../helpers/admin-views.js";

t.test("a 6-field schedule shows its runs to the second", (t) => {
  const now = new Date(2026, 10, 23, 16, 35, 1).getTime(); // local time, as abs shows
  const next = [5, 15, 25].map((s) => new Date(2026, 10, 23, 16, 35, s).getTime());
  t.equal(
    nextRuns(scheduleView({ schedule: "*/10 * * * * *", next }), 1, now),
    "2026-11-23 16:35:05 (in 4s), 2026-11-23 16:35:15 (in 14s), 2026-11-23 16:35:25 (in 24s)",
  );
  t.equal(
    nextRuns(scheduleView({ schedule: "35 16 * * *", next: [next[0] ?? 0] }), 1, now),
    "2026-11-23 16:35 (in 4s)",
    "a 5-field one to the minute",
  );
  t.end();
});

t.test("at the master's cap, the count is a lower bound", (t) => {
  const now = Date.now();
  const times = (n: number): number[] =>
    Array.from({ length: n }, (_, i) => now + (i + 1) * 10_000);
  t.match(nextRuns(scheduleView({ next: times(5) }), 1, now), /, \+2 more$/);
  t.match(
    nextRuns(scheduleView({ next: times(MAX_SCHEDULE_RUNS) }), 1, now),
    new RegExp(`, \\+${MAX_SCHEDULE_RUNS - 3} or more$`),
  );
  t.end();
});
