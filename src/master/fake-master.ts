// The fake master of disaster mode (`abs-master --disaster`), after the
// Athena Backup System's: while the real master and its jobs directory are
// unavailable, it accepts any slave authenticated in its realm and writes
// down what they report, so that no outcome is lost.
//
// - No jobs directory: nothing is read, locked or written there.
// - Any slave of the realm: the realm key, or any Kerberos principal of the
//   realm (allowed_principals does not apply); a principal still vouches
//   for the name it registers under, as on the real master.
// - Every record is written with a MAC under a key derived from the realm
//   key, or from disaster_log_key_file (auth/disaster-log-key.ts); without
//   one (Kerberos and no disaster_log_key_file) the fake master refuses to
//   start, since the import could not tell its records from forged ones.
// - It never answers "no such job": every report is taken, appended to the
//   disaster log (disaster-log.ts) and, for results, acknowledged once
//   fsynced. Running jobs are neither canceled nor reattached: they go on.
// - It dispatches nothing by itself: no schedule, no queue. An admin may
//   run a definition by hand (`abs run`) on a slave registered with it;
//   the dispatch goes out at once, logged first, under a job id far above
//   any the real master gives (disasterJobId), so that the import records
//   it as a job of its own and never mistakes it for one of the real
//   master's.
// - `abs status`, `abs show jobs` and `abs run` work; the other admin
//   methods answer that they need the real master. `abs show jobs` shows
//   the 100,000 attempts reported most recently (reported-jobs.ts): any
//   slave may report any job id here, and memory must stay bounded.

import { mkdir } from "node:fs/promises";
import path from "node:path";
import { loadDisasterLogKey } from "../auth/disaster-log-key.js";
import type { LinkServer } from "../auth/link-server.js";
import type { MasterSideConnection } from "../auth/link-connection.js";
import type { MasterConfig } from "../config/master-config.js";
import { AbsError, describeError } from "../errors.js";
import type { JobState } from "../jobsdir/job.js";
import type { Logger } from "../log.js";
import { ADMIN_METHODS, type JobView, type StatusResult } from "../protocol/admin-api.js";
import { methodParams } from "../config/job-definition.js";
import type { SlaveToMasterMessage } from "../protocol/slave-messages.js";
import { type AdminMethod, AdminServer, bindAdminHandlers } from "./admin-server.js";
import { DisasterLog, type DisasterRecord } from "./disaster-log.js";
import { slavesToRun } from "./job-policy.js";
import { ReportedJobs } from "./reported-jobs.js";
import {
  listenForSlaves,
  loadSlaveLinkSecrets,
  servicePrincipalOf,
  vouchedFor,
} from "./slave-listener.js";

/**
 * The first id of a job run by hand on the fake master at `now`: the time in
 * microseconds (some 1.8e15 in 2026, below 2^53), so ids grow across restarts
 * of the fake master and stay far above any id a real master's jobs
 * directory reaches (it counts from 1).
 */
export function disasterJobId(now: number): number {
  return now * 1000;
}

/** The state `abs show jobs` gives an attempt after report `r`; `known` is the one before. */
function reportedState(r: DisasterRecord, known: JobState | undefined): JobState {
  switch (r.report) {
    case "result":
      return r.outcome ?? "failed";
    case "reject":
      return "failed";
    case "running":
      return r.state ?? "running";
    case "dispatched":
      return "dispatched";
    case "started":
      return "running";
    case "progress":
      return known ?? "running";
  }
}

/** The disaster log's name in the master's state directory. */
export const DISASTER_LOG_FILE = "disaster-log.jsonl";

export interface FakeMasterOptions {
  config: MasterConfig;
  logger: Logger;
  accessLog?: Logger;
  hostName: string;
  /** Attempts `abs show jobs` shows at most (reported-jobs.ts). Default 100,000. */
  maxReportedAttempts?: number;
}

export class FakeMaster {
  readonly startedAt = Date.now();
  /** What the slaves said of each attempt (`slave/job/attempt`), for `abs show jobs`; bounded. */
  private readonly reported: ReportedJobs;
  private readonly connections = new Set<MasterSideConnection>();
  /** The registered connection of each slave name: where a run by hand goes. */
  private readonly registered = new Map<string, MasterSideConnection>();
  private lastJobId = 0;
  private readonly heartbeat: NodeJS.Timeout;
  private admin: AdminServer | null = null;
  private serial = 0;

  private constructor(
    private readonly opts: FakeMasterOptions,
    private readonly link: LinkServer,
    readonly log: DisasterLog,
  ) {
    this.reported = new ReportedJobs(opts.maxReportedAttempts);
    link.on("connection", (conn) => this.accept(conn));
    this.heartbeat = setInterval(() => {
      for (const c of this.connections) c.send({ type: "heartbeat", time: Date.now() });
    }, opts.config.heartbeatIntervalMs);
  }

