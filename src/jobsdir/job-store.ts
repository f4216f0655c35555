// The jobs directory: the only code that reads or writes it (DESIGN.md).
// This is its façade: the jobs in memory, their index and queries, making
// and changing jobs (through the one transition function), and telling who
// listens or waits. Its parts:
//
//   load.ts            lock, version, listing, quarantine, parse, serial, recovery
//   commit-queue.ts    when job files are written: merged, grouped, in order
//   request-file.ts    the records of admin requests (request-records.ts: their format)
//   archive.ts         finished jobs moved out of the way, and read back
//   side-files.ts      schedule state, slaves, disaster imports, drain
//   change-waiters.ts  `abs watch`'s long poll
//
// Every job lives in memory and in `job-<id>.json`. A change is applied in
// memory only after its file is durable, so what the store answers is always
// what a restart would read back. Changes to one job run one after the other
// (a promise chain per job); changes to different jobs that arrive together
// are committed together (commit-queue.ts).
//
// States of the store: `open` from `JobStore.open` until `close()` is called,
// then `closing` while writes under way finish, then `closed`.

import path from "node:path";
import {
  AbsError,
  DrainedError,
  JobNotFinishedError,
  JobNotFoundError,
  JobsDirClosedError,
  QueueFullError,
} from "../errors.js";
import { type JsonValue } from "../json-shape.js";
import { type Logger, silentLogger } from "../log.js";

import { type FsOps, realFsOps } from "../storage/fs-ops.js";
import { isFinished, type Job, type JobState, type NewJob, newQueuedJob } from "./job.js";

import { type RequestLookup, type RequestRecord, type RequestTag } from "./request-records.js";
import { type JobQuery, selectJobs } from "./job-query.js";
import { UnfinishedRuns } from "./unfinished-runs.js";
import { CommitQueue, type PendingRequest } from "./commit-queue.js";
import { RequestFile } from "./request-file.js";
import { ChangeWaiters } from "./change-waiters.js";
import { SideFiles } from "./side-files.js";
import { JobArchive } from "./archive.js";
import { type LoadReport, type Loaded, openJobsDir } from "./load.js";
import { type Transition, transition } from "./job-state.js";
import { type ImportedAttempt, type SlaveRecord } from "./state-files.js";
import { DirLock, type ProcessProbe, linuxProcessProbe } from "../storage/dir-lock.js";

export interface JobStoreOptions {
  /** The jobs directory. Created (with its version file) when it does not exist. */
  dir: string;
  /** Hard limit on unarchived jobs; a submission past it fails with QUEUE_FULL. Default 100,000. */
  maxJobs?: number;
  logger?: Logger;
  /** Milliseconds since the epoch; tests pass a fake clock. Default Date.now. */
  clock?: () => number;
  /**
   * Milliseconds on a clock that never steps back, for deferred writes (they
   * must not wait for a wall clock set back). Default performance.now; tests
   * pass one that moves as they say.
   */
  monotonic?: () => number;
  fs?: FsOps;
  probe?: ProcessProbe;
  /** Appended bytes after which the requests file is rewritten. Default 8 MiB; tests pass less. */
  requestsRewriteBytes?: number;
}

export interface ArchiveOutcome {
  archived: number;
  /** Finished jobs old enough that are still unarchived (left for the next batch). */
  remaining: number;
}

export type StoreState = "open" | "closing" | "closed";

export type { LoadReport, QuarantinedFile } from "./load.js";

export interface UpdateOptions {
  /**
   * Milliseconds the write may wait for a later change to the same job to
   * merge with (a `started` soon followed by the result, progress reports).
   * The change is in memory at once, as always, but durable (and announced)
   * only when written; a later change that may not wait writes both at
   * once. Default 0: written with the next group.
   */
  deferMs?: number;
  /**
   * Called when the change is applied in memory, before it is durable, with
   * the new version (not called when the change changes nothing). For the
   * one caller that may act before the write: the dispatcher, which sends a
   * dispatch while its move to dispatched is written (see dispatcher.ts).
   */
  onApplied?: (job: Job) => void;
  /**
   * The admin request making this change: its record is written with the
   * job's new version, before the job file (see submitAll). A change that
   * changes nothing writes no record here.
   */
  request?: RequestChange<Job>;
}

