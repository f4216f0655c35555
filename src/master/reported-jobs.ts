// What the fake master shows in `abs show jobs`: the last view of each
// attempt a slave reported (`slave/job/attempt`), at most `max` of them.
// Any authenticated slave may report any job id to the fake master (it
// never answers "no such job"), so without a bound one slave could grow
// this map until the master runs out of memory. When full, the attempt
// reported least recently is dropped from the view; the disaster log still
// holds every report, and the import reads the log, not this map.

import type { JobView } from "../protocol/admin-api.js";

/** Attempts `abs show jobs` on the fake master shows at most. */
export const MAX_REPORTED_ATTEMPTS = 100_000;

export class ReportedJobs {
  // Map order is insertion order; an attempt is re-inserted at each report,
  // so the first entry is the one reported least recently.
  private readonly views = new Map<string, JobView>();

  constructor(readonly max = MAX_REPORTED_ATTEMPTS) {}

  get size(): number {
    return this.views.size;
  }

  get(key: string): JobView | undefined {
    return this.views.get(key);
  }

  set(key: string, view: JobView): void {
    this.views.delete(key);
    while (this.views.size >= this.max) {
      const oldest = this.views.keys().next();
      if (oldest.done === true) break;
      this.views.delete(oldest.value);
    }
    this.views.set(key, view);
  }

  values(): IterableIterator<JobView> {
    return this.views.values();
  }
}
