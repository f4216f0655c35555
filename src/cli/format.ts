// How `abs` shows times, spans and sizes to people. Pure code: the current
// time is an argument, and local times use the process's time zone (TZ).
//
//   formatRelative(t, now)  "in 5m", "3h ago", "now", "2d5h ago"
//   formatSpan(ms)          "1m30s", "12m", "1h59m", "12d" (about 10% precise)
//   formatTimestamp(t)      "2026-11-23T11:05:00+01:00" (ISO 8601, local offset)
//   formatLocalMinute(t)    "2026-11-24 02:00" (local, for schedules)
//   formatBytes(n)          "512 B", "1.2 GiB"
//   formatCount(n)          "3,456", "1,234,567" (digits grouped, whatever the locale)
//   printable(text)         control characters escaped, for terminals

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const SPAN_UNITS: readonly { unit: string; ms: number }[] = [
  { unit: "d", ms: DAY },
  { unit: "h", ms: HOUR },
  { unit: "m", ms: MINUTE },
  { unit: "s", ms: SECOND },
];

/**
 * A span of time, short: the largest unit, plus the next one while the
 * first is below 10 (1h59m matters, 12h05m does not). Rounds down; below a
 * second is "0s". Negative spans are shown as their absolute value.
 */
export function formatSpan(ms: number): string {
  const abs = Math.abs(ms);
  for (let i = 0; i < SPAN_UNITS.length; i++) {
    const big = SPAN_UNITS[i];
    if (big === undefined || abs < big.ms) continue;
    const n = Math.floor(abs / big.ms);
    const small = SPAN_UNITS[i + 1];
    if (n >= 10 || small === undefined) return `${n}${big.unit}`;
    const m = Math.floor((abs - n * big.ms) / small.ms);
    return m === 0 ? `${n}${big.unit}` : `${n}${big.unit}${m}${small.unit}`;
  }
  return "0s";
}

/** `time` seen from `now`: "in 5m", "3h ago", or "now" within a second either way. */
export function formatRelative(time: number, now: number): string {
  const d = time - now;
  if (Math.abs(d) < SECOND) return "now";
  return d > 0 ? `in ${formatSpan(d)}` : `${formatSpan(d)} ago`;
}

function pad2(n: number): string {
  return String(n).padStart(2, "0");
}

function localDate(d: Date): string {
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
}

/**
 * ISO 8601 in local time with its offset, to the second: unambiguous when
 * pasted into a ticket, and still the wall-clock time the reader lives in.
 */
export function formatTimestamp(time: number): string {
  const d = new Date(time);
  // getTimezoneOffset is minutes *behind* UTC: -60 for UTC+01:00.
  const offset = -d.getTimezoneOffset();
  const sign = offset < 0 ? "-" : "+";
  const a = Math.abs(offset);
  const clock = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  return `${localDate(d)}T${clock}${sign}${pad2(Math.floor(a / 60))}:${pad2(a % 60)}`;
}

/** Local date and time to the minute, for fire times (5-field cron has no seconds). */
export function formatLocalMinute(time: number): string {
  const d = new Date(time);
  return `${localDate(d)} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

/** Local date and time to the second, for fire times of a 6-field cron. */
export function formatLocalSecond(time: number): string {
  return `${formatLocalMinute(time)}:${pad2(new Date(time).getSeconds())}`;
}

/** A timestamp followed by its relative form: "2026-11-23T11:05:00+01:00 (3h ago)"; "-" for null. */
export function formatWhen(time: number | null, now: number): string {
  if (time === null) return "-";
  return `${formatTimestamp(time)} (${formatRelative(time, now)})`;
}

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"] as const;

/** Bytes in binary units with one decimal: "512 B", "1.0 KiB", "1.2 GiB". */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes;
  let unit = 0;
  // Rounding can carry over (1023.96 KiB shows as "1024.0 KiB"): move up then.
  while (unit < BYTE_UNITS.length - 1 && Number(value.toFixed(1)) >= 1024) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${BYTE_UNITS[unit]}`;
}

/**
 * A count with its digits grouped by threes: "3,456". Not toLocaleString:
 * the output must not depend on the locale of whoever runs abs. A value
 * that is not a whole number (none should come) is shown as String shows it.
 */
export function formatCount(n: number): string {
  const text = String(n);
  return /^[0-9]+$/.test(text) ? text.replace(/\B(?=([0-9]{3})+$)/g, ",") : text;
}

/** "1 job", "3 jobs". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// C0 controls, DEL and C1 controls. Paths and messages come from slaves and
// job output; an escape sequence in a file name must not drive the terminal.
// Also the bidirectional controls (U+061C, U+200E, U+200F, U+202A-U+202E,
// U+2066-U+2069), which reorder what follows them on the line, so that a
// file name could make a listing read otherwise than it is, and the line
// and paragraph separators (U+2028, U+2029), which break some terminals'
// lines. The test without /g first: most text has none, and that is the
// fast path for tables of 100,000 jobs.
// eslint-disable-next-line no-control-regex
const HAS_CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/**
 * `text` with control characters shown as \n, \t, \xNN or \uNNNN, so one
 * value stays on one line and reads in the order it is stored.
 */
export function printable(text: string): string {
  if (!HAS_CONTROL.test(text)) return text;
  return text.replace(CONTROLS, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\t") return "\\t";
    if (c === "\r") return "\\r";
    const code = c.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}