type ChangeListener = (job: Job) => void;

/**
 * An admin request whose record is written in the same write as the jobs it
 * makes or changes (submitAll, update's `request`): `reply` makes the
 * answer recorded for it from what it did.
 */
export interface RequestChange<T> {
  tag: RequestTag;
  reply: (done: T) => JsonValue;
}

export const DEFAULT_MAX_JOBS = 100_000;

export class JobStore {
  state: StoreState = "open";
  readonly loadReport: LoadReport;

  private readonly dir: string;
  private readonly logger: Logger;
  private readonly clock: () => number;
  private maxJobs: number;
  /** Unarchived jobs, in ascending id order (load sorts; new ids are larger). */
  private readonly jobs: Map<number, Job>;
  /** The unfinished ones of `jobs` by definition and slave. */
  private readonly unfinished = new UnfinishedRuns();
  private lastId: number;
  /** Schedule state, slaves, disaster imports, drain (side-files.ts). */
  private readonly side: SideFiles;
  private pendingSubmissions = 0;
  /** The newest version of jobs with a change not yet durable (what the next change applies to). */
  private readonly latest = new Map<number, Job>();
  private readonly chains = new Map<number, Promise<unknown>>();
  private readonly waiters = new ChangeWaiters();
  private readonly listeners = new Set<ChangeListener>();
  private readonly archived: JobArchive;
  /** The records of admin requests (request-file.ts). */
  private readonly requests: RequestFile;
  private readonly queue: CommitQueue;

  private constructor(
    opts: Required<
      Pick<JobStoreOptions, "dir" | "maxJobs" | "logger" | "clock" | "monotonic" | "fs">
    >,
    private readonly lock: DirLock,
    loaded: Loaded,
    requestsRewriteBytes: number | undefined,
  ) {
    this.dir = opts.dir;
    this.logger = opts.logger;
    this.clock = opts.clock;
    this.maxJobs = opts.maxJobs;
    this.jobs = loaded.jobs;
    for (const job of this.jobs.values()) this.unfinished.put(job);
    this.lastId = loaded.lastId;
    this.side = new SideFiles(opts.dir, opts.fs, opts.clock, loaded);
    this.archived = new JobArchive(opts.dir, opts.fs);
    this.requests = new RequestFile({
      dir: opts.dir,
      fs: opts.fs,
      logger: opts.logger,
      clock: opts.clock,
      records: loaded.requests,
      exists: loaded.requestsFileExists,
      rewriteBytes: requestsRewriteBytes,
    });
    this.queue = new CommitQueue({
      dir: opts.dir,
      fs: opts.fs,
      logger: opts.logger,
      monotonic: opts.monotonic,
      lastId: loaded.lastId,
      requests: this.requests,
      durable: (job) => {
        // Memory changes only once the file is durable: the store never
        // answers what a restart would not read back.
        this.jobs.set(job.id, job);
        this.unfinished.put(job);
        if (this.latest.get(job.id) === job) this.latest.delete(job.id);
        this.notify(job);
      },
      failed: (id) => this.latest.delete(id),
    });
    this.loadReport = loaded.report;
  }

  /**
   * Takes the directory's lock, checks its version and loads every job.
   * Files that cannot be used are quarantined and reported; the load goes on.
   */
  static async open(options: JobStoreOptions): Promise<JobStore> {
    const opts = {
      dir: path.resolve(options.dir),
      maxJobs: options.maxJobs ?? DEFAULT_MAX_JOBS,
      logger: options.logger ?? silentLogger,
      clock: options.clock ?? Date.now,
      monotonic: options.monotonic ?? (() => performance.now()),
      fs: options.fs ?? realFsOps,
    };
    const { lock, loaded } = await openJobsDir(opts.dir, opts.fs, opts.logger, {
      now: opts.clock(),
      probe: options.probe ?? linuxProcessProbe,
    });
    return new JobStore(opts, lock, loaded, options.requestsRewriteBytes);
  }

  // ---- reading ----

  get directory(): string {
    return this.dir;
  }

  /** Unarchived jobs. */
  get size(): number {
    return this.jobs.size;
  }

  get drained(): boolean {
    return this.side.drained;
  }

  get limit(): number {
    return this.maxJobs;
  }

  /** The highest job id handed out so far. */
  get highestId(): number {
    return this.lastId;
  }

