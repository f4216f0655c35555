// When a cron schedule fires, in its time zone, as a pure function of time.
//
// config/cron.ts parses the expression (ranges, steps, lists, month and day
// names) once, when the job definition is read; this module takes the
// values it selects and turns them into instants, with one rule
// for daylight-saving changes: every matching wall-clock time fires exactly
// once.
//   - A wall time that does not exist (spring forward: 02:30 on the night
//     clocks jump from 02:00 to 03:00) fires at the instant the gap ends
//     (03:00). Several such times collapse into that one instant.
//   - A wall time that exists twice (fall back: 02:30 happens twice) fires at
//     its first occurrence only.
// So a nightly 02:30 backup runs once every night, never zero or two times.
//
// Day of month and day of week combine as in Vixie cron: when both are
// restricted (neither selects every day), a day matching either one fires.
// (The config refuses such expressions for now; the rule is here for when it
// takes them.)

import type { CronSchedule } from "../config/cron.js";
import { BadArgumentError } from "../errors.js";

/**
 * The values a schedule selects (config/cron.ts's CronSchedule), and the
 * last day of the month, which config/cron.ts does not accept yet.
 */
export type CronFields = Pick<
  CronSchedule,
  "expression" | "seconds" | "minutes" | "hours" | "daysOfMonth" | "months" | "daysOfWeek"
> & { lastDayOfMonth?: boolean };

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** How far ahead to look for the next fire time before giving up (covers Feb 29). */
const HORIZON_DAYS = 5 * 366;

interface Fields {
  seconds: number[];
  minutes: number[];
  hours: number[];
  daysOfMonth: Set<number>;
  lastDayOfMonth: boolean;
  months: Set<number>;
  daysOfWeek: Set<number>;
  domRestricted: boolean;
  dowRestricted: boolean;
}

export class CronTimes {
  private readonly fields: Fields;
  private readonly zone: TimeZone;

  /** Throws BadArgumentError for a time zone Intl does not know. */
  constructor(
    readonly schedule: CronFields,
    readonly timezone: string,
  ) {
    this.fields = readFields(schedule);
    this.zone = TimeZone.get(timezone);
  }

  /**
   * Fire times strictly after `after` (ms since the epoch), ascending: at
   * most `count`, and none after `until` when given.
   */
  next(after: number, opts: { count?: number; until?: number } = {}): number[] {
    const count = opts.count ?? 1;
    const until = opts.until ?? Number.POSITIVE_INFINITY;
    const out: number[] = [];
    if (count <= 0) return out;
    const f = this.fields;
    // Walk local calendar days from the day before `after` (a gap's end can
    // fall on the next day's instant range), as naive "wall ms".
    const startWall = this.zone.wallOf(after);
    let dayWall = Math.floor(startWall / DAY) * DAY - DAY;
    let last = after;
    for (let i = 0; i < HORIZON_DAYS + 2; i++, dayWall += DAY) {
      // Offsets are at most +14h, so no instant of this day is before dayWall - 14h.
      if (dayWall - 14 * HOUR > until) break;
      if (!this.dayMatches(dayWall)) continue;
      const resolve = this.zone.resolverForDay(dayWall);
      for (const h of f.hours) {
        for (const m of f.minutes) {
          for (const s of f.seconds) {
            const instant = resolve(dayWall + h * HOUR + m * MINUTE + s * 1000);
            if (instant <= last) continue;
            if (instant > until) return out;
            out.push(instant);
            last = instant;
            if (out.length >= count) return out;
          }
        }
      }
    }
    return out;
  }

  private dayMatches(dayWall: number): boolean {
    const date = new Date(dayWall);
    const f = this.fields;
    if (!f.months.has(date.getUTCMonth() + 1)) return false;
    const dom = date.getUTCDate();
    const isLast = new Date(dayWall + DAY).getUTCDate() === 1;
    const domOk = f.daysOfMonth.has(dom) || (f.lastDayOfMonth && isLast);
    const dowOk = f.daysOfWeek.has(date.getUTCDay());
    if (f.domRestricted && f.dowRestricted) return domOk || dowOk;
    return domOk && dowOk;
  }
}

