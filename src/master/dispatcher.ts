// Sends queued jobs to their slaves and acts on the jobs' deadlines.
//
// The dispatcher keeps an index of the unfinished jobs (queued ones by
// slave, active ones by slave), fed by the store's change events, so a pass
// looks only at the queues of slaves that can take a job: with 100,000 jobs
// waiting for a slave that is away, a result elsewhere costs nothing.
//
// Order of a dispatch: the job is reserved in the index, its move to
// `dispatched` is written, and only then is the dispatch sent. A master that
// dies in between has a dispatched job the slave never got; the slave's next
// registration does not list it, and the session queues it again as the
// same attempt (slave-session.ts). The other order could run a job twice.
//
// Deadlines (job-policy.ts nextDeadline): a queued job past its start
// deadline fails; a retry waits for its backoff; a job past its max run
// time is canceled; an orphaned job whose slave has not reported it within
// the grace period is lost (and may be retried). One timer, armed for the
// earliest deadline.
//
// Passes are coalesced: many changes in one turn of the event loop lead to
// one pass.

import type { Clock, Timer } from "../clock.js";
import { formatDuration } from "../config/duration.js";
import { describeError } from "../errors.js";
import { isFinished, type Job } from "../jobsdir/job.js";
import type { Transition } from "../jobsdir/job-state.js";
import type { JobStore } from "../jobsdir/job-store.js";
import type { Logger } from "../log.js";
import { type SlaveLoad, planDispatch, waitReason } from "./dispatch-plan.js";
import { afterFailure, type Deadline, nextDeadline } from "./job-policy.js";
import type { SlaveSession } from "./slave-session.js";

export interface DispatchLimits {
  /** Jobs dispatched or running across all slaves (max_concurrent). */
  maxConcurrent: number;
  /** Per-slave limit; a slave that asks for fewer gets fewer (default_slave_max_jobs). */
  defaultSlaveMaxJobs: number;
  /** Milliseconds an orphaned job waits for its slave (orphan_grace). */
  orphanGraceMs: number;
}

export interface DispatcherOptions {
  store: JobStore;
  clock: Clock;
  logger: Logger;
  limits: DispatchLimits;
}

/** States in which a job occupies a place on its slave. */
const ACTIVE_STATES = new Set(["dispatched", "running", "canceling", "orphaned"]);

export class Dispatcher {
  state: "stopped" | "running" = "stopped";
  private limits: DispatchLimits;
  private readonly sessions = new Map<string, SlaveSession>();
  private readonly queued = new Map<string, Map<number, Job>>();
  private readonly active = new Map<string, Set<number>>();
  private activeTotal = 0;
  private readonly orphanedUntil = new Map<number, number>();
  private readonly deadlines = new Map<number, Deadline>();
  private timer: Timer | null = null;
  private timerAt = Infinity;
  private passPending = false;
  private readonly unsubscribe: () => void;

  constructor(private readonly opts: DispatcherOptions) {
    this.limits = opts.limits;
    for (const job of opts.store.query({
      states: ["queued", "dispatched", "running", "canceling", "orphaned"],
    })) {
      this.index(job);
      // Queued jobs' start deadlines and retry backoffs count across restarts.
      if (job.state === "queued") this.track(job);
    }
    this.unsubscribe = opts.store.onChange((job) => this.changed(job));
  }

  /**
   * Starts dispatching. Jobs that were dispatched, running or being canceled
   * when the master stopped become orphaned: their slaves have the grace
   * period to report them.
   */
  async start(): Promise<void> {
    this.state = "running";
    const now = this.opts.clock.now();
    const until = now + this.limits.orphanGraceMs;
    const grace = formatDuration(this.limits.orphanGraceMs);
    const inFlight = this.opts.store.query({
      states: ["dispatched", "running", "canceling", "orphaned"],
    });
    for (const job of inFlight) {
      if (job.state === "canceling") {
        await this.cancelWithoutSlave(job, now, "the master restarted");
        continue;
      }
      this.orphanedUntil.set(job.id, until);
      if (job.state === "orphaned") {
        this.track(job);
        continue;
      }
      await this.move(job, {
        to: "orphaned",
        now,
        message: `master restarted while ${job.state}; waiting ${grace} for slave ${job.slave} to report it`,
      });
    }
    this.kick();
  }

