// The slave's jobs: runs what the master dispatches, streams progress, and
// keeps every result until the master acknowledges it.
//
// A job's life on the slave, and why in this order:
//  1. dispatch: a repeat of an attempt it runs is ignored (`started` again);
//     one whose result waits for an ack gets the result again. Otherwise the
//     job is checked (method, parameters, allowed methods, programs and
//     paths, max_jobs) and
//     refused with `reject` if it cannot run.
//  2. A run record is written to the state directory, then `started` is
//     sent: after a crash the next slave knows the job died with it.
//  3. The method runs with an abort signal (cancel, max run time, the slave
//     stopping) and reports progress, sent at most every 250 ms.
//  4. Its result is written to the state directory and sent at once, so
//     that the master's write of it and ours are under way together. It is
//     removed when the master acks it (once our write is done), and repeated
//     at every registration until then. So a result reaches the master
//     exactly once. A crash before our write is done is a crash during the
//     job: the next slave reports it failed ("slave restarted"). A master
//     that has the result stored already acknowledges that report and
//     changes nothing (a job has one outcome); one that does not takes it
//     as the job's failure, as it would have before this order, when the
//     crash came before the write.
//
// Sending never waits for the master: with no session, `started` and
// progress are dropped (registration reports running jobs), results wait in
// the state directory. Losing the master never stops a job.

import { AbsError, describeError } from "../errors.js";
import type { JsonObject } from "../json-shape.js";
import type { Logger } from "../log.js";
import { formatDuration } from "../config/duration.js";
import type {
  CancelMessage,
  DispatchMessage,
  JobAttempt,
  JobResultReport,
  Outcome,
  RunningJobReport,
  SlaveToMasterMessage,
} from "../protocol/slave-messages.js";
import { runMethod } from "./methods/method.js";
import type { MethodContext, MethodResult } from "./methods/method-context.js";
import { isMethodName, preflight, removeLeftovers } from "./methods/preflight.js";
import type { RunAllowlist } from "./methods/allowed-programs.js";
import { idleCollector } from "./idle-collector.js";
import type { StateDir, StateDirContents } from "./state-dir.js";
import type { RunRecord } from "./state-records.js";

/** Where the runner's messages go: the current session, or nowhere. */
export interface RunnerPort {
  /** Sends if a session is registered; false (message dropped) otherwise. */
  send(message: SlaveToMasterMessage): boolean;
}

/** The settings a reload may change while jobs run. */
export interface RunnerLimits {
  maxJobs: number;
  allowedPaths: readonly string[];
  /** allowed_methods and allowed_programs (allowed-programs.ts). */
  allowedToRun: RunAllowlist;
}

export interface JobRunnerOptions {
  /** The slave's name, in messages. */
  name: string;
  stateDir: StateDir;
  logger: Logger;
  limits: RunnerLimits;
  /** Default working directory of `command` jobs (the state directory). */
  workDir: string;
  now?: () => number;
  /** Runs a method; tests replace it. Default runMethod. */
  run?: (method: string, params: JsonObject, ctx: MethodContext) => Promise<MethodResult>;
  /**
   * Called once an ack leaves nothing to do: no job runs, and the master has
   * every result (see `ack`); or idleWithoutAcksMs after the last job ended
   * if none runs then, acknowledged or not. Default an idleCollector
   * (idle-collector.ts).
   */
  whenIdle?: () => void;
  /** Default IDLE_WITHOUT_ACKS_MS. */
  idleWithoutAcksMs?: number;
}

/**
 * How long after the last job's end the runner is idle even if the master
 * has not acknowledged its results: a master that cannot store them sends
 * no ack (slave-session.ts) and may go on dispatching, and the slave would
 * then never collect garbage.
 */
export const IDLE_WITHOUT_ACKS_MS = 10_000;

/** Why a running job was told to stop. */
type StopReason =
  | { kind: "cancel" }
  | { kind: "max-run-time"; limitMs: number }
  | { kind: "slave-stopping"; why: string };

interface RunningJob {
  dispatch: DispatchMessage;
  state: "starting" | "running" | "canceling";
  controller: AbortController;
  stop: StopReason | null;
  progress: { files: number; bytes: number; path: string | null } | null;
  timer: NodeJS.Timeout | undefined;
  done: Promise<void>;
}

interface PendingResult {
  report: JobResultReport;
  /** Resolves once the result is on disk (or its write failed and was logged). */
  written: Promise<void>;
}

const NOWHERE: RunnerPort = { send: () => false };

