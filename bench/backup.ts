// npm run bench -- backup
//
// A real abs-master and a real abs-slave (processes, loopback, realm key)
// and a tree of 10,000 files of 4 KiB plus 8 files of 64 MiB (552 MB).
//
// 1. backup.full: a full tar backup of the tree, from `run` (submission) to
//    the result written in the jobs directory (the job's `watch` wakes only
//    once the change is durable). Baseline, same run, alternating with it:
//    GNU `tar -cf` of the same tree into the same file system. GNU tar does
//    not fsync its archive; ABS does (a backup reported done must survive a
//    crash), and that cost is in the figure. Median of ROUNDS each. For
//    scale, the same line gives GNU tar followed by an fsync of its archive
//    (`durableBaseline`): what the same guarantee costs GNU tar here.
// 2. backup.incremental: an incremental of the same tree with nothing
//    changed, against the full's median: the ratio is the target.
// 3. backup.rss: the slave process's peak resident memory (VmHWM) over all
//    of the above.
//
// The page cache is warmed by one GNU tar run first, so both sides read
// from memory, as a nightly backup of a hot tree would.

import {
  closeSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
} from "node:fs";
import { spawnSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { runDefinition, waitForState } from "../test/helpers/admin-wait.js";
import { MasterProcess } from "../test/helpers/master-process.js";
import { SlaveProcess } from "../test/helpers/slave-process.js";
import { gnuTarBaseline, makeBackupTree } from "./backup-tree.js";
import { median, report, round } from "./report.js";
import { Teardowns } from "./teardowns.js";

const ROUNDS = 5;

function definition(name: string, tree: string, destination: string, level: string): string {
  return [
    `[job ${name}]`,
    "slave = bench",
    "method = tar",
    `tar.sources = ${tree}`,
    `tar.destination = ${destination}`,
    `tar.level = ${level}`,
    "",
  ].join("\n");
}

/** Milliseconds from `run` of `name` to its result written; fails if the job does not succeed. */
async function timedRun(m: MasterProcess, name: string): Promise<number> {
  const start = process.hrtime.bigint();
  const [id] = await runDefinition(m, name);
  await waitForState(m, id, "succeeded", 600_000);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** The peak resident set of process `pid`, in MB (Linux VmHWM). */
function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (kb === null) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(kb[1]) / 1024;
}

/** Milliseconds an fsync of `file` takes (its data written back to disk). */
function fsyncMs(file: string): number {
  const start = process.hrtime.bigint();
  const fd = openSync(file, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function emptyDir(dir: string): void {
  for (const n of readdirSync(dir)) rmSync(path.join(dir, n), { recursive: true, force: true });
}

/**
 * Waits until the file system holding `dir` has written back everything,
 * the removal of the previous run's archive included (on a file system
 * mounted with `discard`, a TRIM of 552 MB at the next journal commit, which
 * the next fsync would wait for). Every timed run, GNU tar's and ours,
 * starts after one.
 */
function quiesce(dir: string): void {
  const r = spawnSync("sync", ["-f", dir], {
    stdio: ["ignore", "ignore", "pipe"],
    encoding: "utf8",
  });
  if (r.status !== 0) {
    throw new Error(`sync -f ${dir}: exit ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  }
}

export async function runBackupBench(): Promise<void> {
  const td = new Teardowns();
  try {
    const root = mkdtempSync(path.join(os.tmpdir(), "abs-bench-backup-"));
    td.teardown(() => rmSync(root, { recursive: true, force: true }));
    const tree = path.join(root, "tree");
    const { files, bytes } = await makeBackupTree(tree);
    const fullDest = path.join(root, "full");
    const incrDest = path.join(root, "incr");
    const gnuOut = path.join(root, "gnu.tar");

    const m = await MasterProcess.start(td, {
      jobs:
        definition("full", tree, fullDest, "full") +
        definition("incr", tree, incrDest, "incremental"),
    });
    const s = await SlaveProcess.start(td, {
      master: m,
      name: "bench",
      allowedPaths: root,
      extra: "max_jobs: 1",
    });
    const pid = s.pid;
    if (pid === undefined) throw new Error("the slave has no pid");

    await gnuTarBaseline(tree, gnuOut); // warms the page cache
    rmSync(gnuOut);
    const ours: number[] = [];
    const gnu: number[] = [];
    const gnuDurable: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      quiesce(root);
      const tarMs = await gnuTarBaseline(tree, gnuOut);
      gnu.push(tarMs);
      gnuDurable.push(tarMs + fsyncMs(gnuOut));
      rmSync(gnuOut);
      quiesce(root);
      ours.push(await timedRun(m, "full"));
      emptyDir(fullDest);
    }
    const full = median(ours);
    const baseline = median(gnu);
    report({
      bench: "backup.full",
      value: round(full, 1),
      unit: "ms",
      baseline: round(baseline, 1),
      ratio: round(full / baseline),
      target: "ratio <= 1.5",
      durableBaseline: round(median(gnuDurable), 1),
      durableRatio: round(full / median(gnuDurable)),
      files,
      bytes,
      rounds: ROUNDS,
      samples: ours.map((v) => round(v, 1)),
      baselineSamples: gnu.map((v) => round(v, 1)),
    });

    await timedRun(m, "incr"); // the chain's first backup is a full
    const incr: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      quiesce(root);
      incr.push(await timedRun(m, "incr"));
    }
    const incremental = median(incr);
    report({
      bench: "backup.incremental",
      value: round(incremental, 1),
      unit: "ms",
      baseline: round(full, 1),
      ratio: round(incremental / full),
      target: "ratio <= 0.1 (nothing changed, against the full)",
      rounds: ROUNDS,
      samples: incr.map((v) => round(v, 1)),
    });

    report({
      bench: "backup.rss",
      value: round(peakRssMb(pid), 1),
      unit: "MB",
      target: "<= 150 MB",
      what: "peak resident set (VmHWM) of the abs-slave process over all the backups above",
    });
    await s.stop();
    await m.stop();
  } finally {
    await td.run();
  }
}