  get(id: number): Job | undefined {
    return this.jobs.get(id);
  }

  /** Unarchived jobs matching `q`, in ascending id order. */
  query(q: JobQuery = {}): Job[] {
    return selectJobs(this.jobs.values(), q);
  }

  /** The unfinished jobs of `definition` on `slave`, in ascending id order (as query, without a scan). */
  unfinishedRuns(definition: string, slave: string): Job[] {
    return this.unfinished.of(definition, slave);
  }

  /**
   * As query, but over each job's newest version, written or not yet (a
   * change whose write waits to merge with the next, say). For the master's
   * decisions about a slave's jobs (its registration, its loss), which must
   * see a dispatch being written; what is shown to people stays `query`.
   */
  queryNewest(q: JobQuery = {}): Job[] {
    const latest = this.latest;
    function* newest(jobs: Iterable<Job>): Iterable<Job> {
      for (const j of jobs) yield latest.get(j.id) ?? j;
    }
    return selectJobs(newest(this.jobs.values()), q);
  }

  /** Reads an archived job from its file. */
  readArchived(id: number): Promise<Job> {
    return this.archived.read(id);
  }

  /** What the records say of a changing admin request: new, a repeat of one done, or its id reused. */
  lookupRequest(tag: RequestTag): RequestLookup {
    return this.requests.lookup(tag);
  }

  /** Calls `listener` with every job after each durable change (including new jobs). */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Resolves with the job as soon as its serial is above `lastSerial` or it is
   * finished (at once if that is already so), else with "nochange" after
   * `timeoutMs`.
   */
  async waitForChange(
    id: number,
    lastSerial: number,
    timeoutMs: number,
  ): Promise<Job | "nochange"> {
    const job = this.jobs.get(id) ?? (await this.readArchived(id));
    if (job.serial > lastSerial || isFinished(job.state)) return job;
    if (this.state !== "open") return "nochange";
    return this.waiters.wait(id, lastSerial, timeoutMs);
  }

  // ---- changing ----

  /**
   * Creates a queued job; resolves once its file (and the serial that gave
   * its id) are durable. Refused when drained (DRAINED) or at the limit
   * (QUEUE_FULL).
   */
  async submit(spec: NewJob): Promise<Job> {
    this.assertOpen();
    if (this.side.drained) throw new DrainedError();
    return this.create(spec, (job) => job);
  }

  /**
   * Creates a job that is already finished: `finish` takes it from queued to
   * its end (through the transition function) before anything is written,
   * so the dispatcher never sees it queued. For jobs that ran without this
   * master knowing (a disaster-log import); allowed while drained, since no
   * work is added.
   */
  async recordFinished(spec: NewJob, finish: (queued: Job) => Job): Promise<Job> {
    this.assertOpen();
    return this.create(spec, (queued) => {
      const job = finish(queued);
      if (!isFinished(job.state) || job.id !== queued.id) {
        throw new AbsError("INTERNAL", `job ${queued.id}: a recorded job must be finished`, {
          context: { jobId: queued.id },
        });
      }
      return job;
    });
  }

  /**
   * Creates queued jobs for one admin request, all or nothing: the request's
   * record, carrying every job, is written before any job file is renamed
   * into place, and a restart writes the job files the record has and the
   * directory lacks. So after a crash either the request and all its jobs
   * are there, or none of them. Refused as a whole when drained or when the
   * jobs would not all fit.
   */
  async submitAll(specs: readonly NewJob[], request: RequestChange<Job[]>): Promise<Job[]> {
    this.assertOpen();
    if (this.side.drained) throw new DrainedError();
    if (this.jobs.size + this.pendingSubmissions + specs.length > this.maxJobs) {
      throw new QueueFullError(this.maxJobs);
    }
    if (specs.length === 0) {
      await this.recordRequest(request.tag, request.reply([]));
      return [];
    }
    const now = this.clock();
    const jobs = specs.map((spec, i) => newQueuedJob(spec, this.lastId + 1 + i, now));
    this.lastId += jobs.length;
    const pending: PendingRequest = {
      record: { ...request.tag, at: now, reply: request.reply(jobs) },
      jobIds: jobs.map((j) => j.id),
    };
    this.pendingSubmissions += jobs.length;
    try {
      // Queued together and flushed once, so they go out in one group with
      // their record (a flush per job would start a group with the first).
      const written = jobs.map((job) =>
        this.queue.write(job, true, { request: pending, flush: false }),
      );
      this.queue.flush();
      await Promise.all(written);
    } finally {
      this.pendingSubmissions -= jobs.length;
    }
    return jobs;
  }

