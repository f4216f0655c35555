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

/** What waitReason needs to know beyond the job itself. */
export interface WaitContext {
  now: number;
  slave: SlaveLoad | undefined;
  globalMax: number;
  globalActive: number;
  /** When an orphaned job's grace period ends. */
  orphanedUntil: number | undefined;
}

/**
 * Why a queued or orphaned job is not running, in words for `abs show jobs`;
 * null for jobs in other states. Computed when asked, never stored: the
 * reasons change with every dispatch and would churn the job files.
 */
export function waitReason(job: Job, ctx: WaitContext): string | null {
  if (job.state === "orphaned") {
    const until = ctx.orphanedUntil === undefined ? "" : ` until ${iso(ctx.orphanedUntil)}`;
    return `waiting${until} for slave ${job.slave} to report it`;
  }
  if (job.state !== "queued") return null;
  const { notBefore } = job.timestamps;
  if (notBefore !== null && notBefore > ctx.now) {
    return `retry backoff: attempt ${job.attempt} not before ${iso(notBefore)}`;
  }
  const slave = ctx.slave;
  if (slave === undefined || !slave.connected) return `waiting for slave ${job.slave} to connect`;
  if (slave.active >= slave.maxJobs) {
    return `slave ${slave.name} at its limit ${slave.active}/${slave.maxJobs}`;
  }
  if (ctx.globalActive >= ctx.globalMax) {
    return `master at its limit of ${ctx.globalMax} running jobs`;
  }
  return "about to be dispatched";
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
