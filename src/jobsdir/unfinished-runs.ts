// The unfinished jobs of each job definition on each slave, kept as the
// store's jobs change, for the overlap policy (forbid, replace) that every
// new run asks about. Asking the whole job map instead cost O(jobs) a run:
// submitting 10,000 runs took half a second of the master's time in it.
// Pure: the store feeds it.

import { type Job, isFinished } from "./job.js";

function runKey(definition: string, slave: string): string {
  // NUL is in neither name: definitions are INI section names, slaves host names.
  return `${definition}\u0000${slave}`;
}

export class UnfinishedRuns {
  private readonly byRun = new Map<string, Map<number, Job>>();

  /** Takes `job`'s new version: kept while unfinished, dropped once finished. */
  put(job: Job): void {
    const key = runKey(job.definition, job.slave);
    let jobs = this.byRun.get(key);
    if (isFinished(job.state)) {
      if (jobs?.delete(job.id) === true && jobs.size === 0) this.byRun.delete(key);
      return;
    }
    if (jobs === undefined) {
      jobs = new Map();
      this.byRun.set(key, jobs);
    }
    jobs.set(job.id, job);
  }

  /** The unfinished jobs of `definition` on `slave`, in ascending id order. */
  of(definition: string, slave: string): Job[] {
    const jobs = this.byRun.get(runKey(definition, slave));
    if (jobs === undefined) return [];
    return [...jobs.values()].sort((a, b) => a.id - b.id);
  }
}
