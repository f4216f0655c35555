// The progress line `abs watch` redraws on a terminal. Pure code: the
// progress, what the run is expected to come to, the time since it started
// and the terminal's width go in, one line comes out.
//
//   [########------------]  41%  1.2 GiB of 2.9 GiB  3,456 files  12.0 MiB/s  /home/x/file
//   1.2 GiB  3,456 files  12.0 MiB/s  /home/x/file
//
// The second form is for a run with no estimate, or one that went past it.
// The estimate is an earlier run's total (src/master/progress-estimate.ts),
// which this run may exceed: the percentage stops at 99 while the job runs
// (100% is for a finished job, which shows its result instead), and once
// the count passes the estimate, bar and percentage go rather than show
// "140%".
//
// The line must never wrap: a wrapped line cannot be rewritten with \r.
// So it is cut to the width less one column (writing the last column makes
// some terminals wrap), and widths are counted conservatively: a character
// outside ASCII counts as two columns, the most a terminal gives one.

import type { JobProgress } from "../jobsdir/job.js";
import type { ExpectedTotals } from "../protocol/admin-api.js";
import { formatBytes, formatCount, printable } from "./format.js";

/** The bar's cells between the brackets. */
export const BAR_CELLS = 20;
/** A path is shown only with at least this many columns for it, "..." included. */
const MIN_PATH_COLUMNS = 12;
/** The rate is shown from this long after the start: before, it is mostly noise. */
const MIN_RATE_MS = 1000;
const GAP = "  ";
const ELLIPSIS = "...";

/**
 * The progress line, at most `width - 1` columns. `elapsedMs` is the time
 * since the job started, null if unknown (no rate then).
 */
export function formatProgressLine(
  progress: JobProgress,
  expected: ExpectedTotals | null,
  elapsedMs: number | null,
  width: number,
): string {
  const limit = Number.isFinite(width) ? Math.max(0, Math.floor(width) - 1) : 0;
  const done = expected === null ? null : fractionDone(progress, expected);
  const bytes = formatBytes(progress.bytes);
  const files = `${formatCount(progress.files)} files`;
  const parts: string[] = [];
  if (done === null || expected === null) {
    parts.push(bytes, files);
  } else {
    // Floor, and at most 99: a running job is not done.
    const percent = Math.min(99, Math.floor(done.fraction * 100));
    parts.push(bar(percent), `${String(percent).padStart(3)}%`);
    if (done.by === "bytes") {
      parts.push(`${bytes} of ${formatBytes(expected.bytes)}`, files);
    } else {
      parts.push(bytes, `${formatCount(progress.files)} of ${formatCount(expected.files)} files`);
    }
  }
  const rate = formatRate(progress.bytes, elapsedMs);
  if (rate !== null) parts.push(rate);
  const head = parts.join(GAP);

  const room = limit - columnsOf(head) - GAP.length;
  if (progress.path === null || room < MIN_PATH_COLUMNS) return cutRight(head, limit);
  return head + GAP + cutLeft(printable(progress.path), room);
}

/**
 * How far the run is, from 0 to 1, by bytes (what takes the time), or by
 * files when the estimate has no bytes; null when the estimate has neither
 * or the run is past it.
 */
export function fractionDone(
  progress: JobProgress,
  expected: ExpectedTotals,
): { fraction: number; by: "bytes" | "files" } | null {
  const by = expected.bytes > 0 ? "bytes" : "files";
  const count = progress[by];
  const total = expected[by];
  // Written so that NaN and Infinity, which no master sends, fail the test too.
  if (!(total > 0 && total < Infinity && count >= 0 && count <= total)) return null;
  return { fraction: count / total, by };
}

/** "[########------------]" for `percent` from 0 to 99. */
function bar(percent: number): string {
  const filled = Math.floor((percent * BAR_CELLS) / 100);
  return `[${"#".repeat(filled)}${"-".repeat(BAR_CELLS - filled)}]`;
}

/** "12.0 MiB/s": the average since the start; null while it means little. */
function formatRate(bytes: number, elapsedMs: number | null): string | null {
  if (elapsedMs === null || !(elapsedMs >= MIN_RATE_MS && elapsedMs < Infinity)) return null;
  if (!(bytes >= 0 && bytes < Infinity)) return null;
  return `${formatBytes(Math.floor(bytes / (elapsedMs / 1000)))}/s`;
}

/** Columns a terminal may give `c`: 1 for printable ASCII, else 2 (the most any gets). */
function columnsOfChar(c: string): number {
  const code = c.codePointAt(0) ?? 0;
  return code >= 0x20 && code < 0x7f ? 1 : 2;
}

/** The columns of `text`, counted as columnsOfChar does. */
export function columnsOf(text: string): number {
  let n = 0;
  for (const c of text) n += columnsOfChar(c);
  return n;
}

/** The start of `text` that fits in `columns`, whole characters only, without trailing blanks. */
function cutRight(text: string, columns: number): string {
  let used = 0;
  let end = 0;
  for (const c of text) {
    used += columnsOfChar(c);
    if (used > columns) break;
    end += c.length;
  }
  return text.slice(0, end).trimEnd();
}

/** `text`, or "..." and its end if it is wider than `columns`: a path's end says most. */
function cutLeft(text: string, columns: number): string {
  if (columnsOf(text) <= columns) return text;
  const chars = [...text];
  let used = ELLIPSIS.length;
  let start = chars.length;
  while (start > 0) {
    const w = columnsOfChar(chars[start - 1] ?? "");
    if (used + w > columns) break;
    used += w;
    start--;
  }
  return ELLIPSIS + chars.slice(start).join("");
}
