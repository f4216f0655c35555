// What a slave session does with reports about jobs the master does not
// expect from that slave (a job not in the jobs directory, another slave's
// job, another attempt): each changes nothing, but an authenticated slave
// that sends them without end would fill the log with a warning each and
// keep the master busy. Here they are counted in fixed windows of
// `windowMs`:
//
//   - the first of a window is logged in full, as before;
//   - the others of the window are only counted; one summary line says how
//     many there were, when the window has passed (at the next such report
//     or when the session ends);
//   - the `max`-th of one window disconnects the slave (a ProtocolError):
//     a slave runs a handful of jobs, so a thousand reports a minute about
//     jobs it was never given is a bug or an attack, not a backlog. It may
//     connect again; the count starts afresh.
//
// Time is an input (`now`), for tests.

import { ProtocolError } from "../errors.js";
import type { Logger, LogMeta } from "../log.js";

/** The window reports are counted in, in ms. */
export const UNEXPECTED_REPORTS_WINDOW_MS = 60_000;
/** Reports about unexpected jobs within one window that disconnect the slave. */
export const MAX_UNEXPECTED_REPORTS = 1_000;

export interface UnexpectedReportsOptions {
  slave: string;
  logger: Logger;
  now: () => number;
  /** Default UNEXPECTED_REPORTS_WINDOW_MS. */
  windowMs?: number;
  /** Default MAX_UNEXPECTED_REPORTS. */
  max?: number;
}

export class UnexpectedReports {
  private readonly windowMs: number;
  private readonly max: number;
  private windowStart = 0;
  /** Reports in the current window, the first (logged in full) included; 0: no window. */
  private count = 0;

  constructor(private readonly opts: UnexpectedReportsOptions) {
    this.windowMs = opts.windowMs ?? UNEXPECTED_REPORTS_WINDOW_MS;
    this.max = opts.max ?? MAX_UNEXPECTED_REPORTS;
  }

  /**
   * One report about a job the master does not expect; `line` says which
   * and why. Throws ProtocolError at the bound (the session closes on it).
   */
  note(line: string, meta: LogMeta): void {
    const now = this.opts.now();
    if (this.count > 0 && now - this.windowStart >= this.windowMs) this.summarize();
    if (this.count === 0) {
      this.windowStart = now;
      this.count = 1;
      this.opts.logger.warn(line, meta);
      return;
    }
    this.count += 1;
    if (this.count >= this.max) {
      const n = this.count;
      this.count = 0;
      throw new ProtocolError(
        `${n} reports within ${this.windowMs / 1000} s about jobs this master does not expect from slave ${this.opts.slave} (the last: ${line}); disconnected`,
      );
    }
  }

  /** The session ended: the summary of the window, if it has anything to say. */
  close(): void {
    if (this.count > 0) this.summarize();
  }

  private summarize(): void {
    const more = this.count - 1;
    this.count = 0;
    if (more === 0) return;
    this.opts.logger.warn(
      `slave ${this.opts.slave}: ${more} more reports about jobs this master does not expect in the ${this.windowMs / 1000} s after the one logged; ignored`,
      { slave: this.opts.slave },
    );
  }
}
