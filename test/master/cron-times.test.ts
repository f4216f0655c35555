import t from "tap";
import { schedule } from "../helpers/cron.js";
import { parseCron } from "../../src/config/cron.js";
import { CronTimes } from "../../src/master/cron-times.js";

const iso = (ms: number[]): string[] =>
  ms.map((m) => new Date(m).toISOString().replace(".000", ""));
const at = (text: string): number => Date.parse(text);

t.test("a nightly job in Paris across the spring change runs once, at the end of the gap", (t) => {
  const c = new CronTimes(schedule("30 2 * * *"), "Europe/Paris");
  t.same(iso(c.next(at("2026-03-27T00:00:00Z"), { count: 4 })), [
    "2026-03-27T01:30:00Z", // 02:30 CET
    "2026-03-28T01:30:00Z",
    "2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST
    "2026-03-30T00:30:00Z", // 02:30 CEST
  ]);
  t.end();
});

t.test("a nightly job in Paris across the autumn change runs once, at the first 02:30", (t) => {
  const c = new CronTimes(schedule("30 2 * * *"), "Europe/Paris");
  t.same(iso(c.next(at("2026-10-24T00:00:00Z"), { count: 3 })), [
    "2026-10-24T00:30:00Z",
    "2026-10-25T00:30:00Z", // first 02:30 (CEST); the second, 01:30Z, is not a new run
    "2026-10-26T01:30:00Z",
  ]);
  t.end();
});

t.test("frequent jobs: gap times collapse into one run, the repeated hour runs once", (t) => {
  const c = new CronTimes(schedule("*/30 * * * *"), "Europe/Paris");
  t.same(iso(c.next(at("2026-03-29T00:15:00Z"), { count: 3 })), [
    "2026-03-29T00:30:00Z", // 01:30 CET
    "2026-03-29T01:00:00Z", // 02:00 and 02:30 do not exist, nor does the jump double with 03:00
    "2026-03-29T01:30:00Z", // 03:30 CEST
  ]);
  const hourly = new CronTimes(schedule("0 * * * *"), "Europe/Paris");
  t.same(iso(hourly.next(at("2026-10-24T23:30:00Z"), { count: 3 })), [
    "2026-10-25T00:00:00Z", // 02:00 CEST
    "2026-10-25T02:00:00Z", // 03:00 CET: 02:00 CET is the same wall time again
    "2026-10-25T03:00:00Z",
  ]);
  t.end();
});

t.test("New York spring change", (t) => {
  const c = new CronTimes(schedule("30 2 * * *"), "America/New_York");
  t.same(iso(c.next(at("2026-03-07T12:00:00Z"), { count: 2 })), [
    "2026-03-08T07:00:00Z",
    "2026-03-09T06:30:00Z",
  ]);
  t.end();
});

t.test("UTC, seconds, until, and strictly after", (t) => {
  const c = new CronTimes(schedule("10 0 2 * * *"), "UTC");
  t.same(iso(c.next(at("2026-01-01T02:00:10Z"), { count: 2 })), [
    "2026-01-02T02:00:10Z",
    "2026-01-03T02:00:10Z",
  ]);
  t.same(
    iso(c.next(at("2026-01-01T00:00:00Z"), { count: 10, until: at("2026-01-03T02:00:10Z") })),
    ["2026-01-01T02:00:10Z", "2026-01-02T02:00:10Z", "2026-01-03T02:00:10Z"],
  );
  t.same(c.next(at("2026-01-01T00:00:00Z"), { count: 0 }), []);
  t.end();
});

t.test("day of month and day of week: either when both are restricted", (t) => {
  const c = new CronTimes(
    {
      ...schedule("0 0 * * *"),
      expression: "0 0 13 * FRI",
      daysOfMonth: [13],
      daysOfWeek: [5],
    },
    "UTC",
  );
  t.same(iso(c.next(at("2026-02-01T00:00:00Z"), { count: 4 })), [
    "2026-02-06T00:00:00Z",
    "2026-02-13T00:00:00Z", // the 13th and a Friday: once
    "2026-02-20T00:00:00Z",
    "2026-02-27T00:00:00Z",
  ]);
  const weekdays = new CronTimes(schedule("0 9 * * 1-5"), "UTC");
  t.same(iso(weekdays.next(at("2026-02-06T10:00:00Z"), { count: 2 })), [
    "2026-02-09T09:00:00Z",
    "2026-02-10T09:00:00Z",
  ]);
  const sunday7 = new CronTimes(schedule("0 0 * * 7"), "UTC");
  t.same(iso(sunday7.next(at("2026-02-01T01:00:00Z"))), ["2026-02-08T00:00:00Z"]);
  t.end();
});

t.test("last day of month and Feb 29", (t) => {
  t.same(
    iso(
      new CronTimes(
        {
          ...schedule("0 0 * * *"),
          expression: "0 0 L * *",
          daysOfMonth: [],
          lastDayOfMonth: true,
        },
        "UTC",
      ).next(at("2026-01-31T01:00:00Z"), { count: 2 }),
    ),
    ["2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"],
  );
  t.same(iso(new CronTimes(schedule("0 0 29 2 *"), "UTC").next(at("2026-01-01T00:00:00Z"))), [
    "2028-02-29T00:00:00Z",
  ]);
  t.end();
});

t.test("nicknames", (t) => {
  t.same(iso(new CronTimes(schedule("@daily"), "UTC").next(at("2026-01-01T12:00:00Z"))), [
    "2026-01-02T00:00:00Z",
  ]);
  t.same(iso(new CronTimes(schedule("@weekly"), "UTC").next(at("2026-01-01T12:00:00Z"))), [
    "2026-01-04T00:00:00Z",
  ]);
  t.end();
});

t.test("bad expressions and zones are refused by name", (t) => {
  // An expression is parsed once, by the config (config/cron.ts), and
  // CronTimes takes what it selects: a bad one never reaches CronTimes.
  t.match(parseCron("0 2 * *"), { why: /^expected 5 fields .* got 4$/ });
  t.match(parseCron("0 25 * * *"), { why: "hour 25 is out of range 0-23" });
  t.throws(() => new CronTimes(schedule("0 2 * * *"), "Mars/Olympus"), {
    code: "BAD_ARGUMENT",
    message: 'unknown time zone "Mars/Olympus"',
  });
  t.end();
});