  /**
   * Records an admin request on its own, for one whose change is not a job
   * write (drain, archive, reload...): written after the change, so a crash
   * in between leaves the change without its record, and a retry does the
   * request again. Resolves once the record is durable.
   */
  async recordRequest(tag: RequestTag, reply: JsonValue): Promise<void> {
    this.assertOpen();
    if (this.requests.has(tag.id)) return;
    const record: RequestRecord = { ...tag, at: this.clock(), reply };
    const failure = await this.queue.recordAlone(record);
    if (failure !== null) throw failure;
    this.requests.add([record]);
  }

  /** Gives `spec` the next id, lets `shape` change it, and makes it durable. */
  private async create(spec: NewJob, shape: (queued: Job) => Job): Promise<Job> {
    if (this.jobs.size + this.pendingSubmissions >= this.maxJobs) {
      throw new QueueFullError(this.maxJobs);
    }
    const job = shape(newQueuedJob(spec, this.lastId + 1, this.clock())); // may throw: then no id is used
    this.lastId = job.id;
    this.pendingSubmissions += 1;
    try {
      await this.queue.write(job, true);
    } finally {
      this.pendingSubmissions -= 1;
    }
    return job;
  }

  /**
   * Applies `change` to job `id` and makes the result durable. `change` sees
   * the job as it is after every earlier change to it; returning the same
   * object means "nothing to change". Throws what `change` throws (an
   * IllegalTransitionError, say) and leaves the job as it was.
   */
  update(id: number, change: (job: Job) => Job, opts: UpdateOptions = {}): Promise<Job> {
    // The change is computed in order with the other tasks on this job, on
    // its newest version; its write is not awaited inside that order, so the
    // next change can be merged into the same write (see `pending`).
    return this.serialize(id, () => {
      this.assertOpen();
      const job = this.latest.get(id) ?? this.jobs.get(id);
      if (job === undefined) throw new JobNotFoundError(id);
      const next = change(job);
      if (next === job) {
        // Nothing to change: answer with the job as it is on disk once the
        // writes under way have landed (or failed).
        const durable = this.queue.lastWriteOf(id) ?? Promise.resolve();
        return Promise.resolve({ done: durable.then(() => this.jobs.get(id) ?? job) });
      }
      if (next.id !== id || next.serial <= job.serial) {
        throw new AbsError(
          "INTERNAL",
          `job ${id}: a change must keep the id and raise the serial`,
          {
            context: { jobId: id },
          },
        );
      }
      this.latest.set(id, next);
      const request: PendingRequest | undefined =
        opts.request === undefined
          ? undefined
          : {
              record: { ...opts.request.tag, at: this.clock(), reply: opts.request.reply(next) },
              jobIds: [id],
            };
      const written = this.queue.write(next, false, { deferMs: opts.deferMs ?? 0, request });
      opts.onApplied?.(next);
      return Promise.resolve({ done: written.then(() => next) });
    }).then(({ done }) => done);
  }

  /** Moves job `id` to another state through the one transition function. */
  transition(id: number, change: Transition): Promise<Job> {
    return this.update(id, (job) => transition(job, change));
  }

  /**
   * As transition, but only if the job, with every earlier change to it
   * applied (written or not yet), is in one of `from`; otherwise changes
   * nothing and resolves with null. Decisions taken on what a caller read
   * earlier (a cancel, a deadline, a lost slave) go through here, so a change
   * that landed in between wins instead of being overwritten.
   */
  async transitionFrom(
    id: number,
    from: readonly JobState[],
    change: Transition | ((job: Job) => Transition),
    opts: UpdateOptions = {},
  ): Promise<Job | null> {
    let applied = false;
    const job = await this.update(
      id,
      (j) => {
        if (!from.includes(j.state)) return j;
        applied = true;
        return transition(j, typeof change === "function" ? change(j) : change);
      },
      opts,
    );
    return applied ? job : null;
  }

