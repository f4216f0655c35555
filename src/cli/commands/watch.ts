// abs watch ID: follows a job until it finishes, and exits with its outcome
// (0 succeeded, 10 failed, 11 canceled).
//
// It long-polls the master's `watch` method: each call waits up to
// WATCH_WAIT_MS for the job's serial to move past the last one seen, so a
// quiet job costs one call per 30 s and a change shows at once. Three ways
// to show changes:
//
//   terminal  log lines as they come; the progress on one line rewritten in
//             place (\r and erase-line), cleared before a log line is printed:
//             a bar when the master has an estimate of the total (the
//             previous successful run's), else the counts (progress-bar.ts)
//   plain     (a pipe or file) log lines, and a "progress:" line per change
//   --json    one JSON object (the job as show job has it) per change

import { assertNever } from "../../errors.js";
import { type FinishedState, isFinished } from "../../jobsdir/job.js";
import type { ExpectedTotals, JobDetail } from "../../protocol/admin-api.js";
import type { CliContext, Output } from "../context.js";
import { EXIT, type ExitStatus } from "../exit-status.js";
import { printable } from "../format.js";
import { formatLogEntry, formatProgress } from "../job-text.js";
import { formatProgressLine } from "../progress-bar.js";

/** How long the master holds one watch call, in ms (the master allows up to 60 s). */
export const WATCH_WAIT_MS = 30_000;
/** The client's own timeout for one call: the wait plus room for a busy master. */
const CALL_TIMEOUT_MS = WATCH_WAIT_MS + 15_000;

export function outcomeStatus(state: FinishedState): ExitStatus {
  switch (state) {
    case "succeeded":
      return EXIT.OK;
    case "failed":
      return EXIT.JOB_FAILED;
    case "canceled":
      return EXIT.JOB_CANCELED;
    default:
      return assertNever(state);
  }
}

/**
 * Shows a job's changes one way; `update` gets every changed job with what
 * it is expected to come to, `finish` the finished one.
 */
export interface WatchView {
  update(job: JobDetail, expected: ExpectedTotals | null): void;
  finish(job: JobDetail): void;
}

export function jsonView(out: Output): WatchView {
  return {
    update: (job) => out.write(JSON.stringify(job) + "\n"),
    finish: () => undefined,
  };
}

const ERASE_LINE = "\r\x1b[K";
/** The width assumed when the terminal does not say (a pseudo-terminal may say 0). */
const DEFAULT_COLUMNS = 80;

/**
 * Log lines and progress for people, on a terminal (`out.isTTY`, progress
 * rewritten in place, with a bar if `expected` is known) or not (a line per
 * progress change). `now` gives the rate on a terminal.
 */
export function humanView(out: Output, now: () => number): WatchView {
  let headerShown = false;
  let lastLog = 0;
  let lastProgress = "";
  let progressShown = false;
  const clearProgress = (): void => {
    if (progressShown) out.write(ERASE_LINE);
    progressShown = false;
  };
  return {
    update(job, expected) {
      if (!headerShown) {
        out.write(`job ${job.id}: ${printable(job.definition)} on ${printable(job.slave)}\n`);
        headerShown = true;
      }
      const entries = job.log.filter((e) => e.serial > lastLog);
      if (entries.length > 0) {
        clearProgress();
        out.write(entries.map((e) => formatLogEntry(e) + "\n").join(""));
        lastLog = entries[entries.length - 1]?.serial ?? lastLog;
      }
      if (job.progress === null || isFinished(job.state)) return;
      if (out.isTTY) {
        const width = out.columns !== undefined && out.columns > 0 ? out.columns : DEFAULT_COLUMNS;
        const elapsed = job.started === null ? null : now() - job.started;
        out.write(ERASE_LINE + formatProgressLine(job.progress, expected, elapsed, width));
        progressShown = true;
        return;
      }
      const text = printable(`progress: ${formatProgress(job.progress)}`);
      if (text !== lastProgress) out.write(text + "\n");
      lastProgress = text;
    },
    finish(job) {
      clearProgress();
      const result = job.result === null ? "" : `: ${printable(job.result)}`;
      out.write(`job ${job.id} ${job.state}${result}\n`);
    },
  };
}

/** Follows job `id` until it finishes; resolves with the exit status of its outcome. */
export async function watch(
  ctx: CliContext,
  id: number,
  o: { json?: boolean },
): Promise<ExitStatus> {
  const view = o.json === true ? jsonView(ctx.out) : humanView(ctx.out, () => ctx.now());
  let serial = 0;
  for (;;) {
    const { changed, job, expected } = await ctx.call(
      "watch",
      { id, serial, timeoutMs: WATCH_WAIT_MS },
      { timeoutMs: CALL_TIMEOUT_MS },
    );
    // The first answer is always shown: it is the job as it stands.
    if (changed || serial === 0) view.update(job, expected ?? null);
    serial = job.serial;
    if (isFinished(job.state)) {
      view.finish(job);
      return outcomeStatus(job.state);
    }
  }
}