  static async start(opts: FakeMasterOptions): Promise<FakeMaster> {
    const { config, logger } = opts;
    // A record the fake master could not MAC could not be told from a forged
    // one at the import: no key, no start (Kerberos needs disaster_log_key_file).
    const key = await loadDisasterLogKey(config);
    await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
    const log = await DisasterLog.open(path.join(config.stateDir, DISASTER_LOG_FILE), key);
    const cleanups: (() => Promise<void>)[] = [() => log.close()];
    try {
      const secrets = await loadSlaveLinkSecrets(config, opts.hostName, logger, true);
      const link = await listenForSlaves(config, secrets, opts.hostName, logger);
      cleanups.push(() => link.close());
      const fake = new FakeMaster(opts, link, log);
      fake.admin = await AdminServer.listen({
        path: config.adminSocket,
        mode: config.adminSocketMode,
        group: config.adminSocketGroup,
        methods: fake.methods(),
        logger,
        accessLog: opts.accessLog,
      });
      logger.info(
        `disaster mode: no jobs directory; every report goes to ${log.file}, each with a MAC under a key derived from ${key.source}; admin socket ${config.adminSocket}; ready`,
      );
      return fake;
    } catch (err) {
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
      throw err;
    }
  }

  get linkPort(): number {
    return this.link.port;
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.admin?.close();
    for (const c of this.connections) c.close();
    await this.link.close();
    await this.log.close();
  }

  private accept(conn: MasterSideConnection): void {
    const { logger } = this.opts;
    if (!vouchedFor(conn, this.opts.config, logger)) return;
    this.connections.add(conn);
    // One message at a time: a result is acknowledged after the lines before it.
    let queue: Promise<void> = Promise.resolve();
    conn.onMessage((m) => {
      queue = queue.then(() =>
        this.handle(conn, m).catch((err: unknown) => {
          // Not acknowledged: the slave keeps the result and reports it again.
          logger.error(`slave ${conn.name}: ${describeError(err)}`, { slave: conn.name });
        }),
      );
    });
    conn.onClose((err) => {
      this.connections.delete(conn);
      if (this.registered.get(conn.name) === conn) this.registered.delete(conn.name);
      logger.info(`slave ${conn.name} disconnected${err === null ? "" : `: ${err.message}`}`, {
        slave: conn.name,
      });
    });
  }

  private async handle(conn: MasterSideConnection, m: SlaveToMasterMessage): Promise<void> {
    const base = { time: Date.now(), slave: conn.name, identity: conn.identity };
    switch (m.type) {
      case "register": {
        const records: DisasterRecord[] = [
          ...m.running.map((r): DisasterRecord => ({
            ...base,
            report: "running",
            jobId: r.jobId,
            attempt: r.attempt,
            state: r.state,
            progress: r.progress,
          })),
          ...m.results.map((r): DisasterRecord => ({
            ...base,
            report: "result",
            jobId: r.jobId,
            attempt: r.attempt,
            outcome: r.outcome,
            message: r.message,
            data: r.data,
          })),
        ];
        await this.record(records);
        for (const r of m.results) conn.send({ type: "ack", jobId: r.jobId, attempt: r.attempt });
        conn.send({
          type: "registered",
          master: this.opts.hostName,
          heartbeatMs: this.opts.config.heartbeatIntervalMs,
        });
        // Not if it closed while its reports were written: a run by hand
        // would go nowhere.
        if (this.connections.has(conn)) this.registered.set(conn.name, conn);
        this.opts.logger.info(
          `slave ${conn.name} registered with the fake master: ${m.running.length} running, ${m.results.length} results`,
          { slave: conn.name },
        );
        return;
      }
      case "started":
        return this.record([{ ...base, report: "started", jobId: m.jobId, attempt: m.attempt }]);
      case "progress":
        return this.record([
          {
            ...base,
            report: "progress",
            jobId: m.jobId,
            attempt: m.attempt,
            progress: { files: m.files, bytes: m.bytes, path: m.path },
          },
        ]);
      case "result":
        await this.record([
          {
            ...base,
            report: "result",
            jobId: m.jobId,
            attempt: m.attempt,
            outcome: m.outcome,
            message: m.message,
            data: m.data,
          },
        ]);
        conn.send({ type: "ack", jobId: m.jobId, attempt: m.attempt });
        return;
      case "reject":
        return this.record([
          { ...base, report: "reject", jobId: m.jobId, attempt: m.attempt, reason: m.reason },
        ]);
      case "heartbeat":
      case "error":
        return; // nothing to record
      case "hello":
      case "auth-response":
      case "auth-token":
        return; // handshake messages never get here (link-connection.ts refuses them)
    }
  }

  /** Appends to the disaster log (durably) and updates what `abs show jobs` shows. */
  private async record(records: DisasterRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.log.append(records);
    for (const r of records) this.note(r);
  }