  /**
   * The last trigger time (ms since the epoch) of each job definition, as
   * the scheduler last saved it; for the missed-run policy after downtime.
   */
  get scheduleState(): Readonly<Record<string, number>> {
    return this.side.scheduleState;
  }

  /** Saves the last trigger times durably (replacing what was saved). */
  async saveScheduleState(lastTriggers: Record<string, number>): Promise<void> {
    this.assertOpen();
    await this.side.saveScheduleState(lastTriggers);
  }

  /** The slaves that have registered, as last saved. */
  get slaves(): readonly SlaveRecord[] {
    return this.side.slaves;
  }

  /** Saves the registry of slaves durably (replacing what was saved). */
  async saveSlaves(slaves: readonly SlaveRecord[]): Promise<void> {
    this.assertOpen();
    await this.side.saveSlaves(slaves);
  }

  /** The attempts earlier disaster-log imports recorded as jobs, as last saved. */
  get importedAttempts(): readonly ImportedAttempt[] {
    return this.side.importedAttempts;
  }

  /** Saves them durably (replacing what was saved). */
  async saveImportedAttempts(imports: readonly ImportedAttempt[]): Promise<void> {
    this.assertOpen();
    await this.side.saveImportedAttempts(imports);
  }

  /** Turns draining on (new submissions refused) or off; survives restarts. */
  async setDrain(on: boolean): Promise<void> {
    this.assertOpen();
    await this.side.setDrain(on);
  }

  /** Applies a new limit on unarchived jobs (a config reload); existing jobs stay. */
  setMaxJobs(maxJobs: number): void {
    this.maxJobs = maxJobs;
  }

  /** Moves finished jobs to the archive. Throws JobNotFinishedError for a job that has not finished. */
  async archive(ids: readonly number[]): Promise<number> {
    this.assertOpen();
    for (const id of ids) {
      const job = this.jobs.get(id);
      if (job === undefined) throw new JobNotFoundError(id);
      if (!isFinished(job.state)) throw new JobNotFinishedError(id, job.state);
    }
    const results = await Promise.all(
      ids.map((id) => this.serialize(id, () => this.archiveOne(id))),
    );
    return results.filter(Boolean).length;
  }

  /**
   * Archives finished jobs that ended (else started, else were received) at
   * least `ageMs` ago, at most `batchSize` of them, oldest id first.
   */
  async autoarchive(ageMs: number, batchSize = 1000): Promise<ArchiveOutcome> {
    this.assertOpen();
    const cutoff = this.clock() - ageMs;
    const due: number[] = [];
    for (const job of this.jobs.values()) {
      if (!isFinished(job.state)) continue;
      const t = job.timestamps;
      if ((t.ended ?? t.started ?? t.received) <= cutoff) due.push(job.id);
    }
    const batch = due.slice(0, batchSize);
    const archived = await this.archive(batch);
    return { archived, remaining: due.length - batch.length };
  }

  /** Finishes the writes under way, wakes waiters and releases the lock. */
  async close(): Promise<void> {
    if (this.state !== "open") return;
    this.state = "closing";
    await Promise.allSettled([...this.chains.values()]);
    // Deferred writes go out now.
    await this.queue.close();
    this.waiters.wakeAll((id) => this.jobs.get(id));
    await this.lock.release();
    this.state = "closed";
  }

  // ---- internals ----

  private assertOpen(): void {
    if (this.state !== "open") throw new JobsDirClosedError();
  }

  /** Runs `task` after every earlier task on the same job. */
  private serialize<T>(id: number, task: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(id) ?? Promise.resolve();
    const run = previous.then(task);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.chains.set(id, settled);
    void settled.then(() => {
      if (this.chains.get(id) === settled) this.chains.delete(id);
    });
    return run;
  }

  private notify(job: Job): void {
    this.waiters.changed(job);
    for (const listener of this.listeners) listener(job);
  }

  private async archiveOne(id: number): Promise<boolean> {
    // A write of this job under way would put the file back after the move.
    await this.queue.lastWriteOf(id);
    const job = this.jobs.get(id);
    if (job === undefined || !isFinished(job.state)) return false;
    await this.archived.move(id);
    this.jobs.delete(id);
    this.logger.info(`job ${id} archived`, { job: id });
    return true;
  }
}
