// The formatters of src/cli/format.ts, table-driven. Local times are read in
// a fixed zone (TZ set below, before any Date is made), so the expected
// offsets hold on any host.

process.env.TZ = "Europe/Berlin";

import t from "tap";
import {
  formatBytes,
  formatCount,
  formatLocalMinute,
  formatRelative,
  formatSpan,
  formatTimestamp,
  formatWhen,
  plural,
  printable,
} from "../../src/cli/format.js";

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

t.test("spans: the largest unit, the next one only below 10", (t) => {
  const cases: [number, string][] = [
    [0, "0s"],
    [999, "0s"],
    [S, "1s"],
    [59 * S, "59s"],
    [M, "1m"],
    [90 * S, "1m30s"],
    [5 * M, "5m"],
    [9 * M + 59 * S, "9m59s"],
    [12 * M + 30 * S, "12m"],
    [H, "1h"],
    [H + 59 * M + 59 * S, "1h59m"],
    [12 * H + 5 * M, "12h"],
    [D, "1d"],
    [2 * D + 5 * H, "2d5h"],
    [12 * D + 5 * H, "12d"],
    [400 * D, "400d"],
    [-3 * H, "3h"],
  ];
  for (const [ms, want] of cases) t.equal(formatSpan(ms), want, `${ms} ms`);
  t.end();
});

t.test("relative times: future, past, now, days", (t) => {
  const now = Date.UTC(2026, 10, 23, 12, 0, 0);
  const cases: [number, string][] = [
    [now, "now"],
    [now + 999, "now"],
    [now - 999, "now"],
    [now + S, "in 1s"],
    [now - S, "1s ago"],
    [now + 5 * M, "in 5m"],
    [now - 3 * H, "3h ago"],
    [now - (H + 30 * M), "1h30m ago"],
    [now + 14 * H, "in 14h"],
    [now - 2 * D, "2d ago"],
    [now + 3 * D + 4 * H, "in 3d4h"],
    [now - 45 * D, "45d ago"],
  ];
  for (const [time, want] of cases) t.equal(formatRelative(time, now), want, want);
  t.end();
});

t.test("timestamps: ISO 8601 with the local offset, summer and winter", (t) => {
  const cases: [number, string][] = [
    [Date.UTC(2026, 10, 23, 10, 5, 7), "2026-11-23T11:05:07+01:00"],
    [Date.UTC(2026, 6, 1, 22, 30, 0), "2026-07-02T00:30:00+02:00"],
    // The second 2:30 of the autumn change (UTC 01:30 is 02:30 CET).
    [Date.UTC(2026, 9, 25, 1, 30, 0), "2026-10-25T02:30:00+01:00"],
  ];
  for (const [time, want] of cases) t.equal(formatTimestamp(time), want);
  t.equal(formatLocalMinute(Date.UTC(2026, 10, 24, 1, 0, 59)), "2026-11-24 02:00");
  const now = Date.UTC(2026, 10, 23, 13, 5, 7);
  t.equal(formatWhen(Date.UTC(2026, 10, 23, 10, 5, 7), now), "2026-11-23T11:05:07+01:00 (3h ago)");
  t.equal(formatWhen(null, now), "-");
  t.end();
});

t.test("offsets west of UTC and with half hours", (t) => {
  process.env.TZ = "America/St_Johns";
  t.teardown(() => {
    process.env.TZ = "Europe/Berlin";
  });
  t.equal(formatTimestamp(Date.UTC(2026, 0, 15, 12, 0, 0)), "2026-01-15T08:30:00-03:30");
  t.end();
});

t.test("sizes in binary units", (t) => {
  const cases: [number, string][] = [
    [0, "0 B"],
    [1, "1 B"],
    [1023, "1023 B"],
    [1024, "1.0 KiB"],
    [1536, "1.5 KiB"],
    [1024 * 1024 - 1, "1.0 MiB"],
    [1.2 * 1024 ** 3, "1.2 GiB"],
    [123.4 * 1024 ** 4, "123.4 TiB"],
    [2 * 1024 ** 6, "2.0 EiB"],
    [4096 * 1024 ** 6, "4096.0 EiB"],
  ];
  for (const [bytes, want] of cases) t.equal(formatBytes(bytes), want, want);
  t.end();
});

t.test("counts with digits grouped, whatever the locale", (t) => {
  const cases: [number, string][] = [
    [0, "0"],
    [999, "999"],
    [1000, "1,000"],
    [3456, "3,456"],
    [1_234_567, "1,234,567"],
    [Number.MAX_SAFE_INTEGER, "9,007,199,254,740,991"],
    [1e21, "1e+21"],
    [-1234, "-1234"],
    [1.5, "1.5"],
    [NaN, "NaN"],
  ];
  for (const [n, want] of cases) t.equal(formatCount(n), want, want);
  t.end();
});

t.test("plurals and printable text", (t) => {
  t.equal(plural(0, "job"), "0 jobs");
  t.equal(plural(1, "job"), "1 job");
  t.equal(plural(2, "slave"), "2 slaves");
  const cases: [string, string][] = [
    ["/home/alice/Mail", "/home/alice/Mail"],
    ["two\nlines", "two\\nlines"],
    ["tab\there", "tab\\there"],
    ["\x1b[2Jcleared", "\\x1b[2Jcleared"],
    ["cr\rreturn", "cr\\rreturn"],
    ["del\x7f and c1\x9b", "del\\x7f and c1\\x9b"],
    ["café ☃", "café ☃"],
    // Bidirectional controls would show "/srv/txt.exe" as "/srv/exe.txt".
    ["/srv/\u202etxt.exe", "/srv/\\u202etxt.exe"],
    [
      "\u2066isolate\u2069 \u200emark\u200f \u061c",
      "\\u2066isolate\\u2069 \\u200emark\\u200f \\u061c",
    ],
    ["line\u2028sep\u2029", "line\\u2028sep\\u2029"],
    ["zero\u200bwidth joiner\u200d", "zero\u200bwidth joiner\u200d"],
  ];
  // Named by the escaped form: a raw U+2028 in a test's name would break
  // the TAP stream itself.
  for (const [text, want] of cases) t.equal(printable(text), want, want);
  t.end();
});
