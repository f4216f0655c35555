// The master's side of one authenticated slave connection, after the
// handshake: registration, reattaching jobs the slave still runs, and the
// reports of running jobs (started, progress, result, reject).
//
// Exactly once: a result is written to the job file before the master sends
// `ack`, and a result the store already holds is acknowledged again without a
// second change. The slave keeps a result until it sees the ack, and repeats
// it in its next `register` (after a disconnect, a slave restart or a master
// move), so every result reaches the jobs directory once and only once.
//
// A slave speaks only for its own jobs: a report about a job of another
// slave is logged and acknowledged (so the slave stops repeating it) but
// changes nothing. Such reports (a job not in the jobs directory, another
// slave's, another attempt) are logged one a minute with a summary of the
// rest, and a thousand within a minute disconnect the slave
// (unexpected-reports.ts).
//
// Registration is authoritative: a job the master has on this slave
// (dispatched, running, orphaned, canceling) that the slave neither runs
// nor has a result for is not there. One that never started is queued
// again as the same attempt (the dispatch was lost in transit); one that
// had started is lost, and its retry policy decides.
//
// Messages are handled one at a time, in order: a `started` is stored before
// the `result` that follows it. A result's write is the one thing the next
// message does not wait for (see handle).
//
// States: `awaiting-register` from the handshake until the slave's register
// is handled, then `registered`, and `closed` once the connection is gone.

import { AbsError, ProtocolError, describeError } from "../errors.js";
import { isFinished, type Job } from "../jobsdir/job.js";
import { lostResult, recordProgress, transition, type Transition } from "../jobsdir/job-state.js";
import type { JobStore } from "../jobsdir/job-store.js";
import type { Logger } from "../log.js";
import { afterFailure } from "./job-policy.js";
import { UnexpectedReports } from "./unexpected-reports.js";
import type {
  JobResultReport,
  MasterToSlaveMessage,
  RegisterMessage,
  RunningJobReport,
  SlaveToMasterMessage,
} from "../protocol/slave-messages.js";

/** How long a `started` may wait to be written with the result of a short job, in ms. */
export const STARTED_WRITE_DEFER_MS = 200;
/** How long progress may wait to be written with the next progress or the result, in ms. */
export const PROGRESS_WRITE_DEFER_MS = 1000;

/** What the session needs of its connection. */
export interface SessionPort {
  send(message: MasterToSlaveMessage): boolean;
  close(error?: AbsError): void;
}

export interface SlaveSessionOptions {
  /** The slave's name (hello); every job it reports must be one of its own. */
  name: string;
  /** The master's name, sent in `registered`. */
  master: string;
  heartbeatMs: number;
  store: JobStore;
  port: SessionPort;
  logger: Logger;
  clock?: () => number;
  /** Called once the slave is registered (its jobs reconciled, `registered` sent). */
  onRegistered?: (session: SlaveSession) => void;
  /** Bounds on reports about unexpected jobs (unexpected-reports.ts defaults: 1,000 a minute). */
  unexpectedReports?: { windowMs?: number; max?: number };
}

export type SlaveSessionState = "awaiting-register" | "registered" | "closed";

export class SlaveSession {
  state: SlaveSessionState = "awaiting-register";
  /** Jobs the slave said it runs at once (from register). */
  maxJobs = 0;
  /** When the last message came (ms since the epoch): heartbeats keep it fresh. */
  lastHeard: number;
  private readonly now: () => number;
  private queue: Promise<void> = Promise.resolve();
  private readonly unexpected: UnexpectedReports;

  constructor(private readonly opts: SlaveSessionOptions) {
    this.now = opts.clock ?? Date.now;
    this.lastHeard = this.now();
    this.unexpected = new UnexpectedReports({
      slave: opts.name,
      logger: opts.logger,
      now: this.now,
      windowMs: opts.unexpectedReports?.windowMs,
      max: opts.unexpectedReports?.max,
    });
  }

  get name(): string {
    return this.opts.name;
  }

  /** The heartbeat interval this slave was given when it registered, in ms. */
  get heartbeatMs(): number {
    return this.opts.heartbeatMs;
  }

