// The slave daemon's parts, put together: the state directory (what runs,
// what the master has not acknowledged), the job runner, and the session
// with the master. bin/abs-slave.ts starts one and passes it signals.
//
// Start order: the state directory first (its lock keeps a second slave
// out, its records are what the previous process left), then the runner
// takes those over (jobs that died with the previous process are recorded
// as failed), then the session dials the master and reports all of it.
//
// A reload (SIGHUP, or an edit of slave.conf) applies what it can while
// jobs run: a new master or new credentials end the session and register
// there; max_jobs registers again; allowed_paths, allowed_methods and
// allowed_programs apply to the next dispatch, heartbeat_interval to the next registration. name, state_dir,
// log_dir, keytab and ccache need a restart: a reload keeps their old values
// and says so.

import net from "node:net";
import type { SlaveConfig } from "../config/slave-config.js";
import type { Logger } from "../log.js";
import type { SlaveAuthOptions } from "../auth/link-client.js";
import { JobRunner, type RunnerLimits } from "./job-runner.js";
import { MasterLink, type MasterTarget } from "./master-link.js";
import { lstatNamesNative, lstatNamesUsed } from "./methods/lstat-names.js";
import { StateDir } from "./state-dir.js";

/** Settings a reload cannot change (the slave keeps the old value and logs it). */
export const RESTART_ONLY_KEYS = [
  ["name", "name"],
  ["stateDir", "state_dir"],
  ["logDir", "log_dir"],
  // The Kerberos library reads these from process-wide settings once (auth/kerberos.ts).
  ["keytab", "keytab"],
  ["ccache", "ccache"],
] as const satisfies readonly (readonly [keyof SlaveConfig, string])[];

/** Settings that decide where and how the slave connects: a change means a new session. */
const CONNECTION_KEYS = [
  "master",
  "auth",
  "keyFile",
  "principal",
  "masterPrincipal",
  "masterFingerprint",
  "masterCa",
] as const satisfies readonly (keyof SlaveConfig)[];

export interface SlaveStartOptions {
  config: SlaveConfig;
  logger: Logger;
}

export class Slave {
  private constructor(
    private readonly settings: { config: SlaveConfig },
    private readonly logger: Logger,
    private readonly stateDir: StateDir,
    readonly runner: JobRunner,
    readonly link: MasterLink,
  ) {}

  static async start(opts: SlaveStartOptions): Promise<Slave> {
    const { config, logger } = opts;
    const { stateDir, contents } = await StateDir.open(config.stateDir, {
      logger,
    });
    try {
      const runner = new JobRunner({
        name: config.name,
        stateDir,
        logger,
        limits: limitsOf(config),
        workDir: config.stateDir,
      });
      await runner.recover(contents);
      if (contents.results.length > 0 || contents.running.length > 0) {
        logger.info(
          `state directory: ${contents.results.length} result(s) to report, ${contents.running.length} job(s) died with the previous slave`,
        );
      }
      // The link reads max_jobs and heartbeat_interval from the config in
      // force when it registers, so a reload reaches it.
      const settings = { config };
      const link = new MasterLink({
        target: targetOf(config),
        runner,
        logger,
        maxJobs: () => settings.config.maxJobs,
        heartbeatMs: () => settings.config.heartbeatIntervalMs,
      });
      const slave = new Slave(settings, logger, stateDir, runner, link);
      // A warning without the C lstat: backups work, but scan slower, and
      // the admin can build it (lstat-names.ts).
      if (lstatNamesNative === null) logger.warn(lstatNamesUsed);
      else logger.info(lstatNamesUsed);
      link.start();
      return slave;
    } catch (err) {
      await stateDir.close();
      throw err;
    }
  }

  /** Applies a config that loaded without errors (see the header for what applies how). */
  reload(next: SlaveConfig): void {
    const old = this.settings.config;
    const restartOnly: string[] = [];
    const kept: Partial<SlaveConfig> = {};
    for (const [key, configName] of RESTART_ONLY_KEYS) {
      if (next[key] !== old[key]) {
        restartOnly.push(configName);
        Object.assign(kept, { [key]: old[key] });
      }
    }
    if (restartOnly.length > 0) {
      this.logger.warn(
        `reload: ${restartOnly.join(", ")} only change at a restart; keeping the running value${restartOnly.length > 1 ? "s" : ""}`,
      );
    }
    const config: SlaveConfig = { ...next, ...kept };
    this.settings.config = config;
    this.runner.setLimits(limitsOf(config));

    const moved = CONNECTION_KEYS.some((k) => JSON.stringify(config[k]) !== JSON.stringify(old[k]));
    if (moved) {
      this.link.retarget(targetOf(config));
    } else if (config.maxJobs !== old.maxJobs) {
      this.link.reregister();
    }
    this.logger.info(`reload: slave.conf applied${moved ? "; new session with the master" : ""}`);
  }

  /**
   * Stops: running jobs are stopped and recorded as failed with `why`, their
   * results sent if a session is up (else at the next registration), the
   * session is closed and the state directory released.
   */
  async stop(why: string): Promise<void> {
    await this.runner.stopAll(why);
    await this.link.stop();
    await this.stateDir.close();
  }
}

/** What the runner checks each dispatch against, from the config. */
function limitsOf(c: SlaveConfig): RunnerLimits {
  return {
    maxJobs: c.maxJobs,
    allowedPaths: c.allowedPaths,
    allowedToRun: { methods: c.allowedMethods, programs: c.allowedPrograms, file: c.file },
  };
}

/**
 * The README's fix for a master_principal left to its default that the KDC
 * does not know: the default is made of `master:` as written, which is
 * often an IP address or a short name, not the host of the master's
 * service principal.
 */
function defaultPrincipalFix(c: SlaveConfig): string {
  const what = net.isIP(c.master.host) === 0 ? "" : ", an IP address";
  return (
    `${c.file} sets no master_principal, so the slave asks for abs/ followed by the host of master: (${c.master.host}${what}); ` +
    "write master: as the host name of the master's service principal, or set master_principal"
  );
}

/** Where and how to connect, from the config. */
export function targetOf(c: SlaveConfig): MasterTarget {
  let auth: SlaveAuthOptions;
  if (c.auth === "kerberos") {
    auth = {
      mode: "kerberos",
      servicePrincipal: c.masterPrincipal ?? `abs/${c.master.host}`,
      ...(c.keytab === null ? {} : { keytab: c.keytab }),
      ...(c.ccache === null ? {} : { ccache: c.ccache }),
      ...(c.principal === null ? {} : { principal: c.principal }),
      ...(c.masterPrincipalIsDefault ? { unknownServiceFix: defaultPrincipalFix(c) } : {}),
    };
  } else {
    auth = { mode: "realm-key", keyFile: c.keyFile ?? "" };
  }
  return {
    host: c.master.host,
    port: c.master.port,
    name: c.name,
    auth,
    tls: { pin: c.masterFingerprint, ca: c.masterCa },
  };
}
