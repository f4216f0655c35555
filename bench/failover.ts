// npm run bench -- failover
//
// The two halves of a master move.
//
// 1. failover.disaster: 1,000 slaves registered with a real abs-master, each
//    running a job (the night's backups); the master is killed and the fake
//    master (abs-master --disaster, the same config and state directory, so
//    the same address, port and certificate) started in its place at once.
//    Measured: from the kill until all 1,000 slaves have re-authenticated
//    and re-registered with the fake master (each reporting its running job,
//    which the fake master appends to its disaster log and fsyncs before it
//    answers). Also: per-slave median and p99, the time the fake master took
//    to start listening, the time from then on, and the failed attempts the
//    slaves' backoff went through. The target is absolute (<= 10 s): there
//    is no same-run baseline to divide by.
//
//    SIGKILL, not SIGTERM: a disaster gives the master no clean stop (no
//    goodbye to the slaves, its jobs directory lock and pid file left
//    behind). The kernel still closes its sockets, so the slaves notice at
//    once; a master host that vanishes (power, network) closes nothing, and
//    its slaves would notice only after three heartbeat intervals of
//    silence (30 s by default), which is not measured here.
//
//    The slaves are the slave daemon's own session code, 1,000 of them in
//    this process (slave-fleet.ts), each from its own loopback address.
//    Their backoff is the product's (0.5 s doubling to 30 s, jittered): a
//    slave that finds nobody listening waits a step more, so a fake master
//    slower to come up costs more than its own start time (`failedAttempts`
//    counts those). On a 2-core machine the value is CPU-bound: the TLS
//    and registration work of both sides, with this event loop nearly
//    always busy (`benchEventLoop`). Child processes would not help, the
//    fake master needs the other core; and the slaves' share of that CPU is
//    spread over 1,000 hosts in real life, so the value is, if anything,
//    pessimistic.
//
// 2. failover.repoint: a real abs-slave registered with one real abs-master
//    has `master:` in its slave.conf edited to point at a second master, and
//    gets SIGHUP. Measured: from the signal to the slave's registration with
//    the new master (the bench sees the slave print it), ROUNDS times back
//    and forth between the two masters; median and worst.

import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { GENERATED_CERT_FILE } from "../src/auth/tls.js";
import { freeLoopbackPort } from "../src/free-port.js";
import { DISASTER_LOG_FILE } from "../src/master/fake-master.js";
import { MasterProcess } from "../test/helpers/master-process.js";
import { SlaveProcess } from "../test/helpers/slave-process.js";
import { median, report, round } from "./report.js";
import { SlaveFleet, fleetName } from "./slave-fleet.js";
import { Teardowns } from "./teardowns.js";

const ROUNDS = 10;
const SLAVES = 1000;
/** Longest wait for any step of the disaster half (registrations, dispatch). */
const TIMEOUT_MS = 120_000;

export async function runFailoverBench(): Promise<void> {
  await disaster();
  await repoint();
}

