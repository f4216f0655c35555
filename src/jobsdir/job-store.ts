// The jobs directory: the only code that reads or writes it (DESIGN.md).
//
// Every job lives in memory and in `job-<id>.json`. A change is applied in
// memory only after its file is durable, so what the store answers is always
// what a restart would read back. Changes to one job run one after the other
// (a promise chain per job); changes to different jobs that arrive together
// are committed together: their files are written and fsynced in parallel and
// the directory is fsynced once for the whole group (durable-files.ts).
//
// Job ids come from `serial`, written durably before any job file that uses
// the new ids, so an id is never handed out twice, even across a crash.
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
  JobsDirIoError,
  JobsDirLockedError,
  JobsDirVersionError,
  QueueFullError,
  describeError,
} from "../errors.js";
import { type JsonValue, ShapeError } from "../json-shape.js";
import { type Logger, silentLogger } from "../log.js";
import {
  type FileWrite,
  commitFile,
  commitFiles,
  prepareFiles,
  publishFiles,
} from "./durable-files.js";
import { FileReaderThread, looksLarge } from "./file-reader.js";
import { type FsOps, hasCode, realFsOps } from "../storage/fs-ops.js";
import { isFinished, type Job, type JobState, NO_POLICY, type NewJob } from "./job.js";
import { parseJobFile, parseJobValue, serializeJob } from "./job-file.js";
import {
  type RequestLookup,
  type RequestRecord,
  RequestRecords,
  type RequestTag,
  parseRequests,
  requestLine,
} from "./request-records.js";
import { type JobQuery, selectJobs } from "./job-query.js";
import { UnfinishedRuns } from "./unfinished-runs.js";
import { type Transition, transition } from "./job-state.js";
import {
  type ImportedAttempt,
  type ScheduleState,
  type SlaveRecord,
  parseDisasterImports,
  parseScheduleState,
  parseSlaveRegistry,
} from "./state-files.js";
import {
  ARCHIVE_DIR,
  DRAIN_FILE,
  JOBSDIR_VERSION,
  KNOWN_FILES,
  LOCK_FILE,
  QUARANTINE_DIR,
  SCHEDULE_STATE_FILE,
  SERIAL_FILE,
  SLAVES_FILE,
  DISASTER_IMPORTS_FILE,
  REQUESTS_FILE,
  TEMP_PREFIX,
  VERSION_FILE,
  archiveBucket,
  isTempName,
  jobFileName,
  jobIdFromFileName,
} from "./layout.js";
import {
  DirLock,
  type LockKind,
  type LockOwner,
  type ProcessProbe,
  linuxProcessProbe,
} from "../storage/dir-lock.js";

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

export interface QuarantinedFile {
  file: string;
  reason: string;
}

/** What `open` found. */
export interface LoadReport {
  jobs: number;
  archivedMaxId: number;
  quarantined: QuarantinedFile[];
  tempFilesRemoved: number;
  staleLock: LockOwner | null;
  /** Job files written again from the requests file: the master had stopped before writing them. */
  restoredFromRequests: number;
}

export interface ArchiveOutcome {
  archived: number;
  /** Finished jobs old enough that are still unarchived (left for the next batch). */
  remaining: number;
}

export type StoreState = "open" | "closing" | "closed";

/** The jobs directory's lock: one master per directory. */
const JOBS_DIR_LOCK: LockKind = {
  holder: "abs-master",
  what: "jobs directory",
  file: LOCK_FILE,
  tempPrefix: TEMP_PREFIX,
  locked: (message, context) => new JobsDirLockedError(message, context),
  io: (message, file, cause) => new JobsDirIoError(message, file, cause),
};

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

/** A request's record on its way to the requests file, with the jobs its line carries. */
interface PendingRequest {
  record: RequestRecord;
  jobIds: readonly number[];
}

/** One job file to write: the job's newest version, and everyone waiting for it. */
interface PendingWrite {
  job: Job;
  isNew: boolean;
  callers: { resolve: () => void; reject: (err: AbsError) => void }[];
  /** Not written before this time (the store's monotonic clock, ms) unless flushed with others; 0: at once. */
  dueAt: number;
  /** Admin requests whose record goes in the requests file with this write, before its rename. */
  requests: PendingRequest[];
}

interface Waiter {
  lastSerial: number;
  resolve: (job: Job) => void;
}

export const DEFAULT_MAX_JOBS = 100_000;

/** Commit groups under way at once: one publishing, one writing its temp files. */
const MAX_GROUPS_IN_FLIGHT = 2;

/**
 * The requests file is rewritten (records expired, job texts dropped) once
 * this much was appended, or as much as it held after the last rewrite if
 * that is more: its size stays within twice what it must keep, plus this.
 */
const REQUESTS_REWRITE_BYTES = 8 * 1024 * 1024;

export class JobStore {
  state: StoreState = "open";
  readonly loadReport: LoadReport;

