// Cron expressions of job definitions, checked field by field so a mistake
// gets a precise message (`hour 25 is out of range 0-23`) rather than
// node-cron's "25 is a invalid expression for hour". Pure code.
//
// The one parse of an expression: the scheduler's CronTimes
// (master/cron-times.ts) takes the values it selects. Accepted, a subset of
// what node-cron accepts (test/config/cron.test.ts checks node-cron's
// validate() on everything accepted here, so a definition means what it
// means to the cron the field trusts):
//
//   [second] minute hour day-of-month month day-of-week
//
//   second, minute  0-59          day of month  1-31
//   hour            0-23          month         1-12 or JAN-DEC
//   day of week     0-7 or SUN-SAT (0 and 7 are both Sunday)
//
// Each field is a comma list of `*`, `N`, `N-M`, `*/S` or `N-M/S`; names are
// three letters, in any case. The nicknames @yearly, @annually, @monthly,
// @weekly, @daily, @midnight and @hourly are accepted.
//
// Refused, although some crons take them, because they hide mistakes:
// - ranges that wrap (`22-2`): Vixie cron refuses them, node-cron wraps;
// - a step that selects a single value (`*/60` in minutes is just `0`);
// - `N/S` (a step without a range), `?`, `L`, `W`, `#`, full names;
// - a schedule that never runs (`0 0 30 2 *`: there is no February 30);
// - day of month and day of week both restricted (`0 2 1 * MON`): classic
//   cron runs when either matches, node-cron only when both do, so the
//   expression means different things to the admin and to the scheduler.

export interface CronSchedule {
  /**
   * The expression as node-cron should get it: fields separated by single
   * spaces (node-cron does not split at tabs), or the nickname in lower case.
   */
  expression: string;
  /** True for the 6-field form (seconds first). */
  hasSeconds: boolean;
  /** The values each field selects, ascending. Day of week 7 is folded into 0. */
  seconds: number[];
  minutes: number[];
  hours: number[];
  daysOfMonth: number[];
  months: number[];
  daysOfWeek: number[];
}

interface FieldSpec {
  label: string;
  min: number;
  max: number;
  /** The highest value `*` stands for (day of week: 6, although 7 is accepted). */
  starMax: number;
  /** Three-letter names; names[i] has the value min + i (day of week: SUN is 0). */
  names?: readonly string[];
  /** How the names are described in messages. */
  nameKind?: string;
}

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const SECOND: FieldSpec = { label: "second", min: 0, max: 59, starMax: 59 };
const MINUTE: FieldSpec = { label: "minute", min: 0, max: 59, starMax: 59 };
const HOUR: FieldSpec = { label: "hour", min: 0, max: 23, starMax: 23 };
const DAY_OF_MONTH: FieldSpec = { label: "day of month", min: 1, max: 31, starMax: 31 };
const MONTH: FieldSpec = {
  label: "month",
  min: 1,
  max: 12,
  starMax: 12,
  names: MONTHS,
  nameKind: "a month name (JAN-DEC)",
};
const DAY_OF_WEEK: FieldSpec = {
  label: "day of week",
  min: 0,
  max: 7,
  starMax: 6,
  names: DAYS,
  nameKind: "a day name (SUN-SAT)",
};

const NICKNAMES: Readonly<Record<string, string>> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

/** Days in each month, February counted as 29 (a leap year has it). */
const MONTH_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

class CronMistake extends Error {}

function show(text: string): string {
  return JSON.stringify(text.length > 20 ? `${text.slice(0, 20)}...` : text);
}

/** A single value: digits or (where the field has them) a three-letter name. */
function value(spec: FieldSpec, token: string): number {
  if (/^\d+$/.test(token)) {
    const n = token.length > 6 ? Infinity : Number(token);
    if (n < spec.min || n > spec.max) {
      const shown = token.length > 20 ? `${token.slice(0, 20)}...` : token;
      throw new CronMistake(`${spec.label} ${shown} is out of range ${spec.min}-${spec.max}`);
    }
    return n;
  }
  if (spec.names !== undefined && /^[A-Za-z]{3}$/.test(token)) {
    const i = spec.names.indexOf(token.toUpperCase());
    if (i >= 0) return spec.min + i;
  }
  const kind = spec.nameKind === undefined ? "a number" : `a number or ${spec.nameKind}`;
  throw new CronMistake(`${spec.label} ${show(token)} is not ${kind}`);
}

/** How a bound reads in a suggestion, in the style the user wrote it. */
function bound(spec: FieldSpec, v: number, asName: boolean): string {
  if (asName && spec.names !== undefined) return spec.names[v - spec.min] ?? String(v);
  return String(v);
}