  /** Sends a message to the slave; false when the connection is gone. */
  send(message: MasterToSlaveMessage): boolean {
    if (this.state === "closed") return false;
    return this.opts.port.send(message);
  }

  /**
   * Handles one message after those before it; resolves when it is dealt
   * with (durably, for anything that changes a job). Never rejects: a
   * protocol error closes the connection, a store error is logged and the
   * report is not acknowledged, so the slave repeats it later.
   */
  handle(message: SlaveToMasterMessage): Promise<void> {
    this.lastHeard = this.now();
    const turn = this.queue.then(() => {
      const done = this.handleNow(message);
      // A result's change is handed to the store as handleNow starts (the
      // store keeps each job's changes in order); only its ack waits for
      // the write. So the next message need not wait for that write: the
      // results of a slave's jobs are written together, and a result can
      // still merge with its job's deferred dispatch and started (writing
      // them one after the other made three writes of a short job, not two).
      return { done, next: message.type === "result" ? Promise.resolve() : done };
    });
    this.queue = turn.then(({ next }) => next);
    return turn.then(({ done }) => done);
  }

  private async handleNow(message: SlaveToMasterMessage): Promise<void> {
    try {
      await this.dispatch(message);
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.opts.logger.warn(`slave ${this.opts.name}: ${err.message}`, { slave: this.opts.name });
        this.close(err);
      } else {
        this.opts.logger.error(`slave ${this.opts.name}: ${describeError(err)}`, {
          slave: this.opts.name,
        });
        // A registration that could not be recorded leaves the slave
        // unregistered: close, so that it registers again (it keeps its
        // reports until they are acknowledged).
        if (message.type === "register") {
          this.close(
            err instanceof AbsError
              ? err
              : new AbsError("INTERNAL", `registration failed: ${describeError(err)}`),
          );
        }
      }
    }
  }

  close(error?: AbsError): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.unexpected.close();
    this.opts.port.close(error);
  }

  private async dispatch(message: SlaveToMasterMessage): Promise<void> {
    if (this.state === "closed") return;
    if (
      this.state === "awaiting-register" &&
      message.type !== "register" &&
      message.type !== "heartbeat"
    ) {
      throw new ProtocolError(`${message.type} before register`);
    }
    switch (message.type) {
      case "register":
        return this.register(message);
      case "heartbeat":
        return;
      // Started and progress need no reply, so their writes are not waited
      // for, and may wait a little to merge with what follows: a short job's
      // `started` and result become one write, a stream of progress one
      // write a second. The store applies them in order at once; the
      // result's ack waits for the write that holds it. (A master that dies
      // inside that window has the job as dispatched: the slave's next
      // registration reports it running, or its result.)
      case "started":
        return this.onJob(message.jobId, message.attempt, "started", (job) => {
          this.inBackground(
            job.id,
            this.opts.store.update(
              job.id,
              (j) => {
                // The attempt is checked again on the newest version: a retry
                // queued meanwhile is another attempt.
                if (j.attempt !== message.attempt) return j;
                const d = this.dispatchRecorded(j);
                return d.state === "dispatched"
                  ? transition(d, {
                      to: "running",
                      now: this.now(),
                      message: `started on ${this.opts.name}`,
                    })
                  : j;
              },
              { deferMs: STARTED_WRITE_DEFER_MS },
            ),
          );
          return Promise.resolve();
        });
      case "progress":
        return this.onJob(message.jobId, message.attempt, "progress", (job) => {
          const progress = { files: message.files, bytes: message.bytes, path: message.path };
          this.inBackground(
            job.id,
            this.opts.store.update(
              job.id,
              (j) =>
                j.state === "running" || j.state === "canceling" ? recordProgress(j, progress) : j,
              { deferMs: PROGRESS_WRITE_DEFER_MS },
            ),
          );
          return Promise.resolve();
        });
      case "result":
        return this.result(message);
      case "reject":
        return this.onJob(message.jobId, message.attempt, "reject", async (job) => {
          if (isFinished(job.state)) return;
          await this.opts.store.transition(job.id, {
            to: "failed",
            now: this.now(),
            message: `refused by ${this.opts.name}: ${message.reason}`,
            result: { message: `refused by the slave: ${message.reason}`, data: {} },
          });
        });
      case "hello":
      case "auth-response":
      case "auth-token":
      case "error":
        // The link closes on the handshake messages after authentication, so
        // they never reach a session; an error from the slave is refused the
        // same way.
        throw new ProtocolError(`unexpected ${message.type} after authentication`);
    }
  }

  private async register(message: RegisterMessage): Promise<void> {
    if (this.state !== "awaiting-register") throw new ProtocolError("a second register");
    if (message.name !== this.opts.name) {
      throw new ProtocolError(
        `register names slave "${message.name}", but hello said "${this.opts.name}"`,
      );
    }
    this.maxJobs = message.maxJobs;
    // Results first: a job finished while the master was away is then not
    // reattached as running.
    for (const report of message.results) await this.result(report);
    for (const report of message.running) await this.reattach(report);
    await this.reconcile(message);
    // The connection may have closed while the reports were written.
    if ((this.state as SlaveSessionState) === "closed") return;
    this.state = "registered";
    this.opts.port.send({
      type: "registered",
      master: this.opts.master,
      heartbeatMs: this.opts.heartbeatMs,
    });
    this.opts.logger.info(
      `slave ${this.opts.name} registered: ${message.running.length} running, ${message.results.length} results`,
      {
        slave: this.opts.name,
      },
    );
    this.opts.onRegistered?.(this);
  }

  /** Jobs the master has on this slave that the slave does not report (see the header). */
  private async reconcile(message: RegisterMessage): Promise<void> {
    const reported = new Set<number>();
    for (const r of message.running) reported.add(r.jobId);
    for (const r of message.results) reported.add(r.jobId);
    const missing = this.opts.store.queryNewest({
      slave: this.opts.name,
      states: ["dispatched", "running", "orphaned", "canceling"],
    });
    for (const job of missing) {
      if (reported.has(job.id)) continue;
      const now = this.now();
      const name = this.opts.name;
      let change: Transition;
      if (job.state === "canceling") {
        const message = `canceled: ${name} no longer runs it`;
        change = { to: "canceled", now, message, result: { message, data: {} } };
      } else if (job.timestamps.started === null) {
        change = {
          to: "queued",
          now,
          sameAttempt: true,
          message: `${name} never received it; queued again`,
        };
      } else {
        const why = `lost: ${name} no longer runs it`;
        change = afterFailure(job, now, why, lostResult(why));
      }
      this.opts.logger.warn(`job ${job.id}: ${change.message}`, { slave: name, job: job.id });
      // Only from the state decided on: a change landing meanwhile wins.
      await this.opts.store.transitionFrom(job.id, [job.state], change);
    }
  }

  private async reattach(report: RunningJobReport): Promise<void> {
    const job = this.opts.store.get(report.jobId);
    if (
      job === undefined ||
      job.slave !== this.opts.name ||
      job.attempt !== report.attempt ||
      isFinished(job.state)
    ) {
      // Nothing here waits for this attempt: stop it on the slave.
      this.unexpected.note(
        `slave ${this.opts.name} runs job ${report.jobId} attempt ${report.attempt}, which this master does not expect; canceling it`,
        { slave: this.opts.name, job: report.jobId },
      );
      this.opts.port.send({ type: "cancel", jobId: report.jobId, attempt: report.attempt });
      return;
    }
    if (job.state === "canceling") {
      // The cancel may have been lost with the old connection: ask again.
      this.opts.port.send({ type: "cancel", jobId: job.id, attempt: job.attempt });
      return;
    }
    // Decided on the job's newest version: a change queued meanwhile (the
    // old connection being declared lost, say) is applied first.
    const to =
      report.state === "canceling"
        ? "canceling"
        : report.state === "running"
          ? "running"
          : "dispatched";
    let moved = false;
    await this.opts.store.update(job.id, (latest) => {
      if (latest.attempt !== report.attempt) return latest;
      const j = this.dispatchRecorded(latest);
      if (j.state !== "orphaned" && (j.state !== "dispatched" || to === "dispatched")) return j;
      moved = true;
      return transition(j, {
        to,
        now: this.now(),
        message: `reattached: ${this.opts.name} reports it ${report.state}`,
      });
    });
    if (!moved) {
      const now = this.opts.store.get(job.id);
      if (now?.state === "canceling" || (now !== undefined && isFinished(now.state))) {
        this.opts.port.send({ type: "cancel", jobId: job.id, attempt: job.attempt });
      }
    }
  }

  private async result(report: JobResultReport): Promise<void> {
    await this.onJob(report.jobId, report.attempt, "result", async (job) => {
      if (isFinished(job.state)) return; // Already stored: acknowledge again, change nothing.
      const now = this.now();
      const result = { message: report.message, data: report.data };
      // Decided on the newest version: a cancel queued meanwhile means no retry.
      await this.opts.store.update(job.id, (latest) => {
        if (isFinished(latest.state) || latest.attempt !== report.attempt) return latest;
        const j = this.dispatchRecorded(latest);
        const change: Transition =
          report.outcome === "failed" && j.state !== "canceling"
            ? afterFailure(j, now, `failed on ${this.opts.name}: ${report.message}`, result)
            : {
                to: report.outcome,
                now,
                message: `${report.outcome} on ${this.opts.name}: ${report.message}`,
                result,
              };
        return transition(j, change);
      });
      // Acknowledged only if this attempt's outcome is on disk (or the job
      // has moved past this attempt): an update that changed nothing (a
      // repeat) may have waited for a first write that failed.
      const stored = this.opts.store.get(job.id);
      if (stored !== undefined && !isFinished(stored.state) && stored.attempt === report.attempt) {
        throw new AbsError(
          "JOBSDIR_IO",
          `job ${job.id}: the result of attempt ${report.attempt} is not stored; not acknowledged, the slave will report it again`,
          { context: { jobId: job.id } },
        );
      }
    });
    this.opts.port.send({ type: "ack", jobId: report.jobId, attempt: report.attempt });
  }

  /**
   * A job this slave reports under its current attempt while the master has
   * it queued was dispatched, but the master stopped (or could not write)
   * before the dispatch was recorded (dispatcher.ts): recorded now, before
   * the report itself. Any other job is returned as it is.
   */
  private dispatchRecorded(j: Job): Job {
    if (j.state !== "queued" || j.slave !== this.opts.name) return j;
    return transition(j, {
      to: "dispatched",
      now: this.now(),
      message: `dispatched to ${this.opts.name} (recorded late: the dispatch was sent, but not yet written when the master stopped)`,
    });
  }

  /** A store change nobody waits for: its failure is logged (the slave will report again). */
  private inBackground(jobId: number, change: Promise<unknown>): void {
    change.catch((err: unknown) =>
      this.opts.logger.error(`slave ${this.opts.name}: job ${jobId}: ${describeError(err)}`, {
        slave: this.opts.name,
        job: jobId,
      }),
    );
  }

  /** Runs `apply` for a job of this slave and this attempt; logs and skips anything else. */
  private async onJob(
    jobId: number,
    attempt: number,
    what: string,
    apply: (job: Job) => Promise<void>,
  ): Promise<void> {
    const job = this.opts.store.get(jobId);
    const meta = { slave: this.opts.name, job: jobId };
    if (job === undefined) {
      this.unexpected.note(
        `slave ${this.opts.name}: ${what} for job ${jobId}, which is not in the jobs directory`,
        meta,
      );
      return;
    }
    if (job.slave !== this.opts.name) {
      this.unexpected.note(
        `slave ${this.opts.name}: ${what} for job ${jobId}, which belongs to slave ${job.slave}; ignored`,
        meta,
      );
      return;
    }
    if (job.attempt !== attempt) {
      this.unexpected.note(
        `slave ${this.opts.name}: ${what} for job ${jobId} attempt ${attempt}, but the job is at attempt ${job.attempt}; ignored`,
        meta,
      );
      return;
    }
    await apply(job);
  }
}