async function disaster(): Promise<void> {
  checkOpenFileLimit(SLAVES);
  const td = new Teardowns();
  try {
    const root = mkdtempSync(path.join(os.tmpdir(), "abs-bench-failover-"));
    td.teardown(() => rmSync(root, { recursive: true, force: true }));
    // A fixed port: the fake master listens where the real one did.
    const m = await MasterProcess.start(td, {
      listen: `127.0.0.1:${await freeLoopbackPort()}`,
      master: `max_concurrent = ${SLAVES}`,
      jobs: nightly(),
    });
    const stateDir = path.join(m.dir, "state");
    const fingerprint = new X509Certificate(readFileSync(path.join(stateDir, GENERATED_CERT_FILE)))
      .fingerprint256;
    const fleet = await SlaveFleet.open({
      count: SLAVES,
      root,
      master: { host: "127.0.0.1", port: m.port, keyFile: m.keyFile, fingerprint },
    });
    td.teardown(() => fleet.stop());
    fleet.start();
    await fleet.registeredSince(0, TIMEOUT_MS);
    await m.call("run", { definition: "nightly" });
    await fleet.running(1, TIMEOUT_MS);

    const failedBefore = failedAttempts(fleet);
    const elu = performance.eventLoopUtilization();
    const stop = performance.now();
    m.signal("SIGKILL");
    await m.exit();
    const exited = performance.now();
    const launched = m.launch(["--disaster"]); // spawns now, resolves once it serves
    await m.waitForOutput(/slave link listening on/);
    const listening = performance.now();
    await launched;
    const times = await fleet.registeredSince(stop, TIMEOUT_MS);
    const last = Math.max(...times);
    const busy = performance.eventLoopUtilization(elu).utilization;

    // What the fake master holds: every slave connected, every running job
    // on disk in the disaster log.
    const status = (await m.call("status")) as { slavesConnected?: number };
    if (status.slavesConnected !== SLAVES) {
      throw new Error(
        `the fake master counts ${String(status.slavesConnected)} slaves connected, not ${SLAVES}`,
      );
    }
    const logged = readFileSync(path.join(stateDir, DISASTER_LOG_FILE), "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as { report?: string; slave?: string });
    const reporting = new Set(logged.filter((r) => r.report === "running").map((r) => r.slave));
    if (reporting.size !== SLAVES) {
      throw new Error(
        `the disaster log has running jobs of ${reporting.size} slaves, not ${SLAVES}`,
      );
    }

    const fromStop = times.map((t) => t - stop);
    report({
      bench: "failover.disaster",
      value: round(last - stop, 1),
      unit: "ms",
      target: `<= 10000 ms from the master's stop until all ${SLAVES} slaves have re-registered with the fake master (absolute: no baseline)`,
      slaves: SLAVES,
      stop: "SIGKILL",
      median: round(median(fromStop), 1),
      p99: round(percentile(fromStop, 99), 1),
      exitMs: round(exited - stop, 1),
      fakeStartMs: round(listening - exited, 1),
      fromListeningMs: round(last - listening, 1),
      failedAttempts: failedAttempts(fleet) - failedBefore,
      disasterLogRecords: logged.length,
      benchEventLoop: round(busy, 2),
      from: "SIGKILL of the real master",
      to: `the last of the ${SLAVES} slaves registered with the fake master`,
    });
    await fleet.stop();
    await m.stop();
  } finally {
    await td.run();
  }
}

/** One job definition on every slave of the fleet (its method is the fleet's stand-in). */
function nightly(): string {
  const names = Array.from({ length: SLAVES }, (_, i) => fleetName(i)).join(", ");
  return [
    "[job nightly]",
    `slave = ${names}`,
    "method = command",
    "command.program = /bin/true",
    "",
  ].join("\n");
}

function failedAttempts(fleet: SlaveFleet): number {
  return fleet.slaves.reduce((n, s) => n + s.failedAttempts, 0);
}

function percentile(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

/**
 * Throws, saying what to do, when this process may not open a socket per
 * slave (and some to spare). Node raises its soft limit to the hard one at
 * startup, so what /proc shows is all there is; the fake master, a child,
 * inherits the same. Where /proc is missing the check is skipped.
 */
function checkOpenFileLimit(slaves: number): void {
  let text: string;
  try {
    text = readFileSync("/proc/self/limits", "utf8");
  } catch {
    return;
  }
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
  if (m === null || m[1] === "unlimited") return;
  const need = slaves + 256;
  if (Number(m[1]) < need) {
    throw new Error(
      `failover.disaster needs ${need} open files (a socket per slave, on each side); this process may open ${m[1]}: raise the limit (ulimit -n ${need}) and run again`,
    );
  }
}

async function repoint(): Promise<void> {
  const td = new Teardowns();
  try {
    const a = await MasterProcess.start(td);
    const b = await MasterProcess.prepare(td);
    copyFileSync(a.keyFile, b.keyFile); // one realm
    await b.launch();
    const s = await SlaveProcess.start(td, { master: a, programs: ["/bin/true"] });
    const samples: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const to = r % 2 === 0 ? b : a;
      s.writeConfig({ master: to, programs: ["/bin/true"] });
      const from = s.log.length;
      const start = process.hrtime.bigint();
      s.signal("SIGHUP");
      await s.waitForOutput(
        new RegExp(`registered with master \\S+ at 127\\.0\\.0\\.1:${to.port}:`),
        30_000,
        from,
      );
      samples.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    report({
      bench: "failover.repoint",
      value: round(median(samples), 1),
      unit: "ms",
      target: "<= 1000 ms from SIGHUP to registration with the new master",
      worst: round(Math.max(...samples), 1),
      rounds: ROUNDS,
      samples: samples.map((v) => round(v, 1)),
    });
    await s.stop();
    await a.stop();
    await b.stop();
  } finally {
    await td.run();
  }
}
