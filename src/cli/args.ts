// The values `abs` takes on its command line, checked before any socket is
// opened. Pure code. Each parser is a commander argParser: it throws
// InvalidArgumentError with the reason, and commander prefixes the option or
// argument and the bad value, e.g.
//
//   error: option '--state <states>' argument 'runing' is invalid. unknown state "runing" ...
//
// so the reason here need not repeat the value, except where a list holds
// several (--state queued,runing).

import { InvalidArgumentError } from "commander";
import { parseDuration } from "../config/duration.js";
import { closest } from "../config/issues.js";
import { JOB_STATES, type JobState } from "../jobsdir/job.js";

/** The longest name the admin methods take (definitions, slaves): see parseRunArgs. */
const MAX_NAME_LENGTH = 255;

/** A whole number written in decimal digits, within [min, max], or undefined. */
function wholeNumber(text: string, min: number, max: number): number | undefined {
  if (!/^[0-9]+$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
}

/** A job id: `abs show job 12`. */
export function parseJobId(text: string): number {
  const id = wholeNumber(text, 1, Number.MAX_SAFE_INTEGER);
  if (id === undefined) throw new InvalidArgumentError("expected a job id (a whole number >= 1)");
  return id;
}

/**
 * Job ids for a variadic argument (`abs archive 12 13 14`). commander calls
 * it once per value with the list so far; the list is extended in place, as
 * a copy per value would be quadratic in the number of ids.
 */
export function collectJobIds(text: string, previous: number[] | undefined): number[] {
  const ids = previous ?? [];
  ids.push(parseJobId(text));
  return ids;
}

/** `--limit N`: at least 1. */
export function parseLimit(text: string): number {
  const n = wholeNumber(text, 1, Number.MAX_SAFE_INTEGER);
  if (n === undefined) throw new InvalidArgumentError("expected a whole number >= 1");
  return n;
}

/** `--days N` of show schedule: 1 to 366, the master's bounds (parseShowScheduleArgs). */
export function parseDays(text: string): number {
  const n = wholeNumber(text, 1, 366);
  if (n === undefined)
    throw new InvalidArgumentError("expected a whole number of days from 1 to 366");
  return n;
}

/** How long `abs` retries a request whose answer was lost, by default (--wait). */
export const DEFAULT_WAIT_MS = 30_000;

/** --wait SECONDS: 0 to 3600, in milliseconds. */
export function parseWait(text: string): number {
  const n = wholeNumber(text, 0, 3600);
  if (n === undefined) {
    throw new InvalidArgumentError("expected a whole number of seconds from 0 to 3600");
  }
  return n * 1000;
}

/** A definition or slave name: non-empty, at most 255 characters, as the master takes them. */
export function parseName(text: string): string {
  if (text === "") throw new InvalidArgumentError("expected a name, got an empty string");
  if (text.length > MAX_NAME_LENGTH) {
    throw new InvalidArgumentError(`a name is at most ${MAX_NAME_LENGTH} characters`);
  }
  return text;
}

/**
 * `--state S[,S...]`, repeatable (`--state queued --state running` adds up).
 * An unknown state is refused by name with the valid ones listed, and the
 * closest one suggested: a typo must not silently match nothing.
 */
export function collectStates(text: string, previous: JobState[] | undefined): JobState[] {
  const states = previous ?? [];
  for (const part of text.split(",")) {
    const state = part.trim();
    if (state === "") {
      throw new InvalidArgumentError(
        `an empty state in the list; the states are ${JOB_STATES.join(", ")}`,
      );
    }
    if (!(JOB_STATES as readonly string[]).includes(state)) {
      const guess = closest(state, JOB_STATES);
      const hint = guess === undefined ? "" : ` (did you mean "${guess}"?)`;
      throw new InvalidArgumentError(
        `unknown state "${state}"${hint}; the states are ${JOB_STATES.join(", ")}`,
      );
    }
    if (!states.includes(state as JobState)) states.push(state as JobState);
  }
  return states;
}

/** `abs drain on|off`. */
export function parseOnOff(text: string): boolean {
  if (text === "on") return true;
  if (text === "off") return false;
  throw new InvalidArgumentError('expected "on" or "off"');
}

const DAY_MS = 24 * 3600 * 1000;

/**
 * AGE of `abs autoarchive`, in milliseconds: the grammar of durations in
 * config files (30d, 12h, 1d12h, 90 = seconds), checked by parseDuration.
 *
 * parseDuration refuses anything over 24d, because a longer Node.js timer
 * fires at once; an age is never a timer, and "30d" is the typical one. So
 * the day count is taken out and "0d" put in its place: parseDuration still
 * checks the whole text (units in order, each once) and the rest stays
 * under its limit. The right fix is a `max` option on parseDuration
 * (src/config, not this module's to change).
 */
export function parseAge(text: string): number {
  const trimmed = text.trim();
  const days = /^([0-9]+)d/.exec(trimmed);
  const rest = days === null ? trimmed : `0d${trimmed.slice(days[0].length)}`;
  const parsed = parseDuration(rest);
  if ("why" in parsed) throw new InvalidArgumentError(parsed.why);
  const ms = Number(days?.[1] ?? 0) * DAY_MS + parsed.ms;
  if (!Number.isSafeInteger(ms)) throw new InvalidArgumentError("too long");
  return ms;
}