  private note(r: DisasterRecord): void {
    const key = `${r.slave}/${r.jobId}/${r.attempt}`;
    const known = this.reported.get(key);
    const state = reportedState(r, known?.state);
    this.serial += 1;
    const view: JobView = {
      id: r.jobId,
      definition: r.definition ?? known?.definition ?? "?",
      slave: r.slave,
      method: r.method ?? known?.method ?? "?",
      state,
      priority: 0,
      attempt: r.attempt,
      received: known?.received ?? r.time,
      dispatched: known?.dispatched ?? (r.report === "dispatched" ? r.time : null),
      started: known?.started ?? (r.report === "started" ? r.time : null),
      ended: r.report === "result" || r.report === "reject" ? r.time : (known?.ended ?? null),
      notBefore: null,
      progress: r.progress ?? known?.progress ?? null,
      result:
        r.report === "result"
          ? (r.message ?? "")
          : r.report === "reject"
            ? `refused by the slave: ${r.reason ?? ""}`
            : (known?.result ?? null),
      waitReason: null,
      serial: this.serial,
    };
    this.reported.set(key, view);
  }

  /**
   * `abs run` on the fake master: one job per slave, sent at once to a slave
   * registered here (nothing queues), logged before it is sent. Slaves not
   * connected are refused before anything is sent.
   */
  private async runByHand(name: string, only: string | null): Promise<number[]> {
    const def = this.opts.config.jobs.find((d) => d.name === name);
    if (def === undefined) {
      const known = this.opts.config.jobs.map((d) => d.name).join(", ") || "none";
      throw new AbsError("DEFINITION_NOT_FOUND", `no job definition "${name}" (defined: ${known})`);
    }
    const slaves = slavesToRun(def, only);
    const absent = slaves.filter((s) => !this.registered.has(s));
    if (absent.length > 0) {
      throw new AbsError(
        "ILLEGAL_TRANSITION",
        `slave ${absent.join(", ")} is not registered with the fake master, which queues nothing: run it once the slave is (abs show jobs lists the slaves that reported)`,
      );
    }
    const { method, params } = methodParams(def.method);
    const ids: number[] = [];
    for (const slave of slaves) {
      const conn = this.registered.get(slave);
      if (conn === undefined) continue; // gone meanwhile: its job is not made
      const jobId = this.nextJobId();
      await this.record([
        {
          time: Date.now(),
          slave,
          identity: conn.identity,
          report: "dispatched",
          jobId,
          attempt: 1,
          definition: def.name,
          method,
          params,
        },
      ]);
      const sent = conn.send({
        type: "dispatch",
        jobId,
        attempt: 1,
        definition: def.name,
        method,
        params,
        maxRunTimeMs: def.maxRunTimeMs,
      });
      if (!sent) {
        // Gone since: the log says so, so that the import records it failed.
        const reason = "not sent: the slave disconnected from the fake master";
        await this.record([
          {
            time: Date.now(),
            slave,
            identity: conn.identity,
            report: "reject",
            jobId,
            attempt: 1,
            reason,
          },
        ]);
        throw new AbsError(
          "ILLEGAL_TRANSITION",
          `job ${jobId} on ${slave}: ${reason}; run it again once the slave is back`,
        );
      }
      this.opts.logger.info(`job ${jobId}: ${def.name} dispatched to ${slave} by hand (abs run)`, {
        slave,
        job: jobId,
      });
      ids.push(jobId);
    }
    return ids;
  }

  private nextJobId(): number {
    this.lastJobId = Math.max(this.lastJobId + 1, disasterJobId(Date.now()));
    return this.lastJobId;
  }

  private methods(): ReadonlyMap<string, AdminMethod> {
    // The others are refused before their arguments are looked at.
    const map = new Map<string, AdminMethod>();
    for (const name of ADMIN_METHODS) {
      map.set(name, () => {
        throw new AbsError(
          "NEEDS_REAL_MASTER",
          `${name} needs the real master: this is the fake master of disaster mode (abs-master --disaster), which only records what slaves report`,
        );
      });
    }
    const served = bindAdminHandlers({
      status: (): StatusResult => {
        const c = this.opts.config;
        return {
          master: this.opts.hostName,
          realm: c.realm,
          mode: "disaster",
          pid: process.pid,
          startedAt: this.startedAt,
          listen: `${c.listen.host}:${this.link.port}`,
          auth: c.auth,
          servicePrincipal: servicePrincipalOf(c),
          jobsDir: null,
          jobs: this.reported.size,
          drained: false,
          slavesConnected: new Set([...this.connections].map((x) => x.name)).size,
        };
      },
      run: async (a) => ({ jobs: await this.runByHand(a.definition, a.slave) }),
      "show-jobs": (a) => {
        const jobs = [...this.reported.values()]
          .filter((v) => a.states === null || a.states.includes(v.state))
          .filter((v) => a.slave === null || v.slave === a.slave)
          .filter((v) => a.definition === null || v.definition === a.definition)
          .sort((x, y) => x.id - y.id || x.attempt - y.attempt);
        const limited = a.limit === null ? jobs : jobs.slice(-a.limit);
        return { jobs: limited };
      },
    });
    for (const [name, method] of served) map.set(name, method);
    return map;
  }
}
