// Sends queued jobs to their slaves and acts on the jobs' deadlines.
//
// The dispatcher keeps an index of the unfinished jobs (queued ones by
// slave, active ones by slave), fed by the store's change events, so a pass
// looks only at the queues of slaves that can take a job: with 100,000 jobs
// waiting for a slave that is away, a result elsewhere costs nothing.
//
// Order of a dispatch: the job is reserved in the index, its move to
// `dispatched` is applied, the dispatch is sent, and the move's write lands
// a little later, merged with the slave's `started` (and a short job's
// result). Either way a master that dies in between is covered by the
// slave's next registration, which is authoritative (slave-session.ts): a
// job it reports is recorded as dispatched and running (or finished) under
// the same attempt; a dispatched job it does not report never reached it and
// is queued again as the same attempt. No attempt runs twice: a dispatch
// is sent once per attempt, and the attempt number tags every report.
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
import { isFinished, type Job, type JobState } from "../jobsdir/job.js";
import { lostResult, transition, type Transition } from "../jobsdir/job-state.js";
import type { JobStore, RequestChange } from "../jobsdir/job-store.js";
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

/** How long a dispatch's write may wait to land with the slave's first reports, in ms. */
export const DISPATCHED_WRITE_DEFER_MS = 200;

/** How long the dispatcher waits before trying again after the store failed a write, in ms. */
const RETRY_AFTER_ERROR_MS = 1000;

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
  /** Sessions already declared gone (a replaced one is, and then closes too). */
  private readonly gone = new WeakSet<SlaveSession>();
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
   * Starts dispatching. Jobs that were dispatched or running when the master
   * stopped become orphaned, and their slaves have the grace period to
   * report them; jobs that were being canceled are canceled. The changes go
   * out together (one commit group), not one write after another.
   */
  async start(): Promise<void> {
    this.state = "running";
    const now = this.opts.clock.now();
    const until = now + this.limits.orphanGraceMs;
    const grace = formatDuration(this.limits.orphanGraceMs);
    const inFlight = this.opts.store.query({
      states: ["dispatched", "running", "canceling", "orphaned"],
    });
    const changes: Promise<void>[] = [];
    for (const job of inFlight) {
      if (job.state === "canceling") {
        changes.push(this.cancelWithoutSlave(job, now, "the master restarted"));
        continue;
      }
      this.orphanedUntil.set(job.id, until);
      if (job.state === "orphaned") {
        this.track(job);
        continue;
      }
      changes.push(
        this.moveFrom(job, ["dispatched", "running"], {
          to: "orphaned",
          now,
          message: `master restarted while ${job.state}; waiting ${grace} for slave ${job.slave} to report it`,
        }),
      );
    }
    await Promise.all(changes);
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

  /** A slave registered (its jobs reconciled): it may get jobs. */
  slaveRegistered(session: SlaveSession): void {
    this.sessions.set(session.name, session);
    this.kick();
  }

  /**
   * A slave's connection closed, or a new connection of the same name
   * replaces it: its jobs in flight are orphaned for the grace period (or,
   * being canceled, canceled). Nothing is done while another session of the
   * name is registered: that one speaks for the slave now.
   *
   * The changes are queued together, before anything the next connection
   * of the slave can report, and each applies only to the state it expects:
   * a job reattached meanwhile stays reattached.
   */
  async slaveGone(session: SlaveSession): Promise<void> {
    const current = this.sessions.get(session.name);
    if (current !== undefined && current !== session) return;
    if (current === undefined && this.gone.has(session)) return; // done already
    this.gone.add(session);
    this.sessions.delete(session.name);
    const now = this.opts.clock.now();
    const grace = formatDuration(this.limits.orphanGraceMs);
    const lost = `lost contact with slave ${session.name}`;
    const jobs = this.opts.store.queryNewest({
      slave: session.name,
      states: ["dispatched", "running", "canceling"],
    });
    // Not awaited one by one: every change is queued now, ahead of anything
    // the slave's next connection reports.
    await Promise.all(
      jobs.flatMap((job) => [
        this.cancelWithoutSlave(job, now, lost),
        this.moveFrom(job, ["dispatched", "running"], {
          to: "orphaned",
          now,
          message: `${lost}; waiting ${grace} for it to report the job`,
        }),
      ]),
    );
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
   * its slave told to stop it if it reports it later. Decided on the job's
   * newest version (a dispatch being written is canceled through its slave).
   */
  async cancel(job: Job, why: string, request?: RequestChange<Job>): Promise<Job> {
    const now = this.opts.clock.now();
    const changed = await this.opts.store.update(
      job.id,
      (j) => {
        switch (j.state) {
          case "queued":
          case "orphaned":
            return transition(j, {
              to: "canceled",
              now,
              message: why,
              result: { message: why, data: {} },
            });
          case "dispatched":
          case "running":
            return transition(j, {
              to: "canceling",
              now,
              message: `${why}; asking slave ${j.slave} to stop it`,
            });
          case "canceling": // asked again below: the first request may have been lost
          case "succeeded":
          case "failed":
          case "canceled":
            return j;
        }
      },
      { request },
    );
    // Sent after the write, so it follows any dispatch written before it.
    if (changed.state === "canceling") {
      this.sessions
        .get(changed.slave)
        ?.send({ type: "cancel", jobId: changed.id, attempt: changed.attempt });
    }
    return changed;
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
    // The grace period starts when the job is seen orphaned (start() sets it
    // for jobs that were orphaned already when the master started).
    if (job.state !== "orphaned") this.orphanedUntil.delete(job.id);
    else if (!this.orphanedUntil.has(job.id)) {
      this.orphanedUntil.set(job.id, this.opts.clock.now() + this.limits.orphanGraceMs);
    }
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
        const { startBy } = job.policy;
        if (notBefore !== null && notBefore > now) continue; // backing off
        if (startBy !== null && startBy <= now) continue; // its deadline timer fails it
        candidates.push(job);
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
    // The move to dispatched is applied at once and its write may wait a
    // little, to land together with the slave's `started` and, for a short
    // job, its result (DISPATCHED_WRITE_DEFER_MS). The dispatch goes out as
    // soon as the move is applied. A master that dies before the write has
    // the job queued on disk while the slave runs it: the slave's next
    // registration reports it (running, or its result) under the same
    // attempt, and the session records the dispatch then (slave-session.ts).
    let applied: (moved: Job | null) => void = () => undefined;
    const appliedNow = new Promise<Job | null>((resolve) => (applied = resolve));
    const durable = this.opts.store.transitionFrom(
      job.id,
      ["queued"],
      { to: "dispatched", now, message: `dispatched to ${job.slave}` },
      { deferMs: DISPATCHED_WRITE_DEFER_MS, onApplied: (moved) => applied(moved) },
    );
    let failure: unknown = null;
    durable.then(
      (moved) => {
        if (moved === null) applied(null);
      },
      (err: unknown) => {
        failure = err;
        applied(null);
      },
    );
    const dispatched = await appliedNow;
    if (dispatched === null) {
      // Canceled or failed meanwhile (that change's event fixes the index),
      // or the store refused: the job stays queued, tried again shortly.
      this.unindex(job);
      const current = this.opts.store.get(job.id);
      if (current !== undefined) this.index(current);
      if (failure !== null) {
        this.opts.logger.warn(`job ${job.id}: not dispatched: ${describeError(failure)}`, {
          job: job.id,
        });
        this.opts.clock.setTimer(RETRY_AFTER_ERROR_MS, () => this.kick());
      }
      return;
    }
    durable.catch((err: unknown) => {
      this.opts.logger.error(
        `job ${job.id}: dispatched to ${job.slave}, but the dispatch could not be recorded: ${describeError(err)}; trying again`,
        { job: job.id, slave: job.slave },
      );
      this.recordDispatchLater(dispatched);
    });
    const sent =
      session !== undefined &&
      this.sessions.get(job.slave) === session &&
      session.send({
        type: "dispatch",
        jobId: dispatched.id,
        attempt: dispatched.attempt,
        definition: dispatched.definition,
        method: dispatched.method,
        params: dispatched.params,
        maxRunTimeMs: dispatched.policy.maxRunTimeMs,
      });
    if (!sent) {
      // The connection went (or was replaced) before the dispatch could be
      // sent: back to the queue as the same attempt, unless something else
      // changed it meanwhile.
      await this.moveFrom(dispatched, ["dispatched"], {
        to: "queued",
        sameAttempt: true,
        now: this.opts.clock.now(),
        message: `not sent: the connection of slave ${job.slave} closed as it was dispatched; queued again`,
      });
      return;
    }
    this.opts.logger.debug(`job ${job.id}: dispatched to ${job.slave}`, {
      job: job.id,
      slave: job.slave,
    });
  }

  /**
   * The dispatch of `job` was sent but its write failed: the store has the
   * job queued again, while its place stays reserved here (the slave may run
   * it). Records it again shortly, until that succeeds or something else
   * (the slave's reports, a cancel, the slave's loss) moves the job.
   */
  private recordDispatchLater(job: Job): void {
    this.opts.clock.setTimer(RETRY_AFTER_ERROR_MS, () => {
      if (this.state !== "running") return;
      this.opts.store
        .update(job.id, (j) =>
          j.state === "queued" && j.attempt === job.attempt
            ? transition(j, {
                to: "dispatched",
                now: this.opts.clock.now(),
                message: `dispatched to ${job.slave} (recorded again after a failed write)`,
              })
            : j,
        )
        .catch(() => this.recordDispatchLater(job));
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
        const why = `start deadline passed: not started by ${new Date(deadline.at).toISOString()}`;
        await this.moveFrom(
          job,
          ["queued"],
          { to: "failed", now, message: why, result: { message: why, data: {} } },
          deadline,
        );
        return;
      }
      case "max-run-time": {
        if (job.state !== "dispatched" && job.state !== "running") return;
        const limit = formatDuration(job.policy.maxRunTimeMs ?? 0);
        await this.cancel(job, `max run time ${limit} exceeded`).catch((err: unknown) => {
          this.opts.logger.error(`job ${job.id}: cannot cancel: ${describeError(err)}`, {
            job: job.id,
          });
          this.retryDeadline(job.id, deadline);
        });
        return;
      }
      case "orphan-grace": {
        const why = `lost: slave ${job.slave} did not report it within ${formatDuration(this.limits.orphanGraceMs)}`;
        await this.moveFrom(
          job,
          ["orphaned"],
          (j) => afterFailure(j, now, why, lostResult(why)),
          deadline,
        );
        return;
      }
    }
  }

  /** A deadline whose action could not be written is tried again a little later. */
  private retryDeadline(id: number, deadline: Deadline): void {
    const at = this.opts.clock.now() + RETRY_AFTER_ERROR_MS;
    this.deadlines.set(id, { ...deadline, at });
    if (at < this.timerAt) this.arm(at);
  }

  /**
   * A job being canceled whose slave is out of reach is canceled at once:
   * the administrator's decision stands, and an orphaned job must not come
   * back as a retry. If the slave reports it later, it is told to stop it
   * (the session cancels every finished job a slave says it runs).
   */
  private async cancelWithoutSlave(job: Job, now: number, why: string): Promise<void> {
    const message = `canceled: ${why} before slave ${job.slave} confirmed the cancel`;
    await this.moveFrom(job, ["canceling"], {
      to: "canceled",
      now,
      message,
      result: { message, data: {} },
    });
  }

  /**
   * A transition the dispatcher decided, applied only if the job (with every
   * change queued before it) is still in one of `from`. A write failure is
   * logged, and a deadline's action is tried again later.
   */
  private async moveFrom(
    job: Job,
    from: readonly JobState[],
    change: Transition | ((job: Job) => Transition),
    deadline?: Deadline,
  ): Promise<void> {
    try {
      const moved = await this.opts.store.transitionFrom(job.id, from, change);
      if (moved !== null) {
        const entry = moved.log[moved.log.length - 1];
        this.opts.logger.info(`job ${job.id}: ${entry.message}`, { job: job.id, slave: job.slave });
      }
    } catch (err) {
      this.opts.logger.warn(`job ${job.id}: change not recorded: ${describeError(err)}`, {
        job: job.id,
      });
      if (deadline !== undefined) this.retryDeadline(job.id, deadline);
    }
  }
}