  private readonly dir: string;
  private readonly fs: FsOps;
  private readonly logger: Logger;
  private readonly clock: () => number;
  private readonly monotonicNow: () => number;
  private maxJobs: number;
  /** Unarchived jobs, in ascending id order (load sorts; new ids are larger). */
  private readonly jobs: Map<number, Job>;
  /** The unfinished ones of `jobs` by definition and slave. */
  private readonly unfinished = new UnfinishedRuns();
  private lastId: number;
  /** The highest id a serial write has been started for. */
  private scheduledSerial: number;
  /** The highest serial renamed into place (what `serial` on disk holds). */
  private publishedSerial: number;
  private isDrained: boolean;
  private lastTriggers: ScheduleState;
  private slaveRecords: SlaveRecord[];
  private disasterImports: ImportedAttempt[];
  private pendingSubmissions = 0;
  /**
   * Writes not yet in a group, at most one per job: a change to a job whose
   * write has not started yet is merged into it (the newest version holds
   * every earlier change), so a burst of progress reports, or a `started`
   * and a `result` back to back, cost one write.
   */
  private readonly pending = new Map<number, PendingWrite>();
  /** Jobs with a write in a group under way: their next write waits, so writes to one job stay in order. */
  private readonly writing = new Set<number>();
  /** The newest version of jobs with a change not yet durable (what the next change applies to). */
  private readonly latest = new Map<number, Job>();
  /** The last write of each job with one under way, settled (archiving waits for it). */
  private readonly lastWrite = new Map<number, Promise<void>>();
  /** Wakes startFlush for deferred writes (update's deferMs). */
  private deferredTimer: NodeJS.Timeout | null = null;
  private deferredAt = Infinity;
  /** Groups being committed: at most MAX_GROUPS_IN_FLIGHT. */
  private readonly groupsInFlight = new Set<Promise<void>>();
  /** Publishing (renames + directory fsync) of one group after the other, in order. */
  private publishTurn: Promise<unknown> = Promise.resolve();
  private readonly chains = new Map<number, Promise<unknown>>();
  private readonly waiters = new Map<number, Set<Waiter>>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly knownBuckets = new Set<string>();
  /** The admin requests recorded (request-records.ts); the requests file holds them. */
  private readonly requests: RequestRecords;
  private requestsFileExists: boolean;
  private requestBytesSinceRewrite = 0;
  private requestBytesAtRewrite = 0;
  /** An append failed: the file may end in part of a line, which the next append must not extend. */
  private requestsTorn = false;
  /**
   * A job file of a recorded request failed to be written after its record
   * was: the file's copy of it is the only one until a restart writes it
   * again, so the file is not rewritten (which drops job texts) until then.
   */
  private requestsHoldUnwrittenJobs = false;
  private readonly requestsRewriteBytes: number;

