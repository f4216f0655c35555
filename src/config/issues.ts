// What a config mistake looks like to the user. Every message names the
// place, the key, the bad value and why it is bad, in one shape:
//
//   jobs.d/home.conf:7: schedule "0 25 * * *": hour 25 is out of range 0-23
//
// Validation collects every issue instead of stopping at the first, so
// `abs-master -t` prints the whole list at once. Pure code.

import { ConfigError } from "../errors.js";

/** One mistake in a config file. */
export interface ConfigIssue {
  /** The file as the reader named it, e.g. "/etc/abs/jobs.d/home.conf". */
  file: string;
  /** 1-based line number; 1 for a mistake about the file as a whole. */
  line: number;
  /** The key (or "section", "job", "line" for structural mistakes). */
  key: string;
  /** The value as written (after INI unquoting). */
  value: string;
  /** Why it is wrong, e.g. `hour 25 is out of range 0-23`. */
  why: string;
  /** The whole line a user sees: `file:line: key "value": why`. */
  message: string;
}

/** Values longer than this are cut in messages (a 1 MB line makes a 1 MB message otherwise). */
const MAX_SHOWN = 60;

/** A value as it appears in a message: in double quotes, escaped, cut when long. */
export function quote(value: string): string {
  const cut = value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}...` : value;
  return JSON.stringify(cut);
}

/** A key as it appears in a message: bare when it looks like a key, quoted otherwise. */
export function showKey(key: string): string {
  return /^[A-Za-z0-9_.[\]-]{1,64}$/.test(key) ? key : quote(key);
}

export function makeIssue(
  file: string,
  line: number,
  key: string,
  value: string,
  why: string,
): ConfigIssue {
  return {
    file,
    line,
    key,
    value,
    why,
    message: `${file}:${line}: ${showKey(key)} ${quote(value)}: ${why}`,
  };
}

/** Every issue, one per line, in the order found. */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map((i) => i.message).join("\n");
}

/**
 * One ConfigError carrying every issue: the message lists them all, the
 * context points at the first. For callers that throw (SIGHUP, `abs reload`).
 */
export function configErrorFromIssues(issues: readonly ConfigIssue[]): ConfigError {
  const first = issues[0];
  if (first === undefined) return new ConfigError("invalid configuration");
  return new ConfigError(formatIssues(issues), {
    file: first.file,
    line: first.line,
    field: first.key,
  });
}

/** Either a checked config or every issue found. */
export type LoadResult<T> = { config: T } | { errors: ConfigIssue[] };

/** Levenshtein distance, bounded: returns `max + 1` as soon as it is exceeded. */
function distance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const v = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      cur.push(v);
      if (v < best) best = v;
    }
    if (best > max) return max + 1;
    prev = cur;
  }
  return prev[b.length] ?? max + 1;
}

/**
 * The known key closest to a mistyped one, or undefined when none is close:
 * at most 2 edits (1 for short keys), ignoring case, or a known key that ends
 * with `.key` (`sources` → `tar.sources`).
 */
export function closest(key: string, known: readonly string[]): string | undefined {
  if (key.length > 64) return undefined;
  const lower = key.toLowerCase();
  const max = lower.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = max + 1;
  for (const k of known) {
    const d = distance(lower, k.toLowerCase(), max);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  if (best !== undefined) return best;
  return known.find((k) => k.endsWith(`.${lower}`));
}
