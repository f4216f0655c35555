// The master daemon's parts, put together: the jobs directory (JobStore),
// the slave link (LinkServer, sessions, dispatcher), the schedule, and the
// admin socket. bin/abs-master-main.ts parses the command line and signals; this
// file owns the order of starting, reloading and stopping.
//
// Startup order, so that nothing acts before what it needs is there:
//   1. the jobs directory: its lock (one master per directory), then every job
//   2. TLS material and the authentication secrets (realm key or keytab)
//   3. the dispatcher: jobs that were in flight become orphaned
//   4. the slave link listens (slaves start to register and reattach)
//   5. the schedule: missed runs are decided once, then timers are armed
//   6. the admin socket: `abs` answers from here on
//
// Stopping (SIGTERM) closes the admin socket and the slave link and waits
// for the writes under way; jobs running on slaves keep running, and come
// back orphaned at the next start until their slaves report them.
//
// States: `running` after start() resolves, `stopping` during stop(),
// `stopped` after.

import os from "node:os";
import { loadDisasterLogKey } from "../auth/disaster-log-key.js";
import type { LinkServer } from "../auth/link-server.js";
import { type Clock, systemClock } from "../clock.js";
import { countVerdicts } from "../protocol/admin-api.js";
import { type ImportSummary, importDisasterLog } from "./disaster-import.js";
import { configErrorFromIssues } from "../config/issues.js";
import { methodParams, type JobDefinition } from "../config/job-definition.js";
import {
  loadMasterConfig,
  type MasterConfig,
  summarizeMasterConfig,
} from "../config/master-config.js";
import { readMasterConfigFiles } from "../config/read-config-files.js";
import { AbsError, describeError } from "../errors.js";
import type { Job } from "../jobsdir/job.js";
import { JobStore, type RequestChange } from "../jobsdir/job-store.js";
import type { Logger } from "../log.js";
import { warnIfNoJournal } from "../storage/file-system-journal.js";
import { tempFilesIn } from "../storage/unnamed-files.js";
import { AdminServer } from "./admin-server.js";
import { adminMethods } from "./admin-methods.js";
import { Dispatcher, type DispatchLimits } from "./dispatcher.js";
import { policyFor } from "./job-policy.js";
import { type FireReason, type ScheduledDefinition, Scheduler } from "./scheduler.js";
import { SlaveLinks } from "./slave-links.js";
import { listenForSlaves, loadSlaveLinkSecrets, slaveNamePolicy } from "./slave-listener.js";
import { SlaveRegistry } from "./slave-registry.js";

export interface MasterOptions {
  /** master.conf; jobs.d/ next to it. Re-read on reload. */
  configPath: string;
  /** The config as checked at startup (abs-master reads it before daemonizing). */
  config: MasterConfig;
  logger: Logger;
  /** One line per admin request. Default: `logger`. */
  accessLog?: Logger;
  /** Default: the system clock. */
  clock?: Clock;
  /** The name slaves are told (auth-ok, registered) and the generated certificate's. Default: os.hostname(). */
  hostName?: string;
  /** The zone schedules default to (tests). Default: this host's. */
  localTimeZone?: string;
  /** Where sysfs is mounted, read for the jobs directory's journal (tests). Default: /sys. */
  sysfs?: string;
}

export type MasterState = "running" | "stopping" | "stopped";

/** Settings a reload cannot change while the master runs (sockets, files, identity), by config key. */
const RESTART_ONLY: readonly [keyof MasterConfig, string][] = [
  ["listen", "listen"],
  ["jobsDir", "jobs_dir"],
  ["stateDir", "state_dir"],
  ["logDir", "log_dir"],
  ["adminSocket", "admin_socket"],
  ["adminSocketMode", "admin_socket_mode"],
  ["adminSocketGroup", "admin_socket_group"],
  ["realm", "realm"],
  ["auth", "auth"],
  ["realmKeyFile", "realm_key_file"],
  ["keytab", "keytab"],
  ["servicePrincipal", "service_principal"],
  ["allowedPrincipals", "allowed_principals"],
  ["slavePrincipalService", "slave_principal_service"],
  ["slavePrincipals", "slave_principal.NAME"],
  ["tlsCert", "tls_cert"],
  ["tlsKey", "tls_key"],
  ["handshakeTimeoutMs", "handshake_timeout"],
  ["maxHandshakes", "max_handshakes"],
  ["maxHandshakesPerAddress", "max_handshakes_per_address"],
  ["peers", "peers"],
];

