// Many slaves in one process, for a benchmark: each is the slave daemon's
// own session code (MasterLink: TLS, realm-key authentication, the pinned
// master certificate, registration, heartbeats, the jittered reconnect
// backoff) over a real JobRunner and state directory, put together as
// src/slave/slave.ts does, without the process around them. A real
// abs-slave costs some 60-130 MB; a thousand do not fit on a small machine,
// and the session code is what a failover exercises.
//
// Each slave dials from its own loopback address (127.10.x.y): a thousand
// hosts have a thousand addresses, and the master counts failed attempts,
// and blocks, per address (src/auth/rate-limit.ts).
//
// Jobs: the runner's method is a stand-in for a long backup, running until
// it is stopped (no process, no files), so a dispatched job stays
// `running` and the slave reports it at every registration.
//
// A slave's registrations are seen through its logger: MasterLink logs
// "registered with master ..." when the master's `registered` arrives, the
// line an admin (and the repoint bench) reads from a real abs-slave.

import { mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import type { Logger } from "../src/log.js";
import { JobRunner } from "../src/slave/job-runner.js";
import { MasterLink } from "../src/slave/master-link.js";
import {
  type MethodContext,
  type MethodResult,
  canceledError,
} from "../src/slave/methods/method-context.js";
import { StateDir } from "../src/slave/state-dir.js";
import { loadRealmKey } from "../src/auth/realm-key.js";
import { writeSlaveKey } from "../src/auth/slave-key.js";
import { inFlight } from "./report.js";

export interface FleetMaster {
  host: string;
  port: number;
  /**
   * The master's realm key file: each fleet slave gets its own key from it
   * (as `abs keygen --slave` makes), read at every connection as abs-slave does.
   */
  keyFile: string;
  /** The master's certificate fingerprint (master_fingerprint). */
  fingerprint: string;
}

export interface FleetOptions {
  count: number;
  /** The directory the slaves' state directories are made in. */
  root: string;
  master: FleetMaster;
}

/** One slave of the fleet and what its logger saw. */
export interface FleetSlave {
  name: string;
  localAddress: string;
  link: MasterLink;
  runner: JobRunner;
  stateDir: StateDir;
  /** performance.now() of each registration. */
  registrations: number[];
  /** Jobs the stand-in method runs now. */
  running: number;
  /** Attempts to reach a master that failed (refused, timed out, closed before registering). */
  failedAttempts: number;
  /** The last warning or error the slave logged. */
  lastWarning: string;
}

/** The i-th slave's name: s0000, s0001, ... */
export function fleetName(i: number): string {
  return `s${String(i).padStart(4, "0")}`;
}

/** The i-th slave's loopback address: 127.10.0.1 ... 127.10.0.250, 127.10.1.1, ... */
export function fleetAddress(i: number): string {
  return `127.10.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

/** slave.conf's defaults: max_jobs and heartbeat_interval. */
const MAX_JOBS = 2;
const HEARTBEAT_MS = 10_000;

/** Called with a slave that registered or started or ended a job. */
type Watcher = (slave: FleetSlave) => void;

export class SlaveFleet {
  readonly slaves: FleetSlave[] = [];
  private readonly watchers = new Set<Watcher>();
  private stopped: Promise<void> | null = null;

  /** Opens the state directories and builds the links; none dials before start(). */
  static async open(opts: FleetOptions): Promise<SlaveFleet> {
    const fleet = new SlaveFleet();
    const made: FleetSlave[] = [];
    const failed: { error?: Error } = {};
    // No task rejects, so every lane has finished when inFlight resolves.
    await inFlight(opts.count, 16, async (i) => {
      if (failed.error !== undefined) return;
      try {
        made[i] = await fleet.make(i, opts);
      } catch (err) {
        failed.error ??= err instanceof Error ? err : new Error(String(err));
      }
    });
    fleet.slaves.push(...made.filter((s) => s !== undefined));
    if (failed.error !== undefined) {
      await fleet.stop();
      throw failed.error;
    }
    return fleet;
  }

  start(): void {
    for (const s of this.slaves) s.link.start();
  }

  /**
   * Resolves when every slave has registered at or after `since`
   * (performance.now()), with each one's first such registration, in fleet
   * order; rejects after `timeoutMs` saying how many have not and what the
   * first of those last logged.
   */
  registeredSince(since: number, timeoutMs: number): Promise<number[]> {
    return this.waitFor(`registered`, timeoutMs, (s) => s.registrations.find((t) => t >= since));
  }

  /** Resolves when every slave runs `jobs` jobs. */
  async running(jobs: number, timeoutMs: number): Promise<void> {
    await this.waitFor(`running ${jobs} job(s)`, timeoutMs, (s) =>
      s.running === jobs ? 0 : undefined,
    );
  }

  /**
   * Stops as abs-slave does (the jobs, recorded as failed; the sessions;
   * the state directories). Once: later calls wait for the first.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      await Promise.all(this.slaves.map((s) => s.runner.stopAll("the benchmark is over")));
      await Promise.all(this.slaves.map((s) => s.link.stop()));
      await Promise.all(this.slaves.map((s) => s.stateDir.close().catch(() => undefined)));
    })();
    return this.stopped;
  }

  /**
   * Resolves with `value(s)` for every slave once none is undefined. Each
   * event checks only the slave it is about: a scan of all of them per
   * event would cost the bench a million steps while it measures.
   */
  private waitFor<T>(
    what: string,
    timeoutMs: number,
    value: (s: FleetSlave) => T | undefined,
  ): Promise<T[]> {
    return new Promise((resolve, reject) => {
      const got = new Map<FleetSlave, T>();
      const note: Watcher = (s) => {
        if (got.has(s)) return;
        const v = value(s);
        if (v === undefined) return;
        got.set(s, v);
        if (got.size < this.slaves.length) return;
        done();
        resolve(this.slaves.map((x) => got.get(x) as T));
      };
      const timer = setTimeout(() => {
        done();
        const missing = this.slaves.filter((s) => !got.has(s));
        const first = missing[0];
        reject(
          new Error(
            `${missing.length} of ${this.slaves.length} slaves not ${what} within ${timeoutMs} ms` +
              (first === undefined
                ? ""
                : `; ${first.name} (${first.link.state}) last said: ${first.lastWarning || "nothing amiss"}`),
          ),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.watchers.delete(note);
      };
      this.watchers.add(note);
      for (const s of this.slaves) note(s);
      if (this.slaves.length === 0) {
        done();
        resolve([]);
      }
    });
  }

  private changed(s: FleetSlave): void {
    for (const w of [...this.watchers]) w(s);
  }

  private async make(i: number, opts: FleetOptions): Promise<FleetSlave> {
    const name = fleetName(i);
    const dir = path.join(opts.root, name);
    await mkdir(dir);
    // The logger and the method need the slave; the slave needs what they make.
    const late: { slave?: FleetSlave } = {};
    // MasterLink logs a repeated failure at debug level after the first time.
    const failed = (message: string): void => {
      if (late.slave === undefined) return;
      if (/^(cannot reach the master|the master at \S+ closed before registering)/.test(message)) {
        late.slave.failedAttempts += 1;
      }
    };
    const warn = (message: string): void => {
      failed(message);
      if (late.slave !== undefined) late.slave.lastWarning = message;
    };
    const logger: Logger = {
      debug: failed,
      info: (message) => {
        if (late.slave === undefined || !message.startsWith("registered with master ")) return;
        late.slave.registrations.push(performance.now());
        this.changed(late.slave);
      },
      warn,
      error: warn,
    };
    const backup = async (_m: string, _p: unknown, ctx: MethodContext): Promise<MethodResult> => {
      const s = late.slave as FleetSlave;
      s.running += 1;
      this.changed(s);
      try {
        await new Promise<void>((resolve) => {
          if (ctx.signal.aborted) resolve();
          else ctx.signal.addEventListener("abort", () => resolve(), { once: true });
        });
      } finally {
        s.running -= 1;
      }
      throw canceledError(ctx.signal, "the benchmark's job");
    };
    const { stateDir, contents } = await StateDir.open(dir, { logger });
    const runner = new JobRunner({
      name,
      stateDir,
      logger,
      limits: {
        maxJobs: MAX_JOBS,
        allowedPaths: [],
        // nightly's /bin/true, which the stand-in method does not run.
        allowedToRun: { methods: ["command"], programs: ["/bin/true"], file: "(the fleet)" },
      },
      workDir: dir,
      run: backup,
    });
    try {
      await runner.recover(contents);
    } catch (err) {
      await stateDir.close();
      throw err;
    }
    const { master } = opts;
    const keyFile = path.join(dir, "slave.key");
    if (!existsSync(keyFile))
      await writeSlaveKey(await loadRealmKey(master.keyFile), name, keyFile);
    const localAddress = fleetAddress(i);
    const link = new MasterLink({
      // As targetOf(config) in src/slave/slave.ts for a realm-key slave with
      // master_fingerprint, plus its own local address.
      target: {
        host: master.host,
        port: master.port,
        name,
        auth: { mode: "realm-key", keyFile },
        tls: { pin: master.fingerprint },
        localAddress,
      },
      runner,
      logger,
      maxJobs: () => MAX_JOBS,
      heartbeatMs: () => HEARTBEAT_MS,
    });
    late.slave = {
      name,
      localAddress,
      link,
      runner,
      stateDir,
      registrations: [],
      running: 0,
      failedAttempts: 0,
      lastWarning: "",
    };
    return late.slave;
  }
}