function readFields(schedule: CronFields): Fields {
  // Restricted as Vixie cron decides it: the field is written other than `*`
  // (a nickname restricts neither). This reads the field's text, not its
  // values, so `1-31` counts as restricted.
  const parts = schedule.expression.startsWith("@") ? [] : schedule.expression.split(" ");
  const [domText, dowText] = parts.length === 6 ? [parts[3], parts[5]] : [parts[2], parts[4]];
  return {
    seconds: schedule.seconds,
    minutes: schedule.minutes,
    hours: schedule.hours,
    daysOfMonth: new Set(schedule.daysOfMonth),
    lastDayOfMonth: schedule.lastDayOfMonth === true,
    months: new Set(schedule.months),
    daysOfWeek: new Set(schedule.daysOfWeek),
    domRestricted: domText !== undefined && domText !== "*",
    dowRestricted: dowText !== undefined && dowText !== "*",
  };
}

/**
 * A time zone's offsets, from Intl. "Wall ms" is a local date and time
 * written as if it were UTC: wall = instant + offset(instant).
 */
class TimeZone {
  private static readonly cache = new Map<string, TimeZone>();
  private readonly format: Intl.DateTimeFormat;

  static get(name: string): TimeZone {
    let zone = TimeZone.cache.get(name);
    if (zone === undefined) {
      zone = new TimeZone(name);
      TimeZone.cache.set(name, zone);
    }
    return zone;
  }

  private constructor(name: string) {
    try {
      this.format = new Intl.DateTimeFormat("en-US", {
        timeZone: name,
        hourCycle: "h23",
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
        minute: "numeric",
        second: "numeric",
      });
    } catch {
      throw new BadArgumentError(`unknown time zone "${name}"`, "timezone");
    }
  }

  /** Offset of local time from UTC at `instant`, in ms. */
  offsetAt(instant: number): number {
    const whole = Math.floor(instant / 1000) * 1000;
    const p: Record<string, number> = {};
    for (const part of this.format.formatToParts(whole)) {
      if (part.type !== "literal") p[part.type] = Number(part.value);
    }
    return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - whole;
  }

  wallOf(instant: number): number {
    return instant + this.offsetAt(instant);
  }

  /**
   * A function from wall ms to the instant it fires at, for wall times of
   * the day starting at `dayWall`. On a day without an offset change that is
   * a subtraction; on a change day each wall time is resolved on its own.
   */
  resolverForDay(dayWall: number): (wall: number) => number {
    const before = this.offsetAt(dayWall - DAY);
    const after = this.offsetAt(dayWall + 2 * DAY);
    const atStart = this.offsetAt(dayWall - before);
    const atEnd = this.offsetAt(dayWall + DAY - after);
    if (before === after && atStart === before && atEnd === before) return (wall) => wall - before;
    return (wall) => this.resolve(wall);
  }

  /** The first instant whose wall time is `wall`, or, in a gap, the instant the gap ends. */
  resolve(wall: number): number {
    const offsets = [this.offsetAt(wall - DAY), this.offsetAt(wall + DAY)];
    const exact = offsets.map((o) => wall - o).filter((c) => this.wallOf(c) === wall);
    if (exact.length > 0) return Math.min(...exact);
    // In a gap: local time jumps over `wall`. Find the jump by bisection
    // between an instant before it and one after it.
    let lo = wall - Math.max(...offsets);
    let hi = wall - Math.min(...offsets);
    while (hi - lo > 1000) {
      const mid = Math.floor((lo + hi) / 2000) * 1000;
      if (this.wallOf(mid) < wall) lo = mid;
      else hi = mid;
    }
    return hi;
  }
}