const key = (a: JobAttempt): string => `${a.jobId}/${a.attempt}`;

export class JobRunner {
  private readonly running = new Map<string, RunningJob>();
  private readonly results = new Map<string, PendingResult>();
  /** Writes and removals of result records under way (they never reject): stopAll waits for them. */
  private readonly recording = new Set<Promise<void>>();
  private port: RunnerPort = NOWHERE;
  private limits: RunnerLimits;
  private readonly now: () => number;
  private readonly run: NonNullable<JobRunnerOptions["run"]>;
  private readonly whenIdle: () => void;
  /** The idle call of IDLE_WITHOUT_ACKS_MS, set at each job's end. */
  private idleTimer: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(private readonly opts: JobRunnerOptions) {
    this.limits = opts.limits;
    this.now = opts.now ?? Date.now;
    this.run =
      opts.run ??
      ((method, params, ctx) => {
        if (!isMethodName(method)) throw new AbsError("BAD_ARGUMENT", `unknown method "${method}"`);
        return runMethod(method, params, ctx);
      });
    this.whenIdle = opts.whenIdle ?? idleCollector();
  }

  /**
   * Takes over what the state directory held at startup: unacknowledged
   * results are kept to be reported; jobs that were running died with the
   * previous process and are recorded as failed, their leftovers removed.
   */
  async recover(contents: StateDirContents): Promise<void> {
    for (const r of contents.results) {
      this.results.set(key(r), { report: r, written: Promise.resolve() });
    }
    for (const run of contents.running) {
      const removed = await removeLeftovers(run.method, run.params, run.definition);
      const since = new Date(run.startedAt).toISOString();
      const message =
        `slave restarted: the job was running when abs-slave pid ${run.pid} stopped` +
        ` (started ${since})` +
        (removed.length > 0 ? `; removed ${removed.length} partial file(s)` : "");
      await this.finish(run, "failed", message, { code: "SLAVE_RESTARTED" });
    }
  }

  /** Where messages go from now on: a registered session. */
  attach(port: RunnerPort): void {
    this.port = port;
  }

  /** The session of `port` is over: messages go nowhere until the next attach. */
  detach(port: RunnerPort): void {
    if (this.port === port) this.port = NOWHERE;
  }

  setLimits(limits: RunnerLimits): void {
    this.limits = limits;
  }

  /** What `register` reports: the jobs running here and the unacknowledged results. */
  reports(): { running: RunningJobReport[]; results: JobResultReport[] } {
    const running: RunningJobReport[] = [];
    for (const job of this.running.values()) {
      if (job.state === "starting") continue; // not started: the master queues it again
      running.push({
        jobId: job.dispatch.jobId,
        attempt: job.dispatch.attempt,
        state: job.state,
        progress: job.progress,
      });
    }
    return { running, results: [...this.results.values()].map((r) => r.report) };
  }

  /** Sends every unacknowledged result (after a registration that did not carry them all). */
  resendResults(except: ReadonlySet<string>): void {
    for (const [k, r] of this.results) {
      if (!except.has(k)) this.port.send({ type: "result", ...r.report });
    }
  }

  dispatch(d: DispatchMessage): void {
    const k = key(d);
    const meta = { job: d.jobId };
    const current = this.running.get(k);
    if (current !== undefined) {
      this.opts.logger.info(
        `job ${d.jobId}: dispatch of attempt ${d.attempt} repeated; it runs already`,
        meta,
      );
      if (current.state !== "starting")
        this.port.send({ type: "started", jobId: d.jobId, attempt: d.attempt });
      return;
    }
    const pending = this.results.get(k);
    if (pending !== undefined) {
      this.opts.logger.info(
        `job ${d.jobId}: dispatch of attempt ${d.attempt} repeated; it is over, its result is sent again`,
        meta,
      );
      this.port.send({ type: "result", ...pending.report });
      return;
    }
    if (this.stopping) {
      this.reject(d, "the slave is stopping");
      return;
    }
    if (this.running.size >= this.limits.maxJobs) {
      this.reject(
        d,
        `${this.opts.name} is at its limit ${this.running.size}/${this.limits.maxJobs}`,
      );
      return;
    }
    const job: RunningJob = {
      dispatch: d,
      state: "starting",
      controller: new AbortController(),
      stop: null,
      progress: null,
      timer: undefined,
      done: Promise.resolve(),
    };
    this.running.set(k, job);
    job.done = this.start(job);
  }