  stop(): void {
    this.state = "stopped";
    this.unsubscribe();
    this.timer?.cancel();
    this.timer = null;
  }

  setLimits(limits: DispatchLimits): void {
    this.limits = limits;
    this.kick();
  }

  /** A slave registered (its jobs reconciled): it may get jobs. A second session of a name replaces the first. */
  slaveRegistered(session: SlaveSession): void {
    const previous = this.sessions.get(session.name);
    if (previous !== undefined && previous !== session) previous.close();
    this.sessions.set(session.name, session);
    this.kick();
  }

  /** A slave's connection closed: its jobs in flight are orphaned for the grace period. */
  async slaveGone(session: SlaveSession): Promise<void> {
    if (this.sessions.get(session.name) !== session) return; // replaced already
    this.sessions.delete(session.name);
    const now = this.opts.clock.now();
    const grace = formatDuration(this.limits.orphanGraceMs);
    for (const job of this.opts.store.query({
      slave: session.name,
      states: ["dispatched", "running", "canceling"],
    })) {
      if (job.state === "canceling") {
        await this.cancelWithoutSlave(job, now, `lost contact with slave ${job.slave}`);
        continue;
      }
      this.orphanedUntil.set(job.id, now + this.limits.orphanGraceMs);
      await this.move(job, {
        to: "orphaned",
        now,
        message: `lost contact with slave ${job.slave}; waiting ${grace} for it to report the job`,
      });
    }
  }

  /** The session of a connected, registered slave. */
  session(name: string): SlaveSession | undefined {
    return this.sessions.get(name);
  }

  get connectedSlaves(): ReadonlyMap<string, SlaveSession> {
    return this.sessions;
  }

  /** Jobs dispatched to `slave` and not finished (orphaned ones included). */
  activeOn(slave: string): number {
    return this.active.get(slave)?.size ?? 0;
  }

  /** The limit that applies to `slave` now. */
  maxJobsOf(session: SlaveSession): number {
    return Math.min(session.maxJobs, this.limits.defaultSlaveMaxJobs);
  }

  /** Why `job` waits, for `abs show jobs` (null when it does not). */
  waitReasonOf(job: Job): string | null {
    return waitReason(job, {
      now: this.opts.clock.now(),
      slave: this.load(job.slave),
      globalMax: this.limits.maxConcurrent,
      globalActive: this.activeTotal,
      orphanedUntil: this.orphanedUntil.get(job.id),
    });
  }

  /**
   * Cancels a job: a queued one at once; a dispatched or running one by
   * asking its slave (canceling until it confirms); an orphaned one at once,
   * its slave told to stop it if it reports it later.
   */
  async cancel(job: Job, why: string): Promise<Job> {
    const now = this.opts.clock.now();
    switch (job.state) {
      case "queued":
      case "orphaned":
        return this.opts.store.transition(job.id, {
          to: "canceled",
          now,
          message: why,
          result: { message: why, data: {} },
        });
      case "dispatched":
      case "running": {
        const changed = await this.opts.store.transition(job.id, {
          to: "canceling",
          now,
          message: `${why}; asking slave ${job.slave} to stop it`,
        });
        this.sessions.get(job.slave)?.send({ type: "cancel", jobId: job.id, attempt: job.attempt });
        return changed;
      }
      case "canceling":
        // Ask again: the first request may have been lost with a connection.
        this.sessions.get(job.slave)?.send({ type: "cancel", jobId: job.id, attempt: job.attempt });
        return job;
      case "succeeded":
      case "failed":
      case "canceled":
        return job;
    }
  }

