// Selecting jobs: by state, slave, definition and id range, with a limit.
// Pure: works on any iterable of jobs in id order.

import { BadArgumentError } from "../errors.js";
import type { Job, JobState } from "./job.js";

export interface JobQuery {
  /** Only jobs in one of these states. */
  states?: readonly JobState[];
  slave?: string;
  definition?: string;
  /** Lowest id, inclusive. */
  fromId?: number;
  /** Highest id, inclusive. */
  toId?: number;
  /** At most this many jobs; with `newest`, the last ones. */
  limit?: number;
  /** With a limit, keep the highest ids instead of the lowest. */
  newest?: boolean;
}

export function checkQuery(q: JobQuery): void {
  for (const key of ["fromId", "toId", "limit"] as const) {
    const v = q[key];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) {
      throw new BadArgumentError(`${key} must be a whole number >= 0, got ${String(v)}`, key);
    }
  }
}

export function matchesQuery(job: Job, q: JobQuery): boolean {
  if (q.states !== undefined && !q.states.includes(job.state)) return false;
  if (q.slave !== undefined && job.slave !== q.slave) return false;
  if (q.definition !== undefined && job.definition !== q.definition) return false;
  if (q.fromId !== undefined && job.id < q.fromId) return false;
  if (q.toId !== undefined && job.id > q.toId) return false;
  return true;
}

/** The jobs of `jobs` (in ascending id order) that match `q`, in ascending id order. */
export function selectJobs(jobs: Iterable<Job>, q: JobQuery): Job[] {
  checkQuery(q);
  const out: Job[] = [];
  const limit = q.limit;
  for (const job of jobs) {
    if (!matchesQuery(job, q)) continue;
    out.push(job);
    // Oldest-first with a limit can stop early; newest-first must see them all.
    if (limit !== undefined && q.newest !== true && out.length >= limit) break;
  }
  if (limit !== undefined && q.newest === true && out.length > limit) {
    return out.slice(out.length - limit);
  }
  return out;
}
