// The command-line values, with the exact reasons commander prints after
// "argument 'x' is invalid.".

import { InvalidArgumentError } from "commander";
import t from "tap";
import {
  collectJobIds,
  collectStates,
  parseAge,
  parseDays,
  parseJobId,
  parseLimit,
  parseName,
  parseOnOff,
} from "../../src/cli/args.js";

const STATES = "queued, dispatched, running, canceling, orphaned, succeeded, failed, canceled";

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err.message;
    throw err;
  }
  throw new Error("expected a refusal");
}

t.test("--state: one, several, repeated; unknown ones refused by name", (t) => {
  t.same(collectStates("running", undefined), ["running"]);
  t.same(collectStates("queued,orphaned", undefined), ["queued", "orphaned"]);
  t.same(collectStates(" queued , failed", undefined), ["queued", "failed"]);
  t.same(collectStates("running,queued", ["queued"]), ["queued", "running"], "repeated: added up");
  const refused: [string, string][] = [
    ["runing", `unknown state "runing" (did you mean "running"?); the states are ${STATES}`],
    ["Queued", `unknown state "Queued" (did you mean "queued"?); the states are ${STATES}`],
    ["queued,bogus", `unknown state "bogus"; the states are ${STATES}`],
    ["done", `unknown state "done"; the states are ${STATES}`],
    ["", `an empty state in the list; the states are ${STATES}`],
    ["queued,", `an empty state in the list; the states are ${STATES}`],
  ];
  for (const [text, why] of refused)
    t.equal(
      reason(() => collectStates(text, undefined)),
      why,
      text,
    );
  t.end();
});

t.test("--limit, --days, job ids", (t) => {
  t.equal(parseLimit("1"), 1);
  t.equal(parseLimit("100000"), 100000);
  for (const bad of ["x", "0", "-1", "1.5", "1e3", "", " 5", "99999999999999999999"]) {
    t.equal(
      reason(() => parseLimit(bad)),
      "expected a whole number >= 1",
      JSON.stringify(bad),
    );
  }
  t.equal(parseDays("7"), 7);
  t.equal(parseDays("366"), 366);
  for (const bad of ["0", "367", "week"]) {
    t.equal(
      reason(() => parseDays(bad)),
      "expected a whole number of days from 1 to 366",
      bad,
    );
  }
  t.equal(parseJobId("12"), 12);
  for (const bad of ["0", "twelve", "#12", "-3"]) {
    t.equal(
      reason(() => parseJobId(bad)),
      "expected a job id (a whole number >= 1)",
      bad,
    );
  }
  t.same(
    ["12", "13", "14"].reduce<number[] | undefined>((ids, v) => collectJobIds(v, ids), undefined),
    [12, 13, 14],
  );
  t.end();
});

t.test("AGE: durations, longer ones than config files allow too", (t) => {
  const D = 24 * 3600 * 1000;
  const cases: [string, number][] = [
    ["30d", 30 * D],
    ["365d", 365 * D],
    ["12h", 12 * 3600 * 1000],
    ["1d12h", D + 12 * 3600 * 1000],
    ["90", 90_000],
    ["0", 0],
    [" 7d ", 7 * D],
  ];
  for (const [text, ms] of cases) t.equal(parseAge(text), ms, text);
  const refused: [string, string][] = [
    ["5x", "expected a duration such as 90s, 15m, 2h, 1d or 1h30m"],
    ["", "expected a duration such as 90s, 15m, 2h, 1d or 1h30m"],
    ["30 d", "expected a duration such as 90s, 15m, 2h, 1d or 1h30m"],
    ["-5d", "a duration cannot be negative"],
    ["1d5d", "units must go from the largest to the smallest, each once (e.g. 1h30m)"],
    ["12h1d", "units must go from the largest to the smallest, each once (e.g. 1h30m)"],
    ["99999999999999999999d", "too long"],
  ];
  for (const [text, why] of refused)
    t.equal(
      reason(() => parseAge(text)),
      why,
      text,
    );
  t.end();
});

t.test("names and on/off", (t) => {
  t.equal(parseName("green-acres"), "green-acres");
  t.equal(
    reason(() => parseName("")),
    "expected a name, got an empty string",
  );
  t.equal(
    reason(() => parseName("x".repeat(256))),
    "a name is at most 255 characters",
  );
  t.equal(parseOnOff("on"), true);
  t.equal(parseOnOff("off"), false);
  for (const bad of ["yes", "ON", "1"])
    t.equal(
      reason(() => parseOnOff(bad)),
      'expected "on" or "off"',
    );
  t.end();
});