  cancel(c: CancelMessage): void {
    const k = key(c);
    const job = this.running.get(k);
    if (job !== undefined) {
      this.opts.logger.info(`job ${c.jobId}: cancel requested by the master`, { job: c.jobId });
      this.stopJob(job, { kind: "cancel" });
      return;
    }
    const pending = this.results.get(k);
    if (pending !== undefined) {
      this.port.send({ type: "result", ...pending.report });
      return;
    }
    // Not here: the master waits for a confirmation, so give it one.
    const message = `canceled: ${this.opts.name} does not run job ${c.jobId} attempt ${c.attempt}`;
    void this.finish(c, "canceled", message, {});
  }

  /**
   * The master has the result on disk: forget it. Resolves once its record
   * is removed; then, if no job runs and no other result waits for an ack,
   * the runner is idle (whenIdle).
   *
   * Why then, not as the last result is sent: a collection (6-9 ms of CPU)
   * made as the master stores the result took a CPU from it and from
   * whoever waited for the job, when they share the host (the embedded
   * default, the benchmarks: 5-7 ms more on the median of an incremental).
   * Once the ack comes, the master has stored it and woken its watchers. A
   * slave whose results go unacknowledged (its master away, or unable to
   * store them) is idle IDLE_WITHOUT_ACKS_MS after its last job ended.
   */
  ack(a: JobAttempt): Promise<void> {
    const k = key(a);
    const pending = this.results.get(k);
    if (pending === undefined) return Promise.resolve(); // a repeat ack
    this.results.delete(k);
    const meta = { job: a.jobId };
    return this.track(
      pending.written
        .then(() => this.opts.stateDir.removeResult(a.jobId, a.attempt))
        .then(() =>
          this.opts.logger.info(
            `job ${a.jobId}: the master has the result of attempt ${a.attempt}`,
            meta,
          ),
        )
        .catch((err: unknown) =>
          this.opts.logger.warn(
            `job ${a.jobId}: ${describeError(err)} (it will be reported again)`,
            meta,
          ),
        )
        .then(() => {
          if (this.running.size === 0 && this.results.size === 0 && !this.stopping) {
            clearTimeout(this.idleTimer);
            this.whenIdle();
          }
        }),
    );
  }