  private constructor(
    opts: Required<
      Pick<JobStoreOptions, "dir" | "maxJobs" | "logger" | "clock" | "monotonic" | "fs">
    >,
    private readonly lock: DirLock,
    loaded: Loaded,
    requestsRewriteBytes: number,
  ) {
    this.dir = opts.dir;
    this.fs = opts.fs;
    this.logger = opts.logger;
    this.clock = opts.clock;
    this.monotonicNow = opts.monotonic;
    this.maxJobs = opts.maxJobs;
    this.jobs = loaded.jobs;
    for (const job of this.jobs.values()) this.unfinished.put(job);
    this.lastId = loaded.lastId;
    this.scheduledSerial = loaded.lastId;
    // Any serial written from now on is above this, so it is renamed into place.
    this.publishedSerial = loaded.lastId;
    this.isDrained = loaded.drained;
    this.lastTriggers = loaded.scheduleState;
    this.slaveRecords = loaded.slaves;
    this.disasterImports = loaded.disasterImports;
    this.requests = loaded.requests;
    this.requestsFileExists = loaded.requestsFileExists;
    this.requestsRewriteBytes = requestsRewriteBytes;
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
    const { dir, fs, logger } = opts;
    try {
      await fs.mkdir(dir);
    } catch (err) {
      throw new JobsDirIoError(
        `cannot create jobs directory ${dir}: ${describeError(err)}`,
        dir,
        err,
      );
    }
    let staleLock: LockOwner | null = null;
    const lock = await DirLock.acquire(
      fs,
      dir,
      JOBS_DIR_LOCK,
      options.probe ?? linuxProcessProbe,
      (prev) => {
        staleLock = prev;
        logger.warn(`took over the stale lock of abs-master pid ${prev?.pid ?? "?"} in ${dir}`);
      },
    );
    try {
      const loaded = await loadDirectory(dir, fs, logger, opts.clock());
      loaded.report.staleLock = staleLock;
      return new JobStore(
        opts,
        lock,
        loaded,
        options.requestsRewriteBytes ?? REQUESTS_REWRITE_BYTES,
      );
    } catch (err) {
      await lock.release().catch(() => undefined);
      throw err;
    }
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
    return this.isDrained;
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
  async readArchived(id: number): Promise<Job> {
    const file = path.join(this.dir, archiveBucket(id), jobFileName(id));
    let text: string;
    try {
      text = await this.fs.readFile(file);
    } catch (err) {
      if (hasCode(err, "ENOENT")) throw new JobNotFoundError(id);
      throw new JobsDirIoError(`cannot read ${file}: ${describeError(err)}`, file, err);
    }
    return parseJobFile(text, file, id);
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
    return new Promise((resolve) => {
      let set = this.waiters.get(id);
      if (set === undefined) {
        set = new Set();
        this.waiters.set(id, set);
      }
      const waiters = set;
      const waiter: Waiter = {
        lastSerial,
        resolve: (changed) => {
          clearTimeout(timer);
          waiters.delete(waiter);
          if (waiters.size === 0) this.waiters.delete(id);
          resolve(changed);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        if (waiters.size === 0) this.waiters.delete(id);
        resolve("nochange");
      }, timeoutMs);
      waiters.add(waiter);
    });
  }

  // ---- changing ----

  /**
   * Creates a queued job; resolves once its file (and the serial that gave
   * its id) are durable. Refused when drained (DRAINED) or at the limit
   * (QUEUE_FULL).
   */
  async submit(spec: NewJob): Promise<Job> {
    this.assertOpen();
    if (this.isDrained) throw new DrainedError();
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
    if (this.isDrained) throw new DrainedError();
    if (this.jobs.size + this.pendingSubmissions + specs.length > this.maxJobs) {
      throw new QueueFullError(this.maxJobs);
    }
    if (specs.length === 0) {
      await this.recordRequest(request.tag, request.reply([]));
      return [];
    }
    const now = this.clock();
    const jobs = specs.map((spec, i) => queuedJob(spec, this.lastId + 1 + i, now));
    this.lastId += jobs.length;
    const pending: PendingRequest = {
      record: { ...request.tag, at: now, reply: request.reply(jobs) },
      jobIds: jobs.map((j) => j.id),
    };
    this.pendingSubmissions += jobs.length;
    try {
      // Queued together and flushed once, so they go out in one group with
      // their record (a flush per job would start a group with the first).
      const written = jobs.map((job) => this.persist(job, true, 0, pending, false));
      this.startFlush();
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
    const turn = this.publishTurn.then(() => this.writeRequestLines([requestLine(record)]));
    this.publishTurn = turn.catch(() => undefined);
    const failure = await turn;
    if (failure !== null) throw failure;
    this.requests.add(record);
  }

  /** Gives `spec` the next id, lets `shape` change it, and makes it durable. */
  private async create(spec: NewJob, shape: (queued: Job) => Job): Promise<Job> {
    if (this.jobs.size + this.pendingSubmissions >= this.maxJobs) {
      throw new QueueFullError(this.maxJobs);
    }
    const job = shape(queuedJob(spec, this.lastId + 1, this.clock())); // may throw: then no id is used
    this.lastId = job.id;
    this.pendingSubmissions += 1;
    try {
      await this.persist(job, true);
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
        const durable = this.lastWrite.get(id) ?? Promise.resolve();
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
      const written = this.persist(next, false, opts.deferMs ?? 0, request);
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

  /** Turns draining on (new submissions refused) or off; survives restarts. */
  /**
   * The last trigger time (ms since the epoch) of each job definition, as
   * the scheduler last saved it; for the missed-run policy after downtime.
   */
  get scheduleState(): Readonly<Record<string, number>> {
    return this.lastTriggers;
  }

  /** Saves the last trigger times durably (replacing what was saved). */
  async saveScheduleState(lastTriggers: Record<string, number>): Promise<void> {
    this.assertOpen();
    await commitFile(this.fs, this.dir, SCHEDULE_STATE_FILE, JSON.stringify(lastTriggers) + "\n");
    this.lastTriggers = { ...lastTriggers };
  }

  /** The slaves that have registered, as last saved. */
  get slaves(): readonly SlaveRecord[] {
    return this.slaveRecords;
  }

  /** Saves the registry of slaves durably (replacing what was saved). */
  /** The attempts earlier disaster-log imports recorded as jobs, as last saved. */
  get importedAttempts(): readonly ImportedAttempt[] {
    return this.disasterImports;
  }

  /** Saves them durably (replacing what was saved). */
  async saveImportedAttempts(imports: readonly ImportedAttempt[]): Promise<void> {
    this.assertOpen();
    await commitFile(this.fs, this.dir, DISASTER_IMPORTS_FILE, JSON.stringify(imports) + "\n");
    this.disasterImports = [...imports];
  }

  async saveSlaves(slaves: readonly SlaveRecord[]): Promise<void> {
    this.assertOpen();
    await commitFile(this.fs, this.dir, SLAVES_FILE, JSON.stringify(slaves) + "\n");
    this.slaveRecords = [...slaves];
  }

  async setDrain(on: boolean): Promise<void> {
    this.assertOpen();
    if (on) {
      await commitFile(
        this.fs,
        this.dir,
        DRAIN_FILE,
        `drained since ${new Date(this.clock()).toISOString()}\n`,
      );
    } else {
      const file = path.join(this.dir, DRAIN_FILE);
      try {
        await this.fs.unlink(file);
        await this.fs.fsyncDir(this.dir);
      } catch (err) {
        if (!hasCode(err, "ENOENT")) {
          throw new JobsDirIoError(`cannot remove ${file}: ${describeError(err)}`, file, err);
        }
      }
    }
    this.isDrained = on;
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
    // Deferred writes go out now (startFlush ignores dueAt once closing).
    if (this.deferredTimer !== null) clearTimeout(this.deferredTimer);
    this.deferredTimer = null;
    this.startFlush();
    while (this.groupsInFlight.size > 0 || this.pending.size > 0) {
      await Promise.allSettled([...this.groupsInFlight]);
    }
    for (const [id, set] of this.waiters) {
      const job = this.jobs.get(id);
      for (const w of [...set]) if (job !== undefined) w.resolve(job);
    }
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
    const set = this.waiters.get(job.id);
    if (set !== undefined) {
      for (const w of [...set]) {
        if (job.serial > w.lastSerial || isFinished(job.state)) w.resolve(job);
      }
    }
    for (const listener of this.listeners) listener(job);
  }

  /**
   * Queues the write of `job`, merged with a queued write of the same job if
   * there is one; resolves once it is durable, after the in-memory view is
   * updated and listeners told.
   */
  private persist(
    job: Job,
    isNew: boolean,
    deferMs = 0,
    request?: PendingRequest,
    flush = true,
  ): Promise<void> {
    // A request's record must not wait: its client waits for the answer.
    const dueAt = deferMs > 0 && request === undefined ? this.monotonicNow() + deferMs : 0;
    const written = new Promise<void>((resolve, reject) => {
      const queued = this.pending.get(job.id);
      if (queued !== undefined) {
        queued.job = job;
        queued.isNew ||= isNew;
        queued.callers.push({ resolve, reject });
        // The earlier of the two: a change that may not wait makes the merged write urgent.
        queued.dueAt = Math.min(queued.dueAt, dueAt);
        if (request !== undefined) queued.requests.push(request);
      } else {
        this.pending.set(job.id, {
          job,
          isNew,
          callers: [{ resolve, reject }],
          dueAt,
          requests: request === undefined ? [] : [request],
        });
      }
      if (dueAt > 0) this.armDeferred(dueAt);
      if (flush) this.startFlush();
    });
    const settled = written.catch(() => undefined);
    this.lastWrite.set(job.id, settled);
    void settled.then(() => {
      if (this.lastWrite.get(job.id) === settled) this.lastWrite.delete(job.id);
    });
    return written;
  }

  /**
   * Group commit, pipelined two deep: everything queued goes out as one
   * group, and while a group is being published (renamed into place and its
   * directory fsynced) the next one is already writing its temp files.
   * Groups publish one after the other, each as soon as its temp files are
   * written, so a group started later may publish first; the serial on
   * disk still only grows (see commitGroup).
   */
  private startFlush(now = this.monotonicNow()): void {
    while (this.groupsInFlight.size < MAX_GROUPS_IN_FLIGHT && this.pending.size > 0) {
      const group: PendingWrite[] = [];
      for (const [id, w] of this.pending) {
        if (this.writing.has(id)) continue; // its previous write first
        if (w.dueAt > now && this.state === "open") continue; // deferred (closing flushes all)
        group.push(w);
        this.pending.delete(id);
        this.writing.add(id);
      }
      if (group.length === 0) return;
      const running: Promise<void> = this.commitGroup(group).finally(() => {
        for (const w of group) this.writing.delete(w.job.id);
        this.groupsInFlight.delete(running);
        // Changes queued by callers woken by this group must not wait for a
        // later change to be flushed.
        this.startFlush();
      });
      this.groupsInFlight.add(running);
    }
  }

  /** Makes sure startFlush runs when the deferred write due at `dueAt` is due. */
  private armDeferred(dueAt: number): void {
    if (this.deferredTimer !== null && this.deferredAt <= dueAt) return;
    if (this.deferredTimer !== null) clearTimeout(this.deferredTimer);
    this.deferredAt = dueAt;
    this.deferredTimer = setTimeout(
      () => {
        this.deferredTimer = null;
        this.deferredAt = Infinity;
        // One reading of the clock for both: a write found not yet due must
        // be the one the timer is armed again for. (With two readings, a
        // write falling due between them was neither taken nor waited for,
        // and sat until some other write came along: a job's dispatch was
        // once left unwritten that way.)
        const now = this.monotonicNow();
        this.startFlush(now);
        // Writes due later need the timer again. One due already but not
        // taken (its previous write under way, or both groups busy) goes
        // with the next group: startFlush runs again as each group ends.
        let next = Infinity;
        for (const w of this.pending.values()) if (w.dueAt > now) next = Math.min(next, w.dueAt);
        if (next < Infinity) this.armDeferred(next);
      },
      Math.max(0, dueAt - this.monotonicNow()),
    );
  }

  private async commitGroup(group: PendingWrite[]): Promise<void> {
    const maxNewId = group.reduce((max, w) => (w.isNew ? Math.max(max, w.job.id) : max), 0);
    // The serial goes out in the same group as the first files using its
    // ids, as their gate: renamed before them, and they are abandoned if it
    // fails. No caller learns of an id before both are durable.
    let gate: FileWrite | undefined;
    if (maxNewId > this.scheduledSerial) {
      gate = { name: SERIAL_FILE, data: `${maxNewId}\n` };
      this.scheduledSerial = maxNewId;
    }
    const writes = group.map((w) => ({
      name: jobFileName(w.job.id),
      data: serializeJob(w.job),
      gated: w.isNew,
      journaled: w.requests.length > 0,
    }));
    const requests = this.requestLinesOf(group, writes);
    const prepared = await prepareFiles(this.fs, this.dir, writes, gate);
    const publishing = this.publishTurn.then(async () => {
      // A group started after this one, with fewer files to write, may have
      // published a higher serial already. Renaming this group's serial over
      // it would leave that group's jobs above the serial on disk (until the
      // next serial, or for good after a SIGKILL): it is dropped instead, as
      // the higher serial covers this group's ids too. Decided here, in the
      // publishing turn, so no other group renames a serial meanwhile.
      const covered = gate !== undefined && maxNewId <= this.publishedSerial;
      const published = await publishFiles(
        this.fs,
        prepared,
        covered,
        requests.lines.length === 0 ? undefined : (g) => this.journalRequests(g, requests.lines),
      );
      if (published.gateRenamed) this.publishedSerial = maxNewId;
      return published;
    });
    this.publishTurn = publishing.catch(() => undefined);
    const outcome = await publishing;
    if (outcome.gate !== null) {
      this.logger.error(`cannot persist the job serial: ${outcome.gate.message}`);
    }
    if (requests.lines.length > 0 && outcome.journal === null) {
      // Before any caller is told: the admin server looks the record up.
      for (const r of requests.records) this.requests.add(r);
    }
    group.forEach((w, i) => {
      const id = w.job.id;
      let failure = outcome.writes[i];
      if (failure !== null && w.requests.length > 0 && outcome.journal === null) {
        // The record, with this version of the job, is durable: the request
        // happened, and a restart writes the job file from the record. So
        // the change stands; only the file is behind.
        this.logger.error(
          `job ${id}: ${failure.message}; the requests file holds this version of it until a restart writes it`,
          { job: id },
        );
        this.requestsHoldUnwrittenJobs = true;
        failure = null;
      }
      if (failure === null) {
        // Memory changes only once the file is durable: the store never
        // answers what a restart would not read back.
        this.jobs.set(id, w.job);
        this.unfinished.put(w.job);
        if (this.latest.get(id) === w.job) this.latest.delete(id);
        this.notify(w.job);
        for (const c of w.callers) c.resolve();
        return;
      }
      this.logger.error(`job ${id}: ${failure.message}`, { job: id });
      for (const c of w.callers) c.reject(failure);
      // A queued write of this job was computed on top of the failed one:
      // it fails too, and the next change starts again from the durable job.
      const after = this.pending.get(id);
      if (after !== undefined) {
        this.pending.delete(id);
        for (const c of after.callers) c.reject(failure);
      }
      this.latest.delete(id);
    });
  }

  /** The lines of the requests file a group carries: each request's record with its jobs' new texts. */
  private requestLinesOf(
    group: readonly PendingWrite[],
    writes: readonly { data: string }[],
  ): { lines: string[]; records: RequestRecord[] } {
    const texts = new Map<number, string>();
    const requests = new Set<PendingRequest>();
    group.forEach((w, i) => {
      if (w.requests.length === 0) return;
      texts.set(w.job.id, writes[i].data);
      for (const r of w.requests) requests.add(r);
    });
    const lines: string[] = [];
    const records: RequestRecord[] = [];
    for (const r of requests) {
      // A request's jobs are queued together (submitAll), so they are in one group.
      const jobs = r.jobIds.flatMap((id) => texts.get(id) ?? []);
      if (jobs.length !== r.jobIds.length) {
        this.logger.error(`internal: request ${r.record.id}: its jobs are not in one write`);
      }
      lines.push(requestLine(r.record, jobs));
      records.push(r.record);
    }
    return { lines, records };
  }

  /**
   * A group's step between the serial's rename and its job files'
   * (publishFiles): its requests' lines made durable. The serial is renamed
   * first, so after a SIGKILL it covers every id a line names. It is not
   * fsynced first: after a power loss it may be older than a line, and the
   * load then writes the serial again before any job file from the line
   * (loadRequests), so the rule on disk holds, one fsync less per request.
   */
  private async journalRequests(
    gate: { renamed: boolean; error: AbsError | null },
    lines: readonly string[],
  ): Promise<JobsDirIoError | null> {
    if (gate.error !== null) {
      return new JobsDirIoError(
        `cannot record the admin request: ${gate.error.message}`,
        path.join(this.dir, SERIAL_FILE),
        gate.error,
      );
    }
    return this.writeRequestLines(lines);
  }

  /**
   * Appends `lines` to the requests file, durably; or, when it is due,
   * rewrites the file with every record kept (expired ones dropped, without
   * their jobs' texts, whose files are durable by now) and `lines` at the
   * end. Only ever called in the publishing turn (publishTurn), so the
   * lines of one commit never interleave with another's.
   */
  private async writeRequestLines(lines: readonly string[]): Promise<JobsDirIoError | null> {
    let text = lines.join("");
    const file = path.join(this.dir, REQUESTS_FILE);
    const rewrite =
      !this.requestsFileExists ||
      (!this.requestsHoldUnwrittenJobs &&
        this.requestBytesSinceRewrite >=
          Math.max(this.requestsRewriteBytes, this.requestBytesAtRewrite));
    try {
      if (rewrite) {
        const expired = this.requests.expire(this.clock());
        if (expired > 0) this.logger.info(`forgot ${expired} admin requests older than a day`);
        const kept = this.requests.toText();
        await commitFile(this.fs, this.dir, REQUESTS_FILE, kept + text);
        this.requestsFileExists = true;
        this.requestsTorn = false;
        this.requestBytesAtRewrite = Buffer.byteLength(kept);
        this.requestBytesSinceRewrite = Buffer.byteLength(text);
      } else {
        // After a failed append the file may end in part of a line: a
        // newline ends it there, as a line load reports and skips.
        if (this.requestsTorn) text = "\n" + text;
        await this.fs.appendSynced(file, text);
        this.requestsTorn = false;
        this.requestBytesSinceRewrite += Buffer.byteLength(text);
      }
      return null;
    } catch (err) {
      if (!rewrite) this.requestsTorn = true;
      const failure =
        err instanceof JobsDirIoError
          ? err
          : new JobsDirIoError(
              `cannot record the admin request in ${file}: ${describeError(err)}`,
              file,
              err,
            );
      this.logger.error(failure.message);
      return failure;
    }
  }

  private async archiveOne(id: number): Promise<boolean> {
    // A write of this job under way would put the file back after the move.
    await this.lastWrite.get(id);
    const job = this.jobs.get(id);
    if (job === undefined || !isFinished(job.state)) return false;
    const bucket = archiveBucket(id);
    const bucketDir = path.join(this.dir, bucket);
    const from = path.join(this.dir, jobFileName(id));
    const to = path.join(bucketDir, jobFileName(id));
    try {
      if (!this.knownBuckets.has(bucket)) {
        await this.fs.mkdir(bucketDir);
        await this.fs.fsyncDir(path.join(this.dir, ARCHIVE_DIR));
        await this.fs.fsyncDir(this.dir);
        this.knownBuckets.add(bucket);
      }
      await this.fs.rename(from, to);
      // rename(2) is atomic, so after a crash the job is in one place or the
      // other, never lost; the two fsyncs make the move itself durable.
      await this.fs.fsyncDir(bucketDir);
      await this.fs.fsyncDir(this.dir);
    } catch (err) {
      throw asIoError(err, from, `cannot archive job ${id}`);
    }
    this.jobs.delete(id);
    this.logger.info(`job ${id} archived`, { job: id });
    return true;
  }
}

/** The first version of a job made from `spec`, with id `id`, received at `now`. */
function queuedJob(spec: NewJob, id: number, now: number): Job {
  return {
    id,
    definition: spec.definition,
    slave: spec.slave,
    method: spec.method,
    params: spec.params,
    state: "queued",
    priority: spec.priority,
    attempt: 1,
    timestamps: { received: now, dispatched: null, started: null, ended: null, notBefore: null },
    progress: null,
    result: null,
    policy: spec.policy ?? NO_POLICY,
    log: [
      {
        serial: 1,
        time: now,
        level: "info",
        message: spec.message ?? `received: ${spec.definition} on ${spec.slave}`,
      },
    ],
    serial: 1,
  };
}

function asIoError(err: unknown, file: string, what?: string): AbsError {
  if (err instanceof AbsError) return err;
  return new JobsDirIoError(`${what ?? `cannot write ${file}`}: ${describeError(err)}`, file, err);
}

// ---- loading ----

interface Loaded {
  jobs: Map<number, Job>;
  lastId: number;
  drained: boolean;
  scheduleState: ScheduleState;
  slaves: SlaveRecord[];
  disasterImports: ImportedAttempt[];
  requests: RequestRecords;
  requestsFileExists: boolean;
  report: LoadReport;
}

async function loadDirectory(dir: string, fs: FsOps, logger: Logger, now: number): Promise<Loaded> {
  // The reader thread starts now, while the directory is listed (see
  // file-reader.ts); with injected file operations (tests) files are read here.
  const reader = fs === realFsOps && (await looksLarge(dir)) ? new FileReaderThread() : null;
  try {
    return await loadEntries(dir, fs, logger, reader, now);
  } finally {
    reader?.stop();
  }
}

async function loadEntries(
  dir: string,
  fs: FsOps,
  logger: Logger,
  reader: FileReaderThread | null,
  now: number,
): Promise<Loaded> {
  let entries: Awaited<ReturnType<FsOps["readdir"]>>;
  try {
    entries = await fs.readdir(dir);
  } catch (err) {
    throw new JobsDirIoError(`cannot read jobs directory ${dir}: ${describeError(err)}`, dir, err);
  }
  const names = new Set(entries.map((e) => e.name));
  await checkVersion(dir, fs, names);

  const report: LoadReport = {
    jobs: 0,
    archivedMaxId: 0,
    quarantined: [],
    tempFilesRemoved: 0,
    staleLock: null,
    restoredFromRequests: 0,
  };
  const jobFiles: { name: string; id: number }[] = [];
  let changedDir = false;
  const quarantine = async (name: string, reason: string): Promise<void> => {
    await quarantineFile(dir, fs, name, reason);
    report.quarantined.push({ file: name, reason });
    logger.warn(`quarantined ${path.join(dir, name)}: ${reason}`, { file: name });
    changedDir = true;
  };

  for (const entry of entries) {
    if (isTempName(entry.name)) {
      // A write or a lock attempt that never finished. The lock is ours, so no
      // one else is writing here.
      await fs.unlink(path.join(dir, entry.name)).catch(() => undefined);
      report.tempFilesRemoved += 1;
      changedDir = true;
      continue;
    }
    if (entry.isDirectory) {
      if (entry.name !== ARCHIVE_DIR && entry.name !== QUARANTINE_DIR) {
        logger.warn(`ignoring unexpected directory ${path.join(dir, entry.name)}`);
      }
      continue;
    }
    if (KNOWN_FILES.has(entry.name)) continue;
    const id = jobIdFromFileName(entry.name);
    if (id === null || !entry.isFile) {
      await quarantine(entry.name, "not a file of a jobs directory");
      continue;
    }
    jobFiles.push({ name: entry.name, id });
  }

  jobFiles.sort((a, b) => a.id - b.id);
  const parsed: (Job | null)[] = new Array<Job | null>(jobFiles.length).fill(null);
  const bad: { name: string; reason: string }[] = [];
  // dir is already absolute and normalized (see open), so plain concatenation suffices.
  const fileOf = (i: number): string => `${dir}/${jobFiles[i].name}`;
  const parseAt = (i: number, text: string): void => {
    const { name, id } = jobFiles[i];
    try {
      parsed[i] = parseJobFile(text, name, id);
    } catch (err) {
      if (!(err instanceof AbsError)) throw err;
      const reason = err.message.startsWith(`${name}: `)
        ? err.message.slice(name.length + 2)
        : err.message;
      bad.push({ name, reason });
    }
  };
  // With many files the reader thread reads them while this thread parses;
  // with few, they are read here, synchronously: the master serves nothing
  // while it loads, and for small files a read without the thread pool's
  // round trips is several times faster than fs.promises.readFile.
  const read =
    reader !== null && jobFiles.length >= WORKER_READ_MIN_FILES
      ? await reader.read(
          jobFiles.map((_, i) => fileOf(i)),
          (i, text) => {
            if (text instanceof Error) {
              throw new JobsDirIoError(
                `cannot read ${fileOf(i)}: ${text.message}`,
                fileOf(i),
                text,
              );
            }
            parseAt(i, text);
          },
        )
      : 0;
  for (let i = read; i < jobFiles.length; i++) parseAt(i, readTextNow(fs, fileOf(i)));
  for (const b of bad) await quarantine(b.name, b.reason);

  let jobs = new Map<number, Job>();
  for (const job of parsed) if (job !== null) jobs.set(job.id, job);

  report.archivedMaxId = await highestArchivedId(dir, fs);
  const serial = await readSerial(dir, fs, logger, names.has(SERIAL_FILE));
  const highestJobId = jobFiles.length === 0 ? 0 : jobFiles[jobFiles.length - 1].id;
  const seen = Math.max(highestJobId, report.archivedMaxId);
  if (seen > serial) {
    logger.warn(
      `serial ${serial} is below the highest job id ${seen} found in ${dir}; continuing from ${seen}`,
    );
  }
  if (changedDir) await fs.fsyncDir(dir);
  const requests = await loadRequests(dir, fs, logger, names.has(REQUESTS_FILE), jobs, serial, now);
  if (requests.restored.length > 0) {
    // Restored ids may fall between loaded ones: the map stays in id order.
    for (const job of requests.restored) jobs.set(job.id, job);
    jobs = new Map([...jobs].sort((a, b) => a[0] - b[0]));
    report.restoredFromRequests = requests.restored.length;
  }
  report.jobs = jobs.size;
  const scheduleState = names.has(SCHEDULE_STATE_FILE)
    ? readStateFile(
        dir,
        fs,
        logger,
        SCHEDULE_STATE_FILE,
        parseScheduleState,
        {},
        "missed runs are not caught up this time",
      )
    : {};
  const slaves = names.has(SLAVES_FILE)
    ? readStateFile(
        dir,
        fs,
        logger,
        SLAVES_FILE,
        parseSlaveRegistry,
        [],
        "slaves are listed again as they reconnect",
      )
    : [];
  const disasterImports = names.has(DISASTER_IMPORTS_FILE)
    ? readStateFile(
        dir,
        fs,
        logger,
        DISASTER_IMPORTS_FILE,
        parseDisasterImports,
        [],
        "an import of a disaster log already imported may record its unknown jobs again once they are archived",
      )
    : [];
  return {
    jobs,
    lastId: Math.max(serial, seen, requests.highestId),
    drained: names.has(DRAIN_FILE),
    scheduleState,
    slaves,
    disasterImports,
    requests: requests.records,
    requestsFileExists: names.has(REQUESTS_FILE),
    report,
  };
}

/**
 * Reads the requests file (request-records.ts). A job a record carries that
 * the directory lacks, or has in an older version, is written again from
 * it: the master stopped after the record and before the job's file. Then
 * the file is rewritten without job texts, so the next start reads only
 * what came since.
 */
async function loadRequests(
  dir: string,
  fs: FsOps,
  logger: Logger,
  exists: boolean,
  jobs: ReadonlyMap<number, Job>,
  serialOnDisk: number,
  now: number,
): Promise<{ records: RequestRecords; restored: Job[]; highestId: number }> {
  const records = new RequestRecords();
  if (!exists) return { records, restored: [], highestId: 0 };
  const file = path.join(dir, REQUESTS_FILE);
  const parsed = parseRequests(readTextNow(fs, file));
  for (const b of parsed.bad) {
    logger.warn(`${file}:${b.line}: unusable (${b.reason}); a retry of that request is done again`);
  }
  if (parsed.torn !== null && parsed.torn.trim() !== "") {
    logger.warn(`${file}: ends in part of a line, an append cut short (never answered); dropped`);
  }
  const restore = new Map<number, { job: Job; record: RequestRecord }>();
  let carried = 0;
  let highestId = 0;
  for (const { record, jobs: values } of parsed.lines) {
    records.add(record);
    for (const [i, value] of values.entries()) {
      carried += 1;
      let job: Job;
      try {
        job = parseJobValue(value, `${file}: request ${record.id}: jobs[${i}]`);
      } catch (err) {
        logger.warn(describeError(err));
        continue;
      }
      highestId = Math.max(highestId, job.id);
      const current = restore.get(job.id)?.job ?? jobs.get(job.id);
      if (current !== undefined && current.serial >= job.serial) continue;
      if (current === undefined && (await isArchived(dir, fs, job.id))) continue;
      restore.set(job.id, { job, record });
    }
  }
  const restored = [...restore.values()];
  if (restored.length > 0) {
    // The serial first, as always, should a damaged one be below these ids.
    if (highestId > serialOnDisk) await commitFile(fs, dir, SERIAL_FILE, `${highestId}\n`);
    const outcome = await commitFiles(
      fs,
      dir,
      restored.map(({ job }) => ({ name: jobFileName(job.id), data: serializeJob(job) })),
    );
    const failed = outcome.writes.find((w) => w !== null);
    if (failed !== undefined && failed !== null) throw failed;
    for (const { job, record } of restored) {
      logger.warn(
        `job ${job.id}: written again from the record of admin request ${record.id} (${record.method}): the master stopped before its file was`,
        { job: job.id },
      );
    }
  }
  if (carried > 0 || parsed.bad.length > 0 || parsed.torn !== null) {
    records.expire(now);
    await commitFile(fs, dir, REQUESTS_FILE, records.toText());
  }
  return { records, restored: restored.map((r) => r.job), highestId };
}

async function isArchived(dir: string, fs: FsOps, id: number): Promise<boolean> {
  const file = path.join(dir, archiveBucket(id), jobFileName(id));
  try {
    await fs.readFile(file);
    return true;
  } catch (err) {
    if (hasCode(err, "ENOENT")) return false;
    throw new JobsDirIoError(`cannot read ${file}: ${describeError(err)}`, file, err);
  }
}

async function checkVersion(dir: string, fs: FsOps, names: Set<string>): Promise<void> {
  const file = path.join(dir, VERSION_FILE);
  if (!names.has(VERSION_FILE)) {
    const used = [...names].some((n) => !isTempName(n) && n !== "lock");
    if (used) {
      throw new JobsDirVersionError(
        `${dir} has no version file: it is not an ABS jobs directory, or it is damaged; ` +
          `if it is yours, write "${JOBSDIR_VERSION}" into ${file}`,
        file,
      );
    }
    await commitFile(fs, dir, VERSION_FILE, `${JOBSDIR_VERSION}\n`);
    return;
  }
  const text = (await readText(fs, file)).trim();
  if (!/^[0-9]+$/.test(text)) {
    throw new JobsDirVersionError(`${file}: "${text.slice(0, 40)}" is not a format version`, file);
  }
  const version = Number(text);
  if (version > JOBSDIR_VERSION) {
    throw new JobsDirVersionError(
      `${file}: jobs directory format ${version} is newer than this abs-master reads (${JOBSDIR_VERSION}); ` +
        `run the abs-master that wrote it, or a newer one`,
      file,
    );
  }
  if (version < JOBSDIR_VERSION) {
    throw new JobsDirVersionError(
      `${file}: jobs directory format ${version} is older than this abs-master reads (${JOBSDIR_VERSION})`,
      file,
    );
  }
}

async function readSerial(
  dir: string,
  fs: FsOps,
  logger: Logger,
  exists: boolean,
): Promise<number> {
  if (!exists) return 0;
  const file = path.join(dir, SERIAL_FILE);
  const text = (await readText(fs, file)).trim();
  if (/^[0-9]{1,15}$/.test(text)) return Number(text);
  // The ids in use are still known from the job files and the archive, so a
  // damaged serial is recovered from them rather than stopping the master.
  logger.warn(`${file}: "${text.slice(0, 40)}" is not a job id; recomputing it from the job files`);
  return 0;
}

async function highestArchivedId(dir: string, fs: FsOps): Promise<number> {
  const archive = path.join(dir, ARCHIVE_DIR);
  let buckets: Awaited<ReturnType<FsOps["readdir"]>>;
  try {
    buckets = await fs.readdir(archive);
  } catch (err) {
    if (hasCode(err, "ENOENT")) return 0;
    throw new JobsDirIoError(`cannot read ${archive}: ${describeError(err)}`, archive, err);
  }
  const numbers = buckets
    .filter((b) => b.isDirectory && /^[0-9]+$/.test(b.name))
    .map((b) => Number(b.name))
    .sort((a, b) => b - a);
  for (const n of numbers) {
    const files = await fs.readdir(path.join(archive, String(n)));
    const ids = files
      .map((f) => jobIdFromFileName(f.name))
      .filter((id): id is number => id !== null);
    if (ids.length > 0) return ids.reduce((a, b) => Math.max(a, b), 0);
  }
  return 0;
}

async function readText(fs: FsOps, file: string): Promise<string> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    throw new JobsDirIoError(`cannot read ${file}: ${describeError(err)}`, file, err);
  }
}

/**
 * A damaged state file costs little (one missed-run decision per
 * definition, or the list of slaves until they reconnect), so it is logged
 * and replaced by an empty one rather than stopping the master.
 */
function readStateFile<T>(
  dir: string,
  fs: FsOps,
  logger: Logger,
  name: string,
  parse: (text: string) => T,
  empty: T,
  consequence: string,
): T {
  const file = path.join(dir, name);
  const text = readTextNow(fs, file);
  try {
    return parse(text);
  } catch (err) {
    const why = err instanceof ShapeError ? `${err.field}: ${err.why}` : describeError(err);
    logger.warn(`${file}: unusable (${why}); ${consequence}`);
    return empty;
  }
}

/** Below this many job files a worker thread costs more to start than it saves. */
const WORKER_READ_MIN_FILES = 2000;

function readTextNow(fs: FsOps, file: string): string {
  try {
    return fs.readFileNow(file);
  } catch (err) {
    throw new JobsDirIoError(`cannot read ${file}: ${describeError(err)}`, file, err);
  }
}

async function quarantineFile(dir: string, fs: FsOps, name: string, reason: string): Promise<void> {
  const qdir = path.join(dir, QUARANTINE_DIR);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const target = `${name}.${stamp}`;
  try {
    await fs.mkdir(qdir);
    await fs.rename(path.join(dir, name), path.join(qdir, target));
    await commitFile(fs, qdir, `${target}.reason`, `${reason}\n`);
  } catch (err) {
    throw new JobsDirIoError(
      `cannot quarantine ${path.join(dir, name)}: ${describeError(err)}`,
      name,
      err,
    );
  }
}
