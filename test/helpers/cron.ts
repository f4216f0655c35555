// A cron schedule for tests that take one parsed (the scheduler, CronTimes):
// parsed as the config parses it, and a mistake in a test's expression
// fails the test at once.

import { type CronSchedule, parseCron } from "../../src/config/cron.js";

export function schedule(expression: string): CronSchedule {
  const parsed = parseCron(expression);
  if ("why" in parsed) throw new Error(`cron expression "${expression}": ${parsed.why}`);
  return parsed;
}
