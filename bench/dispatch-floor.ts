// The dispatch benchmark's baseline and floor, run as its own process by
// bench/dispatch.ts so that it has abs-master's number of I/O threads
// (UV_THREADPOOL_SIZE, which a process reads once, before its first module's
// code runs):
//
//   node dist/bench/dispatch-floor.js DIR JOBS IN_FLIGHT SLAVES CHANGES
//
// JOBS jobs straight on a JobStore in DIR, IN_FLIGHT at a time, each with
// CHANGES durable changes, each awaited. Prints the jobs per second.
//   4: the changes of a job's life (submit, dispatched, running, succeeded),
//      as a naive master would write them: the baseline.
//   2: submit and dispatched: as many durable file writes per job as the
//      master makes after merging, and nothing else (no link, no
//      dispatcher): the floor the jobs directory's file system sets.

import { JobStore } from "../src/jobsdir/job-store.js";
import { inFlight } from "./report.js";

async function floor(
  dir: string,
  total: number,
  concurrency: number,
  slaves: number,
  changes: 2 | 4,
): Promise<number> {
  const store = await JobStore.open({ dir, maxJobs: total + 1 });
  const start = process.hrtime.bigint();
  await inFlight(total, concurrency, async (i) => {
    const job = await store.submit({
      definition: "noop",
      slave: `s${String(i % slaves).padStart(3, "0")}`,
      method: "command",
      params: { program: "/bin/true", args: [], env: {}, cwd: null, shell: false },
      priority: 0,
    });
    await store.transition(job.id, { to: "dispatched", now: Date.now(), message: "dispatched" });
    if (changes === 2) return;
    await store.transition(job.id, { to: "running", now: Date.now(), message: "started" });
    await store.transition(job.id, {
      to: "succeeded",
      now: Date.now(),
      message: "succeeded",
      result: { message: "no-op done", data: {} },
    });
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  await store.close();
  return total / (ms / 1000);
}

const [dir, jobs, concurrency, slaves, changes] = process.argv.slice(2);
if (changes !== "2" && changes !== "4") throw new Error(`CHANGES must be 2 or 4, not ${changes}`);
const perSecond = await floor(
  dir,
  Number(jobs),
  Number(concurrency),
  Number(slaves),
  Number(changes) as 2 | 4,
);
process.stdout.write(`${perSecond}\n`);
