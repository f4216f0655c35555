// Durations in config files: `90s`, `15m`, `2h`, `1d`, `1h30m`, `250ms`, or
// a plain number of seconds (`90`). Pure code.
//
// Grammar: one or more <digits><unit> with units d, h, m, s, ms, each at
// most once and from the largest to the smallest (`1h30m`, not `30m1h`), no
// spaces, no signs, no fractions; or <digits> alone, meaning seconds. The
// longest accepted is 24d: Node.js timers cannot wait longer than 2^31-1 ms
// (about 24.8 days) and fire at once when asked to, so a longer max_run_time
// would silently cancel every job.

/** The longest duration accepted, in milliseconds (24 days). */
export const MAX_DURATION_MS = 24 * 24 * 3600 * 1000;

const UNITS: readonly { unit: string; ms: number }[] = [
  { unit: "d", ms: 24 * 3600 * 1000 },
  { unit: "h", ms: 3600 * 1000 },
  { unit: "m", ms: 60 * 1000 },
  { unit: "s", ms: 1000 },
  { unit: "ms", ms: 1 },
];

const EXAMPLES = "expected a duration such as 90s, 15m, 2h, 1d or 1h30m";

/** Milliseconds, or the reason the text is not a duration. */
export function parseDuration(text: string): { ms: number } | { why: string } {
  const t = text.trim();
  if (t === "") return { why: EXAMPLES };
  if (t.startsWith("-")) return { why: "a duration cannot be negative" };
  if (/^\d+$/.test(t)) return check(Number(t) * 1000);
  const parts = /^(?:\d+(?:ms|[dhms]))+$/.test(t) ? t.match(/\d+(?:ms|[dhms])/g) : null;
  if (parts === null) return { why: EXAMPLES };
  let ms = 0;
  let lastIndex = -1;
  for (const part of parts) {
    const m = /^(\d+)(ms|[dhms])$/.exec(part);
    if (m === null) return { why: EXAMPLES };
    const index = UNITS.findIndex((u) => u.unit === m[2]);
    if (index <= lastIndex) {
      return { why: "units must go from the largest to the smallest, each once (e.g. 1h30m)" };
    }
    lastIndex = index;
    ms += Number(m[1]) * (UNITS[index]?.ms ?? 0);
  }
  return check(ms);
}

function check(ms: number): { ms: number } | { why: string } {
  if (!Number.isSafeInteger(ms) || ms > MAX_DURATION_MS) {
    return { why: "longer than 24d, the longest a Node.js timer can wait" };
  }
  return { ms };
}

/** Renders milliseconds in the same grammar, largest units first: 5400000 → "1h30m". */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  let rest = ms;
  let out = "";
  for (const { unit, ms: size } of UNITS) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