  /** Schedules a dispatch pass (one per turn of the event loop). */
  kick(): void {
    if (this.passPending || this.state !== "running") return;
    this.passPending = true;
    setImmediate(() => {
      this.passPending = false;
      this.pass();
    });
  }

  // ---- the index ----

  private changed(job: Job): void {
    this.unindex(job);
    this.index(job);
    if (job.state !== "orphaned") this.orphanedUntil.delete(job.id);
    this.track(job);
    if (job.state === "queued" || isFinished(job.state)) this.kick();
  }

  private index(job: Job): void {
    if (job.state === "queued") {
      let q = this.queued.get(job.slave);
      if (q === undefined) this.queued.set(job.slave, (q = new Map<number, Job>()));
      q.set(job.id, job);
    } else if (ACTIVE_STATES.has(job.state)) {
      let a = this.active.get(job.slave);
      if (a === undefined) this.active.set(job.slave, (a = new Set<number>()));
      if (!a.has(job.id)) {
        a.add(job.id);
        this.activeTotal += 1;
      }
    }
  }

  private unindex(job: Job): void {
    const q = this.queued.get(job.slave);
    if (q !== undefined && q.delete(job.id) && q.size === 0) this.queued.delete(job.slave);
    const a = this.active.get(job.slave);
    if (a?.delete(job.id) === true) {
      this.activeTotal -= 1;
      if (a.size === 0) this.active.delete(job.slave);
    }
  }

  private load(name: string): SlaveLoad | undefined {
    const session = this.sessions.get(name);
    if (session === undefined) return undefined;
    return {
      name,
      connected: true,
      maxJobs: this.maxJobsOf(session),
      active: this.activeOn(name),
    };
  }

  // ---- dispatching ----

  private pass(): void {
    if (this.state !== "running") return;
    if (this.activeTotal >= this.limits.maxConcurrent) return;
    const now = this.opts.clock.now();
    const candidates: Job[] = [];
    const loads = new Map<string, SlaveLoad>();
    for (const [name] of this.sessions) {
      const load = this.load(name);
      const queue = this.queued.get(name);
      if (load === undefined || queue === undefined || load.active >= load.maxJobs) continue;
      loads.set(name, load);
      for (const job of queue.values()) {
        const { notBefore } = job.timestamps;
        if (notBefore === null || notBefore <= now) candidates.push(job);
      }
    }
    if (candidates.length === 0) return;
    const plan = planDispatch({
      queued: candidates,
      slaves: loads,
      globalMax: this.limits.maxConcurrent,
      globalActive: this.activeTotal,
    });
    for (const { job } of plan.dispatch) {
      // Reserve the place now: the next pass must not send the job again
      // while its move to dispatched is being written.
      this.unindex(job);
      this.index({ ...job, state: "dispatched" });
      void this.send(job, now);
    }
  }

  private async send(job: Job, now: number): Promise<void> {
    const session = this.sessions.get(job.slave);
    let dispatched: Job;
    try {
      dispatched = await this.opts.store.transition(job.id, {
        to: "dispatched",
        now,
        message: `dispatched to ${job.slave}`,
      });
    } catch (err) {
      // Canceled or failed meanwhile, or the store cannot write: put the
      // index back as the store has it.
      this.opts.logger.warn(`job ${job.id}: not dispatched: ${describeError(err)}`, {
        job: job.id,
      });
      const current = this.opts.store.get(job.id);
      this.unindex(job);
      if (current !== undefined) this.index(current);
      this.kick();
      return;
    }
    if (
      session === undefined ||
      this.sessions.get(job.slave) !== session ||
      !session.send({
        type: "dispatch",
        jobId: dispatched.id,
        attempt: dispatched.attempt,
        definition: dispatched.definition,
        method: dispatched.method,
        params: dispatched.params,
        maxRunTimeMs: dispatched.policy.maxRunTimeMs,
      })
    ) {
      // The slave went away while the dispatch was written: slaveGone has
      // already orphaned its jobs, but not this one, which was still queued.
      const grace = this.limits.orphanGraceMs;
      this.orphanedUntil.set(job.id, this.opts.clock.now() + grace);
      await this.move(dispatched, {
        to: "orphaned",
        now: this.opts.clock.now(),
        message: `slave ${job.slave} went away as the job was dispatched; waiting ${formatDuration(grace)} for it to report the job`,
      });
      return;
    }
    this.opts.logger.debug(`job ${job.id}: dispatched to ${job.slave}`, {
      job: job.id,
      slave: job.slave,
    });
  }