function parseItem(spec: FieldSpec, item: string, into: Set<number>): void {
  if (item === "") throw new CronMistake(`${spec.label} list has an empty item`);
  const slash = item.split("/");
  if (slash.length > 2) throw new CronMistake(`${spec.label} ${show(item)} has more than one "/"`);
  const [base = "", stepText] = slash;
  let step = 1;
  if (stepText !== undefined) {
    if (!/^\d+$/.test(stepText)) {
      throw new CronMistake(`${spec.label} step ${show(stepText)} is not a number`);
    }
    step = stepText.length > 6 ? Infinity : Number(stepText);
    if (step === 0)
      throw new CronMistake(`${spec.label} step 0 in ${show(item)} must be at least 1`);
  }
  let lo: number;
  let hi: number;
  if (base === "*") {
    lo = spec.min;
    hi = spec.starMax;
  } else {
    const dash = base.split("-");
    if (dash.length > 2) throw new CronMistake(`${spec.label} ${show(item)} has more than one "-"`);
    const [a = "", b] = dash;
    if (a === "" || b === "") {
      throw new CronMistake(
        `${spec.label} ${show(item)}: a range needs a value on both sides of "-"`,
      );
    }
    lo = value(spec, a);
    if (b === undefined) {
      if (stepText !== undefined) {
        throw new CronMistake(
          `${spec.label} ${show(item)}: a step needs a range or * before it (e.g. ${a}-${spec.starMax}/${stepText})`,
        );
      }
      into.add(lo);
      return;
    }
    hi = value(spec, b);
    if (lo > hi) {
      const asName = /^[A-Za-z]/.test(a);
      const top = bound(spec, spec.starMax, asName);
      const bottom = bound(spec, spec.min, asName);
      const first = a.toUpperCase() === top ? a : `${a}-${top}`;
      const second = b.toUpperCase() === bottom ? b : `${bottom}-${b}`;
      throw new CronMistake(
        `${spec.label} range ${a}-${b} is backwards: cron ranges do not wrap; split it, e.g. ${first},${second}`,
      );
    }
  }
  if (stepText !== undefined && step > hi - lo) {
    throw new CronMistake(
      `${spec.label} step ${stepText} in ${show(item)} selects only ${lo}; write ${lo}`,
    );
  }
  for (let v = lo; v <= hi; v += step) into.add(v);
}

function parseField(spec: FieldSpec, text: string): number[] {
  const set = new Set<number>();
  for (const item of text.split(",")) parseItem(spec, item, set);
  if (spec === DAY_OF_WEEK && set.delete(7)) set.add(0);
  return [...set].sort((x, y) => x - y);
}

function describeList(spec: FieldSpec, text: string): string {
  return `${spec.label} ${text}`;
}

/**
 * Checks a cron expression. Returns the schedule, or why it is wrong (the
 * part after `schedule "...": ` in a message).
 */
export function parseCron(text: string): CronSchedule | { why: string } {
  const trimmed = text.trim();
  let expression = trimmed.split(/[ \t]+/).join(" ");
  let body = expression;
  if (trimmed.startsWith("@")) {
    const nick = trimmed.toLowerCase();
    if (nick === "@reboot") {
      return { why: "@reboot is not supported: ABS schedules by the clock (use abs run)" };
    }
    const expanded = NICKNAMES[nick];
    if (expanded === undefined) {
      return {
        why: `unknown nickname; expected one of ${Object.keys(NICKNAMES).join(", ")}`,
      };
    }
    expression = nick;
    body = expanded;
  }
  const fields = body === "" ? [] : body.split(" ");
  if (fields.length !== 5 && fields.length !== 6) {
    return {
      why:
        "expected 5 fields (minute hour day-of-month month day-of-week) " +
        `or 6 (second first), got ${fields.length}`,
    };
  }
  const hasSeconds = fields.length === 6;
  const texts = hasSeconds ? fields : ["0", ...fields];
  const [secT = "", minT = "", hourT = "", domT = "", monT = "", dowT = ""] = texts;
  try {
    const schedule: CronSchedule = {
      expression,
      hasSeconds,
      seconds: parseField(SECOND, secT),
      minutes: parseField(MINUTE, minT),
      hours: parseField(HOUR, hourT),
      daysOfMonth: parseField(DAY_OF_MONTH, domT),
      months: parseField(MONTH, monT),
      daysOfWeek: parseField(DAY_OF_WEEK, dowT),
    };
    const domRestricted = schedule.daysOfMonth.length < 31;
    const dowRestricted = schedule.daysOfWeek.length < 7;
    if (domRestricted && dowRestricted) {
      return {
        why:
          `${describeList(DAY_OF_MONTH, domT)} and ${describeList(DAY_OF_WEEK, dowT)} are both restricted: ` +
          "classic cron runs when either matches, node-cron only when both do; restrict one of them",
      };
    }
    if (domRestricted) {
      const firstDay = schedule.daysOfMonth[0] ?? 1;
      const runs = schedule.months.some((m) => firstDay <= (MONTH_DAYS[m - 1] ?? 31));
      if (!runs) {
        return {
          why: `never runs: ${describeList(DAY_OF_MONTH, domT)} does not occur in ${describeList(MONTH, monT)}`,
        };
      }
    }
    return schedule;
  } catch (err) {
    if (err instanceof CronMistake) return { why: err.message };
    throw err;
  }
}
