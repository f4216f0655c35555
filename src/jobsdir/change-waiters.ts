// Who waits for a job to change (`abs watch`'s long poll): woken by the
// store with each durable version, or given up after their timeout.

import { isFinished, type Job } from "./job.js";

interface Waiter {
  lastSerial: number;
  resolve: (job: Job) => void;
}

export class ChangeWaiters {
  private readonly byJob = new Map<number, Set<Waiter>>();

  /**
   * Resolves with the job's first version whose serial is above
   * `lastSerial`, or that is finished; with "nochange" after `timeoutMs`.
   */
  wait(id: number, lastSerial: number, timeoutMs: number): Promise<Job | "nochange"> {
    return new Promise((resolve) => {
      let set = this.byJob.get(id);
      if (set === undefined) {
        set = new Set();
        this.byJob.set(id, set);
      }
      const waiters = set;
      const forget = (): void => {
        waiters.delete(waiter);
        if (waiters.size === 0) this.byJob.delete(id);
      };
      const waiter: Waiter = {
        lastSerial,
        resolve: (changed) => {
          clearTimeout(timer);
          forget();
          resolve(changed);
        },
      };
      const timer = setTimeout(() => {
        forget();
        resolve("nochange");
      }, timeoutMs);
      waiters.add(waiter);
    });
  }

  /** A new durable version of `job`: wakes those it is news to. */
  changed(job: Job): void {
    const set = this.byJob.get(job.id);
    if (set === undefined) return;
    for (const w of [...set]) {
      if (job.serial > w.lastSerial || isFinished(job.state)) w.resolve(job);
    }
  }

  /** Wakes everyone with the job as it is now (the store is closing). */
  wakeAll(current: (id: number) => Job | undefined): void {
    for (const [id, set] of this.byJob) {
      const job = current(id);
      for (const w of [...set]) if (job !== undefined) w.resolve(job);
    }
  }
}