  // ---- deadlines ----

  private track(job: Job): void {
    const deadline = nextDeadline(job, this.opts.clock.now(), this.orphanedUntil.get(job.id));
    if (deadline === null) {
      this.deadlines.delete(job.id);
      return;
    }
    this.deadlines.set(job.id, deadline);
    if (deadline.at < this.timerAt) this.arm(deadline.at);
  }

  private arm(at: number): void {
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.opts.clock.setTimer(Math.max(0, at - this.opts.clock.now()), () => {
      this.timer = null;
      this.timerAt = Infinity;
      void this.expire();
    });
  }

  private async expire(): Promise<void> {
    const now = this.opts.clock.now();
    const due: [number, Deadline][] = [];
    let next = Infinity;
    for (const [id, d] of this.deadlines) {
      if (d.at <= now) due.push([id, d]);
      else next = Math.min(next, d.at);
    }
    for (const [id] of due) this.deadlines.delete(id);
    if (next < Infinity) this.arm(next);
    for (const [id, deadline] of due) {
      const job = this.opts.store.get(id);
      if (job !== undefined) await this.act(job, deadline, now);
    }
  }

  private async act(job: Job, deadline: Deadline, now: number): Promise<void> {
    switch (deadline.kind) {
      case "retry":
        // The backoff is over: dispatch may take it, and its start deadline (if any) now counts.
        this.track(job);
        this.kick();
        return;
      case "start-deadline": {
        if (job.state !== "queued") return;
        const why = `start deadline passed: not started by ${new Date(deadline.at).toISOString()}`;
        await this.move(job, {
          to: "failed",
          now,
          message: why,
          result: { message: why, data: {} },
        });
        return;
      }
      case "max-run-time": {
        if (job.state !== "dispatched" && job.state !== "running") return;
        const limit = formatDuration(job.policy.maxRunTimeMs ?? 0);
        await this.cancel(job, `max run time ${limit} exceeded`).catch((err: unknown) =>
          this.opts.logger.error(`job ${job.id}: cannot cancel: ${describeError(err)}`, {
            job: job.id,
          }),
        );
        return;
      }
      case "orphan-grace": {
        if (job.state !== "orphaned") return;
        const why = `lost: slave ${job.slave} did not report it within ${formatDuration(this.limits.orphanGraceMs)}`;
        await this.move(job, afterFailure(job, now, why, { message: why, data: {} }));
        return;
      }
    }
  }

  /**
   * A job being canceled whose slave is out of reach is canceled at once:
   * the administrator's decision stands, and an orphaned job must not come
   * back as a retry. If the slave reports it later, it is told to stop it
   * (the session cancels every finished job a slave says it runs).
   */
  private async cancelWithoutSlave(job: Job, now: number, why: string): Promise<void> {
    const message = `canceled: ${why} before slave ${job.slave} confirmed the cancel`;
    await this.move(job, { to: "canceled", now, message, result: { message, data: {} } });
  }

  /** A transition the dispatcher decided; a failure is logged (the job changed meanwhile). */
  private async move(job: Job, change: Transition): Promise<void> {
    try {
      await this.opts.store.transition(job.id, change);
      this.opts.logger.info(`job ${job.id}: ${change.message}`, { job: job.id, slave: job.slave });
    } catch (err) {
      this.opts.logger.warn(`job ${job.id}: ${change.to} not recorded: ${describeError(err)}`, {
        job: job.id,
      });
    }
  }
}
