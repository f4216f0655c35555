// The slave's session with its master, kept up for as long as the slave
// runs: dial (TLS + authentication, auth/link-client.ts), register with the
// jobs it runs and the results not yet acknowledged, then carry dispatch,
// cancel and ack to the job runner and its reports back, with heartbeats.
//
// When the connection cannot be made or is lost, the slave tries again
// after a jittered exponential backoff (0.5 s doubling to 30 s; each wait
// random between half and all of the step, so a thousand slaves that lost
// the same master do not come back in one burst). A registration resets the
// backoff. Nothing here stops a job: the runner keeps them going and keeps
// their results until a master acknowledges them.
//
// retarget() moves the session to another master (a SIGHUP after an edit
// of `master:`): the current connection is closed at once and the slave
// registers with the new master, reporting its running jobs.
//
// States: idle (not started), connecting, registering, registered,
// waiting (backoff), stopped.

import { AbsError, ProtocolError, describeError } from "../errors.js";
import type { Logger } from "../log.js";
import { dropServiceTickets, initiatorCcache } from "../auth/kerberos.js";
import { connectToMaster, type ConnectOptions } from "../auth/link-client.js";
import type { SlaveSideConnection } from "../auth/link-connection.js";
import { formatHostPort } from "../config/host-port.js";
import type { MasterToSlaveMessage } from "../protocol/slave-messages.js";
import type { JobRunner } from "./job-runner.js";

/** First wait after a failure, in ms. */
export const BACKOFF_FIRST_MS = 500;
/** Longest wait between attempts, in ms. */
export const BACKOFF_MAX_MS = 30_000;
/** A master silent for this many heartbeat intervals is given up on. */
const MISSED_HEARTBEATS = 3;
/** Time for the master to answer `register`, in ms. */
const REGISTER_TIMEOUT_MS = 30_000;

/** Where and how to connect: everything of ConnectOptions. */
export type MasterTarget = ConnectOptions;

export type MasterLinkState =
  "idle" | "connecting" | "registering" | "registered" | "waiting" | "stopped";

export interface MasterLinkOptions {
  target: MasterTarget;
  runner: JobRunner;
  logger: Logger;
  /** The slave's max_jobs, sent in register. */
  maxJobs: () => number;
  /** The slave's heartbeat_interval: it sends heartbeats at this or the master's interval, whichever is shorter. */
  heartbeatMs: () => number;
}

/** The wait before attempt `failures + 1`: the step doubles, the wait is random in [step/2, step]. */
export function backoffDelay(failures: number, random: () => number): number {
  const step = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(failures, 30));
  return Math.round(step / 2 + (random() * step) / 2);
}

/**
 * What makes two failures to reach the master the same one, for the log:
 * the error's code and its message with every number blanked. What
 * changes from one attempt to the next of one failure is numbers: the
 * source port the master's refusal names ("from 127.0.0.1:41234"), the
 * seconds a block of the address has left, the milliseconds waited.
 */
export function failureKey(err: unknown): string {
  const code = err instanceof AbsError ? err.code : "";
  return `${code}: ${describeError(err).replace(/\d+/g, "N")}`;
}

export class MasterLink {
  state: MasterLinkState = "idle";
  private target: MasterTarget;
  /** Bumped by retarget and stop: a loop of an older generation ends. */
  private generation = 0;
  private conn: SlaveSideConnection | null = null;
  private wakeUp: (() => void) | null = null;
  private loopDone: Promise<void> = Promise.resolve();

  constructor(private readonly opts: MasterLinkOptions) {
    this.target = opts.target;
  }

  /** The master's address, `host:port`. */
  get address(): string {
    return formatHostPort(this.target);
  }

  start(): void {
    if (this.state !== "idle") return;
    this.loopDone = this.loop(this.generation);
  }

  /**
   * Connects to `target` from now on: the current session (if any) ends and
   * a new one starts at once, without backoff.
   */
  retarget(target: MasterTarget): void {
    if (this.state === "stopped") return;
    const from = this.address;
    this.target = target;
    this.opts.logger.info(`master is now ${this.address} (was ${from}): registering there`);
    this.restart();
  }

  /** Ends the session and registers again with the same master (max_jobs changed). */
  reregister(): void {
    if (this.state === "stopped") return;
    this.opts.logger.info(`registering again with the master at ${this.address}`);
    this.restart();
  }

  /** Closes the session and stops trying; resolves when the loop has ended. */
  async stop(): Promise<void> {
    this.generation += 1;
    this.state = "stopped";
    this.conn?.close();
    this.wakeUp?.();
    await this.loopDone;
  }

  private restart(): void {
    this.generation += 1;
    this.conn?.close();
    this.wakeUp?.();
    // The old loop ends by itself when its connect or wait returns (it sees
    // the new generation); the new one does not wait for it.
    this.loopDone = Promise.all([this.loopDone, this.loop(this.generation)]).then(() => undefined);
  }

