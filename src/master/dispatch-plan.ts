// Which queued jobs go to which slave now, and why the others wait. Pure:
// the dispatcher feeds it the queue and the slaves' loads and carries out
// the plan.
//
// Order: higher priority first, then first in, first out (lower id). A job
// that cannot go does not block lower-priority jobs bound for other slaves.

import type { Job } from "../jobsdir/job.js";

export interface SlaveLoad {
  name: string;
  connected: boolean;
  /** Jobs it may run at once (its own limit, or the master's default). */
  maxJobs: number;
  /** Jobs dispatched to it and not finished. */
  active: number;
}

export interface DispatchInput {
  /** Queued jobs, any order. */
  queued: readonly Job[];
  slaves: ReadonlyMap<string, SlaveLoad>;
  /** Jobs the master runs at once across all slaves. */
  globalMax: number;
  globalActive: number;
}

export interface DispatchPlan {
  /** In the order they should be sent. */
  dispatch: { job: Job; slave: string }[];
  /** Why each job not dispatched waits, by job id. */
  waits: Map<number, string>;
}

export function byPriorityThenId(a: Job, b: Job): number {
  return b.priority - a.priority || a.id - b.id;
}

export function planDispatch(input: DispatchInput): DispatchPlan {
  const active = new Map<string, number>();
  for (const [name, load] of input.slaves) active.set(name, load.active);
  let globalActive = input.globalActive;
  const plan: DispatchPlan = { dispatch: [], waits: new Map() };

  for (const job of [...input.queued].sort(byPriorityThenId)) {
    const slave = input.slaves.get(job.slave);
    if (slave === undefined || !slave.connected) {
      plan.waits.set(job.id, `waiting for slave ${job.slave} to connect`);
      continue;
    }
    const running = active.get(slave.name) ?? 0;
    if (running >= slave.maxJobs) {
      plan.waits.set(job.id, `slave ${slave.name} at its limit ${running}/${slave.maxJobs}`);
      continue;
    }
    if (globalActive >= input.globalMax) {
      plan.waits.set(job.id, `master at its limit of ${input.globalMax} running jobs`);
      continue;
    }
    plan.dispatch.push({ job, slave: slave.name });
    active.set(slave.name, running + 1);
    globalActive += 1;
  }
  return plan;
}
