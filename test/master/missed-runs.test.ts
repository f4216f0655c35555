import t from "tap";
import { schedule } from "../helpers/cron.js";
import { CronTimes } from "../../src/master/cron-times.js";
import { catchUp } from "../../src/master/missed-runs.js";

const nightly = new CronTimes(schedule("0 2 * * *"), "UTC");
const at = (text: string): number => Date.parse(text);

t.test("three nights down: run-once runs one for the latest, skip runs none", (t) => {
  const last = at("2026-05-01T02:00:00Z");
  const now = at("2026-05-04T09:00:00Z");
  t.same(catchUp(nightly, last, now, "run-once"), {
    missed: 3,
    runFor: at("2026-05-04T02:00:00Z"),
  });
  t.same(catchUp(nightly, last, now, "skip"), { missed: 3, runFor: null });
  t.end();
});

t.test("nothing missed: a short restart, a new definition, a clock behind", (t) => {
  t.same(catchUp(nightly, at("2026-05-01T02:00:00Z"), at("2026-05-01T09:00:00Z"), "run-once"), {
    missed: 0,
    runFor: null,
  });
  t.same(catchUp(nightly, null, at("2026-05-01T09:00:00Z"), "run-once"), {
    missed: 0,
    runFor: null,
  });
  t.same(catchUp(nightly, at("2026-05-02T02:00:00Z"), at("2026-05-01T09:00:00Z"), "run-once"), {
    missed: 0,
    runFor: null,
  });
  t.end();
});

t.test("downtime across a DST change counts each night once", (t) => {
  const paris = new CronTimes(schedule("30 2 * * *"), "Europe/Paris");
  const r = catchUp(paris, at("2026-03-27T01:30:00Z"), at("2026-03-30T12:00:00Z"), "run-once");
  t.same(r, { missed: 3, runFor: at("2026-03-30T00:30:00Z") });
  t.end();
});
