import cron from "node-cron";
import t from "tap";
import { type CronSchedule, parseCron } from "../../src/config/cron.js";
import { below, prng } from "../protocol/helpers.js";

function accepted(expr: string): CronSchedule {
  const r = parseCron(expr);
  if ("why" in r) throw new Error(`${expr}: refused: ${r.why}`);
  return r;
}

// [expression, why] — one row per kind of mistake, the exact message.
const REFUSED: [string, string][] = [
  ["", "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), got 0"],
  [
    "0 2 * *",
    "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), got 4",
  ],
  [
    "0 0 2 * * * *",
    "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), got 7",
  ],
  ["0 25 * * *", "hour 25 is out of range 0-23"],
  ["60 * * * *", "minute 60 is out of range 0-59"],
  ["60 0 * * * *", "second 60 is out of range 0-59"],
  ["0 0 0 * *", "day of month 0 is out of range 1-31"],
  ["0 0 32 * *", "day of month 32 is out of range 1-31"],
  ["0 0 * 13 *", "month 13 is out of range 1-12"],
  ["0 0 * 0 *", "month 0 is out of range 1-12"],
  ["0 0 * * 8", "day of week 8 is out of range 0-7"],
  ["0 99999999999999999999 * * *", "hour 99999999999999999999 is out of range 0-23"],
  ["*/0 * * * *", 'minute step 0 in "*/0" must be at least 1'],
  ["*/60 * * * *", 'minute step 60 in "*/60" selects only 0; write 0'],
  ["0 10-12/5 * * *", 'hour step 5 in "10-12/5" selects only 10; write 10'],
  ["*/x * * * *", 'minute step "x" is not a number'],
  ["5/10 * * * *", 'minute "5/10": a step needs a range or * before it (e.g. 5-59/10)'],
  ["*/5/2 * * * *", 'minute "*/5/2" has more than one "/"'],
  ["0 5-1 * * *", "hour range 5-1 is backwards: cron ranges do not wrap; split it, e.g. 5-23,0-1"],
  [
    "0 0 * * FRI-MON",
    "day of week range FRI-MON is backwards: cron ranges do not wrap; split it, e.g. FRI-SAT,SUN-MON",
  ],
  [
    "0 0 * * SAT-SUN",
    "day of week range SAT-SUN is backwards: cron ranges do not wrap; split it, e.g. SAT,SUN",
  ],
  [
    "0 0 * DEC-JAN *",
    "month range DEC-JAN is backwards: cron ranges do not wrap; split it, e.g. DEC,JAN",
  ],
  ["0 1-2-3 * * *", 'hour "1-2-3" has more than one "-"'],
  ["1,,2 * * * *", "minute list has an empty item"],
  ["1, * * * *", "minute list has an empty item"],
  ["x * * * *", 'minute "x" is not a number'],
  ["0 MON * * *", 'hour "MON" is not a number'],
  ["0 0 * JANUARY *", 'month "JANUARY" is not a number or a month name (JAN-DEC)'],
  ["0 0 * * MONDAY", 'day of week "MONDAY" is not a number or a day name (SUN-SAT)'],
  ["0 0 * FOO *", 'month "FOO" is not a number or a month name (JAN-DEC)'],
  ["0 0 ? * *", 'day of month "?" is not a number'],
  ["0 0 L * *", 'day of month "L" is not a number'],
  ["0 0 * * 1#2", 'day of week "1#2" is not a number or a day name (SUN-SAT)'],
  ["0 -1 * * *", 'hour "-1": a range needs a value on both sides of "-"'],
  ["0 1- * * *", 'hour "1-": a range needs a value on both sides of "-"'],
  ["0 0 30 2 *", "never runs: day of month 30 does not occur in month 2"],
  [
    "0 0 31 APR,JUN,SEP,NOV *",
    "never runs: day of month 31 does not occur in month APR,JUN,SEP,NOV",
  ],
  [
    "0 2 1 * MON",
    "day of month 1 and day of week MON are both restricted: classic cron runs when either matches, node-cron only when both do; restrict one of them",
  ],
  ["@reboot", "@reboot is not supported: ABS schedules by the clock (use abs run)"],
  [
    "@often",
    "unknown nickname; expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly",
  ],
  ["0 2 * * * \u00e9", 'day of week "\u00e9" is not a number or a day name (SUN-SAT)'],
];

t.test("every kind of cron mistake has its exact message", (t) => {
  for (const [expr, why] of REFUSED) {
    t.same(parseCron(expr), { why }, JSON.stringify(expr));
  }
  t.end();
});

