// npm run bench -- jobsdir
//
// 1. jobsdir.load: JobStore.open over 100,000 job files, against a baseline
//    that only reads and JSON.parses the same files, the same way (readdir,
//    then synchronous reads), in the same run.
// 2. jobsdir.submit: durable submissions per second with many in flight,
//    against bare temp+fsync+rename+fsync-dir writes of the same size, with
//    as many in flight.
// 3. jobsdir.rss: peak RSS of a process that has loaded the 100,000 jobs.

import { execFileSync } from "node:child_process";
import {
  promises as fsp,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Job, type NewJob, NO_POLICY } from "../src/jobsdir/job.js";
import { serializeJob } from "../src/jobsdir/job-file.js";
import { JobStore } from "../src/jobsdir/job-store.js";
import { inFlight, median, report, round } from "./report.js";

const LOAD_JOBS = Number(process.env.ABS_BENCH_JOBS ?? 100_000);
const LOAD_ROUNDS = 3;
const SUBMISSIONS = 3000;
const IN_FLIGHT = 64;
const SUBMIT_ROUNDS = 3;

/** A finished job as the master leaves it: a handful of log lines, a result. */
export function sampleJob(id: number): Job {
  const t0 = 1_700_000_000_000 + id * 60_000;
  return {
    id,
    definition: `home-${id % 50}`,
    slave: `host-${id % 100}.example.org`,
    method: "tar",
    params: {
      sources: ["/home", "/etc"],
      exclude: ["*.tmp", ".cache"],
      level: id % 7 === 0 ? "full" : "incremental",
      gzip: true,
    },
    state: "succeeded",
    priority: id % 3,
    attempt: 1,
    timestamps: {
      received: t0,
      dispatched: t0 + 10,
      started: t0 + 50,
      ended: t0 + 30_000,
      notBefore: null,
    },
    progress: { files: 1234, bytes: 56_789_012, path: null },
    result: {
      message: "1234 files, 54.2 MiB",
      data: { archive: `/backup/home-${id}.tar.gz`, files: 1234, bytes: 56_789_012 },
    },
    policy: NO_POLICY,
    log: [
      {
        serial: 1,
        time: t0,
        level: "info",
        message: `received: home-${id % 50} on host-${id % 100}.example.org`,
      },
      { serial: 2, time: t0 + 10, level: "info", message: "dispatched" },
      { serial: 3, time: t0 + 50, level: "info", message: "started" },
      { serial: 4, time: t0 + 30_000, level: "info", message: "succeeded: 1234 files, 54.2 MiB" },
    ],
    serial: 12,
  };
}

export function makeJobsDir(dir: string, count: number, jobAt = sampleJob): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "version"), "1\n");
  writeFileSync(path.join(dir, "serial"), `${count}\n`);
  for (let id = 1; id <= count; id++) {
    writeFileSync(path.join(dir, `job-${id}.json`), serializeJob(jobAt(id)));
  }
}

/** The baseline: read and JSON.parse every job file, nothing else, as the store reads them. */
async function readAndParse(dir: string): Promise<number> {
  const names = (await fsp.readdir(dir)).filter((n) => n.startsWith("job-"));
  let parsed = 0;
  for (const name of names) {
    const value: unknown = JSON.parse(readFileSync(path.join(dir, name), "utf8"));
    if (value !== null) parsed += 1;
  }
  return parsed;
}

async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function benchLoad(dir: string): Promise<void> {
  const ours: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < LOAD_ROUNDS; i++) {
    base.push(await timeIt(() => readAndParse(dir)));
    ours.push(
      await timeIt(async () => {
        const store = await JobStore.open({ dir });
        if (store.size !== LOAD_JOBS)
          throw new Error(`loaded ${store.size} jobs, expected ${LOAD_JOBS}`);
        await store.close();
      }),
    );
  }
  const value = median(ours);
  const baseline = median(base);
  report({
    bench: "jobsdir.load",
    value: round(value, 1),
    unit: "ms",
    baseline: round(baseline, 1),
    ratio: round(value / baseline),
    target: "ratio <= 1.5",
    jobs: LOAD_JOBS,
    rounds: LOAD_ROUNDS,
  });
}

function benchRss(dir: string): void {
  const helper = fileURLToPath(new URL("./jobsdir-rss.js", import.meta.url));
  const out = execFileSync(process.execPath, [helper, dir], { encoding: "utf8" });
  const { maxRssKiB, jobs } = JSON.parse(out) as { maxRssKiB: number; jobs: number };
  report({
    bench: "jobsdir.rss",
    value: round(maxRssKiB / 1024, 1),
    unit: "MB",
    target: "<= 300 MB",
    jobs,
  });
}

const SPEC: NewJob = {
  definition: "home-1",
  slave: "host-1.example.org",
  method: "tar",
  params: {
    sources: ["/home", "/etc"],
    exclude: ["*.tmp", ".cache"],
    level: "incremental",
    gzip: true,
  },
  priority: 1,
};

/** The baseline: the bare durable write of one file, done the textbook way. */
async function bareWrite(dir: string, name: string, data: string): Promise<void> {
  const temp = path.join(dir, `.tmp-${name}`);
  const handle = await fsp.open(temp, "wx");
  await handle.writeFile(data);
  await handle.sync();
  await handle.close();
  await fsp.rename(temp, path.join(dir, name));
  const d = await fsp.open(dir, "r");
  await d.sync();
  await d.close();
}

async function benchSubmit(root: string): Promise<void> {
  const size = serializeJob({
    ...sampleJob(1),
    ...SPEC,
    state: "queued",
    log: [sampleJob(1).log[0]],
  }).length;
  const data = "x".repeat(size - 1) + "\n";

  // Alternate the two, a few rounds, and take medians: fsync times on a
  // shared machine drift from one second to the next.
  const baseRuns: number[] = [];
  const ourRuns: number[] = [];
  for (let r = 0; r < SUBMIT_ROUNDS; r++) {
    const baseDir = path.join(root, `bare-${r}`);
    mkdirSync(baseDir);
    baseRuns.push(
      await timeIt(() =>
        inFlight(SUBMISSIONS, IN_FLIGHT, (i) => bareWrite(baseDir, `job-${i + 1}.json`, data)),
      ),
    );
    const store = await JobStore.open({
      dir: path.join(root, `store-${r}`),
      maxJobs: SUBMISSIONS + 1,
    });
    ourRuns.push(await timeIt(() => inFlight(SUBMISSIONS, IN_FLIGHT, () => store.submit(SPEC))));
    await store.close();
  }
  const baseMs = median(baseRuns);
  const oursMs = median(ourRuns);
  const value = SUBMISSIONS / (oursMs / 1000);
  const baseline = SUBMISSIONS / (baseMs / 1000);
  report({
    bench: "jobsdir.submit",
    value: round(value, 0),
    unit: "jobs/s",
    baseline: round(baseline, 0),
    ratio: round(value / baseline),
    target: "ratio >= 1.0",
    submissions: SUBMISSIONS,
    rounds: SUBMIT_ROUNDS,
    inFlight: IN_FLIGHT,
    bytesPerJob: size,
  });
}

export async function runJobsDirBench(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), "abs-bench-jobsdir-"));
  try {
    const dir = path.join(root, "jobs");
    makeJobsDir(dir, LOAD_JOBS);
    await benchLoad(dir);
    benchRss(dir);
    await benchSubmit(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