export class Master {
  state: MasterState = "running";
  readonly startedAt: number;
  private config: MasterConfig;
  private reloading: Promise<unknown> = Promise.resolve();
  private importing: Promise<unknown> = Promise.resolve();

  // `store` and `scheduler` are read by the in-process tests
  // (test/master/master-clock.test.ts); the admin methods get the parts
  // they use through their AdminBackend, built in start().
  private constructor(
    private readonly opts: MasterOptions,
    readonly store: JobStore,
    private readonly dispatcher: Dispatcher,
    private readonly registry: SlaveRegistry,
    private readonly link: LinkServer,
    private readonly links: SlaveLinks,
    readonly scheduler: Scheduler,
    private admin: AdminServer | null,
    private readonly clock: Clock,
  ) {
    this.config = opts.config;
    this.startedAt = clock.now();
  }

  static async start(opts: MasterOptions): Promise<Master> {
    const { config, logger } = opts;
    const clock = opts.clock ?? systemClock;
    const hostName = opts.hostName ?? os.hostname();

    // 1. The jobs directory.
    const store = await JobStore.open({
      dir: config.jobsDir,
      maxJobs: config.maxJobs,
      logger,
      clock: () => clock.now(),
    });
    const cleanups: (() => Promise<void>)[] = [() => store.close()];
    try {
      logger.info(`jobs directory ${config.jobsDir}: ${store.size} jobs`);
      warnIfNoJournal(logger, config.jobsDir, opts.sysfs);
      // Said only where it matters, ext4 without a journal; a warning without
      // the C module: writes work, but hold the directory's lock longer.
      const tempFiles = tempFilesIn(config.jobsDir, opts.sysfs);
      if (tempFiles.how === "unnamed") logger.info(`jobs directory: ${tempFiles.why}`);
      if (tempFiles.how === "named, slower") logger.warn(`jobs directory: ${tempFiles.why}`);

      // 2. Secrets.
      const secrets = await loadSlaveLinkSecrets(config, hostName, logger);

      // 3. The dispatcher.
      const dispatcher = new Dispatcher({ store, clock, logger, limits: limitsOf(config) });
      cleanups.push(() => Promise.resolve(dispatcher.stop()));
      await dispatcher.start();

      // 4. The slave link.
      const link = await listenForSlaves(config, secrets, hostName, logger);
      cleanups.push(() => link.close());
      const registry = new SlaveRegistry(store, logger);
      const links = new SlaveLinks({
        server: link,
        store,
        dispatcher,
        registry,
        logger,
        clock,
        masterName: hostName,
        heartbeatMs: config.heartbeatIntervalMs,
        config,
      });
      cleanups.push(() => Promise.resolve(links.stop()));

      // 5. The schedule (the master exists from here: the scheduler fires into it).
      const ref: { master?: Master } = {};
      const scheduler = new Scheduler(
        {
          clock,
          logger,
          fire: (name, at, reason) => {
            if (ref.master === undefined) throw new AbsError("INTERNAL", "fired before startup");
            return ref.master.fire(name, at, reason);
          },
          saveTriggers: (t) => store.saveScheduleState(t),
        },
        store.scheduleState,
      );
      const master = new Master(
        opts,
        store,
        dispatcher,
        registry,
        link,
        links,
        scheduler,
        null,
        clock,
      );
      ref.master = master;
      cleanups.push(() => Promise.resolve(scheduler.stop()));
      await scheduler.apply(scheduledDefinitions(config));

      // 6. The admin socket.
      master.admin = await AdminServer.listen({
        path: config.adminSocket,
        mode: config.adminSocketMode,
        group: config.adminSocketGroup,
        methods: adminMethods({ master, store, dispatcher, registry, scheduler, clock }),
        requests: store,
        logger,
        accessLog: opts.accessLog,
      });
      logger.info(`admin socket ${config.adminSocket}; ready`);
      return master;
    } catch (err) {
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
      throw err;
    }
  }

  get currentConfig(): MasterConfig {
    return this.config;
  }

  /** The port slaves connect to (the chosen one when the config says port 0). */
  get linkPort(): number {
    return this.link.port;
  }

  get hostName(): string {
    return this.opts.hostName ?? os.hostname();
  }

