// npm run bench -- startup
//
// A real abs-master process over a jobs directory of 100,000 jobs (99,000
// finished, 1,000 queued for slaves that are away), and the `abs` command.
//
// 1. startup.ready: from spawning abs-master until `show-jobs` answers on
//    the admin socket, median of 3 launches. Baseline, same run: JobStore.open
//    of the same directory in this process (reading every job is the floor).
// 2. startup.show-all-json: `abs show jobs --all --json` (a process, as an
//    admin runs it) over the 100,000 jobs, median of 3. Baseline: `abs
//    --help`, the cost of starting the command at all.
// 3. startup.show-filtered: `abs show jobs --slave host-7.example.org` (the
//    unfinished jobs of one slave), median of 5, same baseline.
// Both abs figures also give nodeAlone, `node -e ""` in the same environment:
// the part of them no code of ours can remove.

import { execFileSync, spawn } from "node:child_process";
import { closeSync, openSync, statSync } from "node:fs";
import path from "node:path";
import { adminCall } from "../src/admin-client.js";
import { AbsError } from "../src/errors.js";
import type { Job } from "../src/jobsdir/job.js";
import { JobStore } from "../src/jobsdir/job-store.js";
import { ABS_BIN, MasterProcess, runNode } from "../test/helpers/master-process.js";
import { makeJobsDir, sampleJob } from "./jobsdir.js";
import { median, report, round } from "./report.js";
import { Teardowns } from "./teardowns.js";

const JOBS = Number(process.env.ABS_BENCH_JOBS ?? 100_000);
/** Master launches over the same directory; startup.ready is their median. */
const LAUNCHES = 3;

/** About one job in a hundred (every 97th, spread over the slaves) is still queued; the others finished long ago. */
function jobAt(id: number): Job {
  const job = sampleJob(id);
  if (id % 97 !== 0) return job;
  return {
    ...job,
    state: "queued",
    timestamps: { ...job.timestamps, dispatched: null, started: null, ended: null },
    progress: null,
    result: null,
    log: job.log.slice(0, 1),
  };
}

async function ms(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Calls show-jobs until the master answers; resolves with the time since `start`. */
async function untilAnswered(socket: string, start: bigint): Promise<number> {
  for (;;) {
    try {
      await adminCall(socket, "show-jobs", {});
      return Number(process.hrtime.bigint() - start) / 1e6;
    } catch (err) {
      if (!(err instanceof AbsError && err.code === "UNREACHABLE")) throw err;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
}

/**
 * Runs `abs -s SOCKET ...args` with its output going to a file, as an admin
 * saving a listing would (a pipe into this process would time this
 * process's reading too); resolves with the wall time.
 */
async function absMs(m: MasterProcess, args: string[], expectBytes: number): Promise<number> {
  const out = path.join(m.dir, "abs-output");
  const fd = openSync(out, "w");
  let status: number | null = null;
  let stderr = "";
  const t = await ms(
    () =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, [ABS_BIN, "-s", m.socket, ...args], {
          stdio: ["ignore", fd, "pipe"],
        });
        child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
        child.once("error", reject);
        child.once("close", (code) => {
          status = code;
          resolve();
        });
      }),
  );
  closeSync(fd);
  if (status !== 0) throw new Error(`abs ${args.join(" ")}: status ${status}: ${stderr}`);
  const bytes = statSync(out).size;
  if (bytes < expectBytes) throw new Error(`abs ${args.join(" ")} printed only ${bytes} bytes`);
  return t;
}

export async function runStartupBench(): Promise<void> {
  const td = new Teardowns();
  try {
    const m = await MasterProcess.prepare(td);
    makeJobsDir(m.jobsDir, JOBS, jobAt);
    // Let the 100,000 new files reach the disk first: their writeback would
    // otherwise compete with whichever read comes first.
    execFileSync("sync");
    // Three rounds, the baseline first in each, so both find the files
    // equally cached; the medians are reported. Each launch reads the whole
    // directory again: nothing is kept between master processes.
    const loadMs: number[] = [];
    const readyMs: number[] = [];
    for (let round = 0; round < LAUNCHES; round++) {
      loadMs.push(
        await ms(async () => {
          const store = await JobStore.open({ dir: m.jobsDir });
          await store.close();
        }),
      );
      const start = process.hrtime.bigint();
      const launched = m.launch();
      readyMs.push(await untilAnswered(m.socket, start));
      await launched;
      if (round + 1 < LAUNCHES) await m.stop();
    }
    const load = median(loadMs);
    const ready = median(readyMs);

    const versionMs: number[] = [];
    for (let i = 0; i < 5; i++) versionMs.push(await ms(() => runNode([ABS_BIN, "--help"])));
    // What starting node alone costs here, for scale: with NODE_EXTRA_CA_CERTS
    // set (as on this machine), node reads and parses that file before any
    // code runs, some 50 ms of the figures below.
    const nodeMs: number[] = [];
    for (let i = 0; i < 5; i++) nodeMs.push(await ms(() => runNode(["-e", ""])));
    const allJson: number[] = [];
    for (let i = 0; i < 3; i++) {
      allJson.push(await absMs(m, ["show", "jobs", "--all", "--json"], JOBS * 100));
    }
    const filtered: number[] = [];
    for (let i = 0; i < 5; i++) {
      filtered.push(await absMs(m, ["show", "jobs", "--slave", "host-7.example.org"], 100));
    }
    await m.stop();

    report({
      bench: "startup.ready",
      value: round(ready, 1),
      unit: "ms",
      baseline: round(load, 1),
      ratio: round(ready / load),
      target: "<= 2000 ms",
      jobs: JOBS,
      launches: LAUNCHES,
      samples: readyMs.map((v) => round(v, 1)),
      baselineIs: "JobStore.open of the same directory in-process (median of as many)",
    });
    const version = median(versionMs);
    for (const [bench, values, target] of [
      ["startup.show-all-json", allJson, "<= 1000 ms"],
      ["startup.show-filtered", filtered, "<= 100 ms"],
    ] as const) {
      const value = median(values);
      report({
        bench,
        value: round(value, 1),
        unit: "ms",
        baseline: round(version, 1),
        ratio: round(value / version),
        target,
        jobs: JOBS,
        runs: values.length,
        baselineIs: "abs --help (starting the command)",
        nodeAlone: round(median(nodeMs), 1),
        extraCaCerts: (process.env.NODE_EXTRA_CA_CERTS ?? "") !== "",
      });
    }
  } finally {
    await td.run();
  }
}
