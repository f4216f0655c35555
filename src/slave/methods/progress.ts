// Progress at a bounded rate: a method reports every step; the master hears
// at most one report per interval, plus the last one when the method ends.

import type { Progress } from "./method-context.js";

/** The shortest time between two progress reports, in milliseconds. */
export const PROGRESS_INTERVAL_MS = 250;

export class ProgressThrottle {
  private last = Number.NEGATIVE_INFINITY;
  private pending: Progress | null = null;
  readonly current: Progress = { files: 0, bytes: 0, path: "" };

  constructor(
    private readonly emit: (p: Progress) => void,
    private readonly now: () => number,
    private readonly intervalMs = PROGRESS_INTERVAL_MS,
  ) {}

  /** Adds to the counters and reports if the interval has passed. */
  add(files: number, bytes: number, path: string): void {
    this.current.files += files;
    this.current.bytes += bytes;
    this.current.path = path;
    this.pending = { ...this.current };
    const t = this.now();
    if (t - this.last >= this.intervalMs) {
      this.last = t;
      this.pending = null;
      this.emit({ ...this.current });
    }
  }

  /** Reports the last state if it was held back. */
  flush(): void {
    if (this.pending !== null) {
      this.emit(this.pending);
      this.pending = null;
      this.last = this.now();
    }
  }
}
