import t from "tap";
import { formatDuration, MAX_DURATION_MS, parseDuration } from "../../src/config/duration.js";
import { formatHostPort, parseHostPort } from "../../src/config/host-port.js";
import { closest } from "../../src/config/issues.js";
import { Invalid, words } from "../../src/config/values.js";

t.test("durations", (t) => {
  const good: [string, number][] = [
    ["90s", 90_000],
    ["15m", 900_000],
    ["2h", 7_200_000],
    ["1d", 86_400_000],
    ["1h30m", 5_400_000],
    ["1d2h3m4s5ms", 93_784_005],
    ["250ms", 250],
    ["90", 90_000],
    ["0", 0],
    ["0s", 0],
    ["24d", MAX_DURATION_MS],
    [" 5m ", 300_000],
  ];
  for (const [text, ms] of good) t.same(parseDuration(text), { ms }, text);
  const EXAMPLES = "expected a duration such as 90s, 15m, 2h, 1d or 1h30m";
  const ORDER = "units must go from the largest to the smallest, each once (e.g. 1h30m)";
  const LONG = "longer than 24d, the longest a Node.js timer can wait";
  const bad: [string, string][] = [
    ["", EXAMPLES],
    ["-5m", "a duration cannot be negative"],
    ["-0", "a duration cannot be negative"],
    ["1.5h", EXAMPLES],
    ["1h 30m", EXAMPLES],
    ["5 m", EXAMPLES],
    ["5M", EXAMPLES],
    ["m", EXAMPLES],
    ["1w", EXAMPLES],
    ["+5m", EXAMPLES],
    ["0x10", EXAMPLES],
    ["1e3", EXAMPLES],
    ["30m1h", ORDER],
    ["1m1m", ORDER],
    ["24d1ms", LONG],
    ["25d", LONG],
    ["99999999999999999999999", LONG],
  ];
  for (const [text, why] of bad) t.same(parseDuration(text), { why }, JSON.stringify(text));
  for (const ms of [0, 1, 999, 1000, 5_400_000, 93_784_005]) {
    t.same(parseDuration(formatDuration(ms)), { ms }, `round trip of ${ms}`);
  }
  t.end();
});

t.test("host and port", (t) => {
  const opts = { defaultPort: 7370 };
  t.same(parseHostPort("green-acres", opts), { host: "green-acres", port: 7370 });
  t.same(parseHostPort("green-acres.", opts), { host: "green-acres.", port: 7370 });
  t.same(parseHostPort("[::]:1", opts), { host: "::", port: 1 });
  t.same(parseHostPort("[::ffff:192.0.2.1]", opts), { host: "::ffff:192.0.2.1", port: 7370 });
  t.same(parseHostPort("a:", opts), { why: 'port "" is not a number from 1 to 65535' });
  t.same(parseHostPort("a:-1", opts), { why: 'port "-1" is not a number from 1 to 65535' });
  t.same(parseHostPort("[::1", opts), { why: "expected [IPv6 address] or [IPv6 address]:port" });
  t.same(parseHostPort("[::1]x", opts), { why: "expected [IPv6 address] or [IPv6 address]:port" });
  t.same(parseHostPort("a..b", opts), {
    why: "a host name holds letters, digits, '-' and '_' in dot-separated parts",
  });
  t.same(parseHostPort("-a", opts), {
    why: "a host name holds letters, digits, '-' and '_' in dot-separated parts",
  });
  t.same(parseHostPort("é.example", opts), {
    why: "a host name holds letters, digits, '-' and '_' in dot-separated parts",
  });
  t.same(parseHostPort("x".repeat(254), opts), { why: "a host name has at most 253 characters" });
  t.equal(formatHostPort({ host: "::1", port: 7370 }), "[::1]:7370");
  t.equal(formatHostPort({ host: "green-acres", port: 7370 }), "green-acres:7370");
  t.end();
});

t.test("command arguments are split without a shell", (t) => {
  const cases: [string, string[]][] = [
    ["", []],
    ["backup --repo /srv/restic", ["backup", "--repo", "/srv/restic"]],
    ["'a b' \"c d\" e\\ f", ["a b", "c d", "e f"]],
    ['"say \\"hi\\"" \'$HOME\' *.txt', ['say "hi"', "$HOME", "*.txt"]],
    ["a'b'\"c\"d", ["abcd"]],
    ["'' \"\"", ["", ""]],
    ["x ; comment", ["x"]],
    ["x # comment", ["x"]],
    ["'a;b' \"c#d\" e\\;f", ["a;b", "c#d", "e;f"]],
    ["  \t spaced\t\tout  ", ["spaced", "out"]],
  ];
  for (const [text, expected] of cases) t.same(words(text), expected, text);
  t.same(words("'open"), new Invalid("a ' quote is not closed"));
  t.same(words('"open'), new Invalid('a " quote is not closed'));
  t.same(words("end\\"), new Invalid("a backslash at the end escapes nothing"));
  t.end();
});

t.test("suggestions for mistyped keys", (t) => {
  const known = ["schedule", "slave", "timezone", "tar.sources", "max_run_time", "retries"];
  t.equal(closest("schedul", known), "schedule");
  t.equal(closest("Schedule", known), "schedule");
  t.equal(closest("slaves", known), "slave");
  t.equal(closest("time_zone", known), "timezone");
  t.equal(closest("sources", known), "tar.sources");
  t.equal(closest("max_runtime", known), "max_run_time");
  t.equal(closest("retry", known), undefined);
  t.equal(closest("colour", known), undefined);
  t.equal(closest("x".repeat(10_000), known), undefined);
  t.end();
});
