// npm run bench -- dispatch
//
// A real abs-master process (port 0, temp dirs) and 100 test slaves in this
// process on the real, authenticated slave link. The slaves finish every job
// at once (no-op), so what is measured is the master: submission, dispatch,
// the started and result reports, each change written durably.
//
// 1. dispatch.throughput: 10,000 jobs (100 `run`s of a definition on all
//    100 slaves) from the first submission until the last result is written
//    (the slave's `ack`, which the master sends only after the write).
//    Baseline, same run: the same four durable changes per job (submit,
//    dispatched, running, succeeded), each awaited, straight on a JobStore,
//    as many jobs in flight, in a process of its own with abs-master's I/O
//    threads (bench/dispatch-floor.ts). The master does better by merging
//    the changes it may merge (dispatch into the submission's write, a quick
//    job's start into its result's). Floor, same run, after the master: the
//    2 durable file writes per job that the master still makes (the new
//    job's file, then one replacement), with nothing else, the same way
//    (dispatch-floor.ts): what the jobs directory's file system allows, about
//    the most the master can reach on it. The line also says what that file
//    system is: on ext4 without a journal, creating files costs more the more
//    files were replaced recently (src/storage/file-system-journal.ts), and
//    the figures vary with it.
// 2. dispatch.latency: one job at a time on an idle master, `run` to `ack`,
//    200 times: median and p99.

import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { MASTER_IO_THREADS } from "../src/master/io-threads.cjs";
import { journalOf } from "../src/storage/file-system-journal.js";
import { TestSlave } from "../test/fixtures/test-slave.js";
import { MasterProcess } from "../test/helpers/master-process.js";
import { inFlight, median, report, round } from "./report.js";
import { Teardowns } from "./teardowns.js";

const SLAVES = 100;
const RUNS = 100; // x SLAVES jobs
const SLAVE_MAX_JOBS = 4;
const LATENCY_SAMPLES = 200;

function slaveName(i: number): string {
  return `s${String(i).padStart(3, "0")}`;
}

function definitions(): string {
  const all = Array.from({ length: SLAVES }, (_, i) => slaveName(i)).join(", ");
  const noop = (name: string, slaves: string): string =>
    [
      `[job ${name}]`,
      `slave = ${slaves}`,
      "method = command",
      "command.program = /bin/true",
      "overlap = allow",
      "",
    ].join("\n");
  return noop("noop", all) + noop("single", slaveName(0));
}

async function throughput(m: MasterProcess, slaves: TestSlave[]): Promise<number> {
  const total = RUNS * SLAVES;
  let acks = 0;
  let allDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (allDone = resolve));
  for (const s of slaves) {
    s.on("message", (msg) => {
      if (msg.type === "ack" && ++acks === total) allDone();
    });
  }
  const start = process.hrtime.bigint();
  await inFlight(RUNS, 4, () => m.call("run", { definition: "noop" }));
  await done;
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  for (const s of slaves) s.removeAllListeners("message");
  return total / (ms / 1000);
}

async function latency(m: MasterProcess, slave: TestSlave): Promise<number[]> {
  const acked = new Map<number, bigint>();
  const waiting = new Map<number, () => void>();
  slave.on("message", (msg) => {
    if (msg.type !== "ack") return;
    acked.set(msg.jobId, process.hrtime.bigint());
    waiting.get(msg.jobId)?.();
  });
  const samples: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const start = process.hrtime.bigint();
    const { jobs } = (await m.call("run", { definition: "single" })) as { jobs: number[] };
    const id = jobs[0];
    if (!acked.has(id)) await new Promise<void>((resolve) => waiting.set(id, resolve));
    samples.push(Number((acked.get(id) ?? start) - start) / 1e6);
  }
  return samples;
}

/** The baseline (changes = 4) or the floor (2), in jobs per second: see the header. */
function storeOnly(root: string, changes: 2 | 4): number {
  const out = execFileSync(
    process.execPath,
    [
      fileURLToPath(new URL("./dispatch-floor.js", import.meta.url)),
      path.join(root, `store-only-${changes}`),
      String(RUNS * SLAVES),
      String(SLAVES * SLAVE_MAX_JOBS),
      String(SLAVES),
      String(changes),
    ],
    { env: { ...process.env, UV_THREADPOOL_SIZE: String(MASTER_IO_THREADS) }, encoding: "utf8" },
  );
  return Number(out.trim());
}

/**
 * The jobs directory's file system, as far as it matters here: ext4 without
 * a journal creates files more slowly as files are replaced
 * (src/storage/file-system-journal.ts), which this figure shows.
 */
function fileSystemOf(dir: string): string {
  const state = journalOf(dir);
  if (state.kind === "unknown") return "not ext4, or unknown";
  return `ext4 ${state.kind === "none" ? "without" : "with"} a journal (${state.device})`;
}

function percentile(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

export async function runDispatchBench(): Promise<void> {
  const td = new Teardowns();
  const root = mkdtempSync(path.join(os.tmpdir(), "abs-bench-dispatch-"));
  td.teardown(() => rmSync(root, { recursive: true, force: true }));
  try {
    const m = await MasterProcess.start(td, {
      master: [
        `max_concurrent = ${SLAVES * SLAVE_MAX_JOBS}`,
        `default_slave_max_jobs = ${SLAVE_MAX_JOBS}`,
      ].join("\n"),
      jobs: definitions(),
    });
    const slaves: TestSlave[] = [];
    for (let i = 0; i < SLAVES; i++) {
      slaves.push(
        await TestSlave.connect({
          port: m.port,
          name: slaveName(i),
          realmKeyFile: m.keyFile,
          maxJobs: SLAVE_MAX_JOBS,
        }),
      );
    }
    td.teardown(() => slaves.forEach((s) => s.close()));

    const samples = await latency(m, slaves[0]);
    const value = await throughput(m, slaves);
    const floor = storeOnly(root, 2);
    const baseline = storeOnly(root, 4);
    report({
      bench: "dispatch.throughput",
      value: round(value, 0),
      unit: "jobs/s",
      baseline: round(baseline, 0),
      ratio: round(value / baseline),
      target: ">= 1000 jobs/s",
      jobs: RUNS * SLAVES,
      slaves: SLAVES,
      slaveMaxJobs: SLAVE_MAX_JOBS,
      baselineIs: `the same 4 durable changes per job on a JobStore, in a process with abs-master's ${MASTER_IO_THREADS} I/O threads`,
      floor: round(floor, 0),
      floorRatio: round(value / floor),
      floorIs:
        "2 durable changes per job on a JobStore (as many file writes as the master makes), nothing else, in a process with the same threads",
      fileSystem: fileSystemOf(m.jobsDir),
    });
    report({
      bench: "dispatch.latency",
      value: round(median(samples), 2),
      unit: "ms",
      p99: round(percentile(samples, 99), 2),
      target: "median <= 20 ms",
      samples: LATENCY_SAMPLES,
      from: "run request sent",
      to: "result written (ack at the slave)",
    });
    await m.stop();
  } finally {
    await td.run();
  }
}