  private async loop(gen: number): Promise<void> {
    let failures = 0;
    let lastFailure = "";
    // One new ticket per failure streak: a master that refuses the new one
    // too has another problem, and the backoff applies.
    let ticketDropped = false;
    while (gen === this.generation) {
      const target = this.target;
      const where = formatHostPort(target);
      this.state = "connecting";
      let registered = false;
      try {
        const conn = await connectToMaster(target);
        if (gen !== this.generation) {
          conn.close();
          return;
        }
        registered = await this.session(conn, where);
        lastFailure = "";
        ticketDropped = false;
      } catch (err) {
        if (!ticketDropped && err instanceof AbsError && err.code === "STALE_TICKET") {
          ticketDropped = true;
          if (await this.dropStaleTicket(target, where, err)) continue; // at once, no backoff
        }
        // The same failure again and again is logged once, then at debug level.
        const line = `cannot reach the master at ${where}: ${describeError(err)}`;
        const key = failureKey(err);
        if (key === lastFailure) this.opts.logger.debug(line);
        else this.opts.logger.warn(line);
        lastFailure = key;
      }
      if (gen !== this.generation) return;
      failures = registered ? 0 : failures + 1;
      const delay = backoffDelay(failures, Math.random);
      this.state = "waiting";
      this.opts.logger.debug(`next attempt to reach ${where} in ${delay} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = null;
    }
  }

  /**
   * The master has no key of the version of the slave's service ticket (its
   * key was rotated): drops that ticket from the cache so that the next
   * attempt gets a new one from the KDC. Resolves with whether it did.
   */
  private async dropStaleTicket(
    target: MasterTarget,
    where: string,
    err: AbsError,
  ): Promise<boolean> {
    const auth = target.auth;
    if (auth.mode !== "kerberos") return false;
    const ccache = initiatorCcache(auth);
    try {
      const dropped = await dropServiceTickets(ccache, auth.servicePrincipal);
      this.opts.logger.warn(
        `the master at ${where} refused our Kerberos ticket: ${err.message}; dropped ${dropped} cached ticket(s) for ${auth.servicePrincipal} from ${ccache}, asking the KDC for a new one`,
      );
      return true;
    } catch (dropErr) {
      this.opts.logger.warn(
        `the master at ${where} refused our Kerberos ticket: ${err.message}; ${describeError(dropErr)}`,
      );
      return false;
    }
  }

  /** Registers on `conn` and serves it; resolves when it closes, with whether it registered. */
  private session(conn: SlaveSideConnection, where: string): Promise<boolean> {
    this.conn = conn;
    this.state = "registering";
    const runner = this.opts.runner;
    return new Promise<boolean>((resolve) => {
      let registered = false;
      let lastHeard = Date.now();
      let heartbeat: NodeJS.Timeout | undefined;
      const port = { send: (m: Parameters<SlaveSideConnection["send"]>[0]) => conn.send(m) };
      const { running, results } = runner.reports();
      const reported = new Set(results.map((r) => `${r.jobId}/${r.attempt}`));
      const registerTimer = setTimeout(
        () =>
          conn.close(
            new ProtocolError(`no answer to register within ${REGISTER_TIMEOUT_MS / 1000}s`),
          ),
        REGISTER_TIMEOUT_MS,
      );

      const onRegistered = (master: string, heartbeatMs: number): void => {
        clearTimeout(registerTimer);
        registered = true;
        this.state = "registered";
        this.opts.logger.info(
          `registered with master ${master} at ${where}: ${running.length} running, ${results.length} results reported`,
        );
        runner.attach(port);
        // Results that ended while register was on its way.
        runner.resendResults(reported);
        // The master sends one every heartbeatMs: silence for three of its
        // intervals means it is gone (or the network between us).
        const sendEveryMs = Math.min(heartbeatMs, this.opts.heartbeatMs());
        heartbeat = setInterval(() => {
          const silentMs = Date.now() - lastHeard;
          if (silentMs > heartbeatMs * MISSED_HEARTBEATS) {
            conn.close(
              new ProtocolError(
                `no word from the master for ${MISSED_HEARTBEATS} heartbeat intervals`,
              ),
            );
            return;
          }
          conn.send({ type: "heartbeat", time: Date.now() });
        }, sendEveryMs);
      };

      conn.onMessage((m: MasterToSlaveMessage) => {
        lastHeard = Date.now();
        if (m.type === "registered") {
          if (!registered) onRegistered(m.master, m.heartbeatMs);
          return;
        }
        if (m.type === "heartbeat") return;
        if (m.type === "error") {
          this.opts.logger.warn(`the master at ${where} says: ${m.code}: ${m.message}`);
          return;
        }
        // The master answers the results and jobs of `register` (ack,
        // cancel) before it says `registered`: handled as they come.
        switch (m.type) {
          case "dispatch":
            runner.dispatch(m);
            return;
          case "cancel":
            runner.cancel(m);
            return;
          case "ack":
            void runner.ack(m);
            return;
          case "auth-challenge":
          case "auth-ok":
          case "auth-proof":
          case "auth-token":
            // Handshake messages never reach here (link-connection.ts refuses them).
            conn.close(new ProtocolError(`unexpected ${m.type} after registration`));
        }
      });
      conn.onClose((err: AbsError | null) => {
        clearTimeout(registerTimer);
        clearInterval(heartbeat);
        if (this.conn === conn) this.conn = null;
        runner.detach(port);
        const why = err === null ? "closed" : describeError(err);
        if (this.state === "stopped") {
          this.opts.logger.info(`session with the master at ${where} closed`);
        } else if (registered) {
          this.opts.logger.warn(`lost the master at ${where}: ${why}; running jobs go on`);
        } else {
          this.opts.logger.warn(`the master at ${where} closed before registering: ${why}`);
        }
        resolve(registered);
      });
      conn.send({
        type: "register",
        name: conn.name,
        maxJobs: this.opts.maxJobs(),
        running,
        results,
      });
    });
  }
}