  /** Calls whenIdle in idleWithoutAcksMs if no job runs then (see IDLE_WITHOUT_ACKS_MS). */
  private idleLater(): void {
    clearTimeout(this.idleTimer);
    if (this.stopping) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.running.size === 0 && !this.stopping) this.whenIdle();
    }, this.opts.idleWithoutAcksMs ?? IDLE_WITHOUT_ACKS_MS);
    // A collection is no reason to stay up.
    this.idleTimer.unref();
  }

  /** Keeps `p`, a write or removal of a record, in `recording` until it settles. */
  private track(p: Promise<void>): Promise<void> {
    this.recording.add(p);
    const done = () => this.recording.delete(p);
    p.then(done, done);
    return p;
  }

  /**
   * Stops every running job (`why`, e.g. "slave stopped (SIGTERM)"): each
   * ends failed with that reason, recorded like any result. Resolves when
   * all are recorded, and every other write or removal of a record is done.
   * No job is accepted afterwards.
   */
  async stopAll(why: string): Promise<void> {
    this.stopping = true;
    clearTimeout(this.idleTimer);
    const jobs = [...this.running.values()];
    for (const job of jobs) this.stopJob(job, { kind: "slave-stopping", why });
    await Promise.all(jobs.map((j) => j.done));
    while (this.recording.size > 0) await Promise.all([...this.recording]);
  }

  private stopJob(job: RunningJob, reason: StopReason): void {
    if (job.stop === null) job.stop = reason;
    if (job.state === "running") job.state = "canceling";
    if (!job.controller.signal.aborted) job.controller.abort(new Error(stopText(reason)));
  }

  private reject(d: DispatchMessage, reason: string): void {
    this.opts.logger.warn(`job ${d.jobId}: refused: ${reason}`, { job: d.jobId });
    this.port.send({ type: "reject", jobId: d.jobId, attempt: d.attempt, reason });
  }

  private async start(job: RunningJob): Promise<void> {
    const d = job.dispatch;
    const meta = { job: d.jobId };
    try {
      await preflight(
        d.method,
        d.params,
        d.definition,
        this.limits.allowedPaths,
        this.limits.allowedToRun,
      );
    } catch (err) {
      this.running.delete(key(d));
      this.reject(d, describeError(err));
      return;
    }
    const record: RunRecord = {
      jobId: d.jobId,
      attempt: d.attempt,
      definition: d.definition,
      method: d.method,
      params: d.params,
      maxRunTimeMs: d.maxRunTimeMs,
      startedAt: this.now(),
      pid: process.pid,
    };
    try {
      await this.opts.stateDir.writeRun(record);
    } catch (err) {
      this.running.delete(key(d));
      this.reject(d, `cannot record the job in the state directory: ${describeError(err)}`);
      return;
    }
    if (job.stop !== null) {
      // Canceled (or the slave stopping) while it was being checked and recorded.
      await this.end(job, null, new AbsError("CANCELED", `${d.method} canceled before it started`));
      return;
    }
    job.state = "running";
    this.opts.logger.info(
      `job ${d.jobId}: started ${d.definition} (${d.method}, attempt ${d.attempt})`,
      meta,
    );
    this.port.send({ type: "started", jobId: d.jobId, attempt: d.attempt });
    if (d.maxRunTimeMs !== null) {
      const limitMs = d.maxRunTimeMs;
      job.timer = setTimeout(() => this.stopJob(job, { kind: "max-run-time", limitMs }), limitMs);
    }
    let result: MethodResult | null = null;
    let failure: unknown = null;
    try {
      result = await this.run(d.method, d.params, {
        signal: job.controller.signal,
        onProgress: (p) => {
          job.progress = { files: p.files, bytes: p.bytes, path: p.path === "" ? null : p.path };
          this.port.send({ type: "progress", jobId: d.jobId, attempt: d.attempt, ...job.progress });
        },
        allowedPaths: this.limits.allowedPaths,
        allowedToRun: this.limits.allowedToRun,
        now: this.now,
        definition: d.definition,
        workDir: this.opts.workDir,
      });
    } catch (err) {
      failure = err;
    }
    clearTimeout(job.timer);
    await this.end(job, result, failure);
  }

  /** Turns how the method ended into an outcome, and records it. */
  private async end(job: RunningJob, result: MethodResult | null, failure: unknown): Promise<void> {
    const d = job.dispatch;
    let outcome: Outcome;
    let message: string;
    let data: JsonObject;
    if (result !== null) {
      [outcome, message, data] = ["succeeded", result.message, result.data];
    } else {
      const err = failure;
      const code = err instanceof AbsError ? err.code : "INTERNAL";
      const text = describeError(err);
      data = { code, ...(isDataError(err) ? err.data : {}) };
      if (code === "CANCELED" && job.stop !== null) {
        // A job stopped at its max run time ends canceled, as the master's
        // own max-run-time cancel does: the outcome is the same whichever
        // of the two clocks fires first. The method's message carries the
        // abort's reason ("... canceled: stopped at its max run time of 2h").
        outcome = job.stop.kind === "slave-stopping" ? "failed" : "canceled";
        message = text;
      } else {
        [outcome, message] = ["failed", text];
      }
    }
    await this.finish(d, outcome, message, data);
  }

  /** Forgets the run, sends the result and records it (durably) at the same time. */
  private async finish(
    a: JobAttempt,
    outcome: Outcome,
    message: string,
    data: JsonObject,
  ): Promise<void> {
    const report: JobResultReport = {
      jobId: a.jobId,
      attempt: a.attempt,
      outcome,
      message,
      data,
    };
    const k = key(a);
    const written = this.track(
      this.opts.stateDir.writeResult(report).catch((err: unknown) => {
        // Kept in memory and reported while this process lives; lost if it dies.
        this.opts.logger.error(
          `job ${a.jobId}: the result could not be written to the state directory: ${describeError(err)}`,
          { job: a.jobId },
        );
      }),
    );
    this.results.set(k, { report, written });
    this.running.delete(k);
    // Sent as it is being written, so that the master writes it meanwhile
    // (see the header, step 4); logged once it is on disk.
    this.port.send({ type: "result", ...report });
    await written;
    const line = `job ${a.jobId}: ${outcome}: ${message}`;
    if (outcome === "succeeded") this.opts.logger.info(line, { job: a.jobId });
    else this.opts.logger.warn(line, { job: a.jobId });
    if (this.running.size === 0) this.idleLater();
  }
}

function stopText(reason: StopReason): string {
  switch (reason.kind) {
    case "cancel":
      return "canceled by the master";
    case "max-run-time":
      return `stopped at its max run time of ${formatDuration(reason.limitMs)}`;
    case "slave-stopping":
      return reason.why;
  }
}

function isDataError(err: unknown): err is AbsError & { data: JsonObject } {
  return (
    err instanceof AbsError && "data" in err && typeof err.data === "object" && err.data !== null
  );
}