  /**
   * Re-reads master.conf and jobs.d. A bad config changes nothing, is
   * logged, and throws ConfigError listing every issue; a good one applies at once: job
   * definitions, schedules and limits. Settings that need a restart are
   * named in the summary and the log.
   */
  reload(): Promise<string> {
    // One reload at a time (SIGHUP, jobs.d and `abs reload` may coincide):
    // each reads the files as they are when its turn comes.
    const run = this.reloading.then(() => this.reloadNow());
    this.reloading = run.catch(() => undefined);
    return run;
  }

  /**
   * Merges the fake master's disaster log `file` into the jobs directory
   * (disaster-import.ts). One import at a time: an attempt this master
   * does not know is looked up, then recorded.
   */
  importDisasterLog(file: string): Promise<ImportSummary> {
    const run = this.importing.then(() => this.importNow(file));
    this.importing = run.catch(() => undefined);
    return run;
  }

  private async importNow(file: string): Promise<ImportSummary> {
    const { logger } = this.opts;
    try {
      // Read at each import: the key file may have been put in place since
      // the start (the realm key's, or disaster_log_key_file).
      const key = await loadDisasterLogKey(this.config);
      const summary = await importDisasterLog(
        {
          store: this.store,
          now: () => this.clock.now(),
          key,
          namePolicy: slaveNamePolicy(this.config),
        },
        file,
      );
      const said =
        countVerdicts(summary.attempts)
          .map(([verdict, n]) => `${n} ${verdict}`)
          .join(", ") || "nothing";
      const unfinished =
        summary.unfinishedLine === null
          ? ""
          : `; unfinished line ${summary.unfinishedLine} skipped`;
      logger.info(
        `imported the disaster log ${file}: ${summary.lines} lines, ${summary.attempts.length} reported attempts: ${said}${unfinished}`,
      );
      if (summary.refusedCount > 0) {
        const shown = summary.refused.map((r) => `${file}:${r.line}: ${r.reason}`).join("\n");
        const more = summary.refusedCount - summary.refused.length;
        logger.warn(
          `the import of ${file} refused ${summary.refusedCount} line(s):\n${shown}${more > 0 ? `\n(${more} more)` : ""}`,
        );
      }
      return summary;
    } catch (err) {
      logger.error(`import of the disaster log ${file} failed: ${describeError(err)}`);
      throw err;
    }
  }

  /** Logs its own failure, once; callers need not. */
  private async reloadNow(): Promise<string> {
    if (this.state !== "running") throw new AbsError("INTERNAL", "the master is stopping");
    let next: MasterConfig;
    try {
      const files = await readMasterConfigFiles(this.opts.configPath);
      const loaded = loadMasterConfig(files, { localTimeZone: this.opts.localTimeZone });
      if ("errors" in loaded) throw configErrorFromIssues(loaded.errors);
      next = loaded.config;
    } catch (err) {
      this.opts.logger.error(`reload refused; keeping the running config:\n${describeError(err)}`);
      throw err;
    }
    const changed = RESTART_ONLY.filter(
      ([field]) => JSON.stringify(next[field]) !== JSON.stringify(this.config[field]),
    );
    const needRestart = changed.map(([, key]) => key);
    // Restart-only settings keep their running values, so what the master
    // reports stays true until the restart.
    const applied: MasterConfig = { ...next };
    for (const [field] of changed) Object.assign(applied, { [field]: this.config[field] });
    this.config = applied;
    this.store.setMaxJobs(applied.maxJobs);
    this.dispatcher.setLimits(limitsOf(applied));
    this.links.setHeartbeat(applied.heartbeatIntervalMs);
    await this.scheduler.apply(scheduledDefinitions(applied));
    let summary = summarizeMasterConfig(next);
    if (needRestart.length > 0) {
      summary += `; needs a restart to change: ${needRestart.join(", ")}`;
      this.opts.logger.warn(
        `reload: ${needRestart.join(", ")} changed; they apply at the next restart`,
      );
    }
    this.opts.logger.info(`reloaded: ${summary}`);
    return summary;
  }

  definition(name: string): JobDefinition | undefined {
    return this.config.jobs.find((d) => d.name === name);
  }

  /** The scheduler's fire: a run of `name` due at `at`, one job per slave. */
  private async fire(name: string, at: number, reason: FireReason): Promise<void> {
    const def = this.definition(name);
    if (def === undefined || !def.enabled) return;
    const why =
      reason === "missed-run"
        ? `missed while the master was down (run due ${new Date(at).toISOString()})`
        : `scheduled for ${new Date(at).toISOString()}`;
    // One job per slave, submitted together: they share a commit group.
    await Promise.all(def.slaves.map((slave) => this.startRun(def, slave, at, why)));
  }