t.test("tricky expressions that are valid", (t) => {
  const daily = accepted("0 2 * * *");
  t.same([daily.minutes, daily.hours, daily.hasSeconds], [[0], [2], false]);
  t.equal(daily.daysOfMonth.length, 31);

  const year = accepted("0 0 1 JAN-DEC *");
  t.same(year.months, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  t.same(accepted("0 0 * jan,Mar,DEC *").months, [1, 3, 12], "names in any case");
  t.same(accepted("0 0 * JAN-DEC/3 *").months, [1, 4, 7, 10], "a step over names");

  t.same(accepted("0 9 * * MON-FRI").daysOfWeek, [1, 2, 3, 4, 5]);
  t.same(accepted("0 9 * * 7").daysOfWeek, [0], "7 is Sunday");
  t.same(accepted("0 9 * * 5-7").daysOfWeek, [0, 5, 6], "a range up to 7 folds Sunday to 0");
  t.same(accepted("0 9 * * 0,7").daysOfWeek, [0], "0 and 7 are the same day");
  t.same(accepted("0 9 * * SUN").daysOfWeek, [0]);

  const sec = accepted("*/15 30 2 * * *");
  t.equal(sec.hasSeconds, true);
  t.same([sec.seconds, sec.minutes, sec.hours], [[0, 15, 30, 45], [30], [2]]);
  t.same(accepted("30 2 * * *").seconds, [0], "the 5-field form fires at second 0");

  t.same(accepted("*/59 * * * *").minutes, [0, 59], "a step that still selects two values");
  t.same(accepted("0-30/10,45 * * * *").minutes, [0, 10, 20, 30, 45]);
  t.same(accepted("05 02 * * *").hours, [2], "leading zeros");
  t.same(accepted("0 0 29 2 *").daysOfMonth, [29], "February 29 exists in leap years");
  t.same(accepted("0 0 31 1-3 *").daysOfMonth, [31], "some month in the list has a 31st");
  t.same(accepted("0 0 1-31 * MON").daysOfWeek, [1], "1-31 is no restriction of day of month");

  t.equal(accepted("  0\t2  * * *  ").expression, "0 2 * * *", "blanks normalized for node-cron");
  t.equal(accepted("@Daily").expression, "@daily");
  t.same(accepted("@weekly").daysOfWeek, [0]);
  t.end();
});

t.test("node-cron accepts every expression accepted here", (t) => {
  const VALID = [
    "0 2 * * *",
    "*/15 30 2 * * *",
    "0 0 1 JAN-DEC *",
    "0 9 * * MON-FRI",
    "0 9 * * 7",
    "0 9 * * 5-7",
    "0 0 * JAN-DEC/3 *",
    "*/59 * * * *",
    "0 0 29 2 *",
    "0 0 31 1-3 *",
    "05 02 * * *",
    "@daily",
    "@hourly",
    "@yearly",
    "0-30/10,45 * * * *",
  ];
  for (const expr of VALID) {
    const s = accepted(expr);
    t.ok(cron.validate(s.expression), `node-cron validates ${s.expression}`);
  }
  t.end();
});

t.test("random valid expressions: accepted here means accepted by node-cron", (t) => {
  const random = prng(20240601);
  const fields: [number, number, string[] | null][] = [
    [0, 59, null],
    [0, 59, null],
    [0, 23, null],
    [1, 28, null],
    [1, 12, ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]],
    [0, 7, ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]],
  ];
  function item(min: number, max: number, names: string[] | null): string {
    const v = (): number => min + below(random, max - min + 1);
    const show = (n: number): string =>
      names !== null && below(random, 2) === 0 && names[n - min] !== undefined
        ? names[n - min]
        : String(n);
    switch (below(random, 5)) {
      case 0:
        return "*";
      case 1:
        return `*/${1 + below(random, max - min)}`;
      case 2:
        return show(v());
      case 3: {
        const a = v();
        const b = a + below(random, max - a + 1);
        return `${show(a)}-${show(b)}`;
      }
      default: {
        const a = v();
        const b = a + below(random, max - a + 1);
        return `${show(a)}-${show(b)}/${1 + below(random, Math.max(1, b - a))}`;
      }
    }
  }
  let checked = 0;
  for (let i = 0; i < 3000; i++) {
    const six = below(random, 2) === 0;
    const parts = fields
      .slice(six ? 0 : 1)
      .map(([min, max, names]) =>
        Array.from({ length: 1 + below(random, 3) }, () => item(min, max, names)).join(","),
      );
    const expr = parts.join(" ");
    const r = parseCron(expr);
    if ("why" in r) continue;
    checked++;
    if (!cron.validate(r.expression)) t.fail(`node-cron refuses ${expr}, accepted here`);
  }
  t.ok(checked > 500, `${checked} accepted expressions cross-checked`);
  t.end();
});

t.test("where node-cron is more lenient, this validator refuses on purpose", (t) => {
  // node-cron wraps backwards ranges, takes ? and L, and ANDs day of month with day of week.
  for (const expr of ["0 22-2 * * *", "0 0 ? * *", "0 0 L * *", "0 2 1 * MON", "*/60 * * * *"]) {
    t.ok(cron.validate(expr), `node-cron takes ${expr}`);
    t.ok("why" in parseCron(expr), `refused here: ${expr}`);
  }
  // And where both refuse.
  for (const expr of ["*/0 * * * *", "0 25 * * *", "0 0 30 2 *", "5/10 * * * *"]) {
    t.notOk(cron.validate(expr), `node-cron refuses ${expr}`);
    t.ok("why" in parseCron(expr), `refused here: ${expr}`);
  }
  t.end();
});