  /**
   * `abs run`: a run of `def` now, on its slaves or on `slave`, all or
   * nothing: the jobs, one per slave, and the request's record are one
   * write (JobStore.submitAll), so a crash leaves all of them or none, and a
   * retry of the request finds the record. Overlap = replace cancels the
   * runs still going first; forbid does not apply to a run asked for by hand.
   */
  async runNow(
    def: JobDefinition,
    slaves: readonly string[],
    request: RequestChange<Job[]>,
  ): Promise<Job[]> {
    const now = this.clock.now();
    // The request id ties each job to the command that made it.
    const why = `run by an administrator (abs run, request ${request.tag.id})`;
    if (def.overlap === "replace") {
      await Promise.all(slaves.map((slave) => this.replacePrevious(def, slave)));
    }
    const { method, params } = methodParams(def.method);
    const jobs = await this.store.submitAll(
      slaves.map((slave) => ({
        definition: def.name,
        slave,
        method,
        params,
        priority: def.priority,
        policy: policyFor(def, now),
        message: `received: ${def.name} on ${slave}, ${why}`,
      })),
      request,
    );
    for (const job of jobs) {
      this.opts.logger.info(`job ${job.id}: ${def.name} on ${job.slave} queued, ${why}`, {
        job: job.id,
        slave: job.slave,
      });
    }
    return jobs;
  }

  /** Overlap = replace: the runs of `def` on `slave` still going are canceled. */
  private async replacePrevious(def: JobDefinition, slave: string): Promise<void> {
    for (const old of this.store.unfinishedRuns(def.name, slave)) {
      await this.dispatcher
        .cancel(old, `replaced by a new run (overlap = replace)`)
        .catch((err: unknown) =>
          this.opts.logger.error(`job ${old.id}: cannot cancel: ${describeError(err)}`, {
            job: old.id,
          }),
        );
    }
  }

  /**
   * Submits one scheduled run of `def` on `slave`, after its overlap
   * policy: allow starts it beside a run still going, forbid skips it,
   * replace cancels the old one first.
   */
  private async startRun(
    def: JobDefinition,
    slave: string,
    at: number,
    why: string,
  ): Promise<Job | null> {
    const previous = this.store.unfinishedRuns(def.name, slave);
    if (previous.length > 0 && def.overlap === "forbid") {
      const ids = previous.map((j) => j.id).join(", ");
      this.opts.logger.warn(
        `${def.name} on ${slave}: run ${why} skipped: job ${ids} still unfinished (overlap = forbid)`,
        { definition: def.name, slave },
      );
      return null;
    }
    if (def.overlap === "replace") await this.replacePrevious(def, slave);
    const { method, params } = methodParams(def.method);
    const job = await this.store.submit({
      definition: def.name,
      slave,
      method,
      params,
      priority: def.priority,
      policy: policyFor(def, at),
      message: `received: ${def.name} on ${slave}, ${why}`,
    });
    this.opts.logger.info(`job ${job.id}: ${def.name} on ${slave} queued, ${why}`, {
      job: job.id,
      slave,
    });
    return job;
  }

  async stop(): Promise<void> {
    if (this.state !== "running") return;
    this.state = "stopping";
    // A reload under way finishes first: it would re-arm the schedule.
    await this.reloading;
    this.scheduler.stop();
    await this.admin?.close();
    this.links.stop();
    await this.link.close();
    this.dispatcher.stop();
    await this.registry.close();
    await this.store.close();
    this.state = "stopped";
    this.opts.logger.info("stopped; jobs running on slaves keep running");
  }
}

function limitsOf(config: MasterConfig): DispatchLimits {
  return {
    maxConcurrent: config.maxConcurrent,
    defaultSlaveMaxJobs: config.defaultSlaveMaxJobs,
    orphanGraceMs: config.orphanGraceMs,
  };
}

function scheduledDefinitions(config: MasterConfig): ScheduledDefinition[] {
  const out: ScheduledDefinition[] = [];
  for (const def of config.jobs) {
    if (def.schedule === null || !def.enabled) continue;
    out.push({
      name: def.name,
      schedule: def.schedule,
      timezone: def.timezone,
      missedRun: def.missedRun,
    });
  }
  return out;
}
