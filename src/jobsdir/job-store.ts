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
import { ShapeError } from "../json-shape.js";
import { type Logger, silentLogger } from "../log.js";
import { type FileWrite, commitFile, prepareFiles, publishFiles } from "./durable-files.js";
import { FileReaderThread, looksLarge } from "./file-reader.js";
import { type FsOps, hasCode, realFsOps } from "../storage/fs-ops.js";
import { isFinished, type Job, type JobState, NO_POLICY, type NewJob } from "./job.js";
import { parseJobFile, serializeJob } from "./job-file.js";
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
}

type ChangeListener = (job: Job) => void;

/** One job file to write: the job's newest version, and everyone waiting for it. */
interface PendingWrite {
  job: Job;
  isNew: boolean;
  callers: { resolve: () => void; reject: (err: AbsError) => void }[];
  /** Not written before this time (the store's monotonic clock, ms) unless flushed with others; 0: at once. */
  dueAt: number;
}

interface Waiter {
  lastSerial: number;
  resolve: (job: Job) => void;
}

export const DEFAULT_MAX_JOBS = 100_000;

/** Commit groups under way at once: one publishing, one writing its temp files. */
const MAX_GROUPS_IN_FLIGHT = 2;

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

  private constructor(
    opts: Required<
      Pick<JobStoreOptions, "dir" | "maxJobs" | "logger" | "clock" | "monotonic" | "fs">
    >,
    private readonly lock: DirLock,
    loaded: Loaded,
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
      const loaded = await loadDirectory(dir, fs, logger);
      loaded.report.staleLock = staleLock;
      return new JobStore(opts, lock, loaded);
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

  /** Gives `spec` the next id, lets `shape` change it, and makes it durable. */
  private async create(spec: NewJob, shape: (queued: Job) => Job): Promise<Job> {
    if (this.jobs.size + this.pendingSubmissions >= this.maxJobs) {
      throw new QueueFullError(this.maxJobs);
    }
    const now = this.clock();
    const queued: Job = {
      id: this.lastId + 1,
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
    const job = shape(queued); // may throw: then no id is used
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
      const written = this.persist(next, false, opts.deferMs ?? 0);
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
  private persist(job: Job, isNew: boolean, deferMs = 0): Promise<void> {
    const dueAt = deferMs > 0 ? this.monotonicNow() + deferMs : 0;
    const written = new Promise<void>((resolve, reject) => {
      const queued = this.pending.get(job.id);
      if (queued !== undefined) {
        queued.job = job;
        queued.isNew ||= isNew;
        queued.callers.push({ resolve, reject });
        // The earlier of the two: a change that may not wait makes the merged write urgent.
        queued.dueAt = Math.min(queued.dueAt, dueAt);
      } else {
        this.pending.set(job.id, { job, isNew, callers: [{ resolve, reject }], dueAt });
      }
      if (dueAt > 0) this.armDeferred(dueAt);
      this.startFlush();
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
    }));
    const prepared = await prepareFiles(this.fs, this.dir, writes, gate);
    const publishing = this.publishTurn.then(async () => {
      // A group started after this one, with fewer files to write, may have
      // published a higher serial already. Renaming this group's serial over
      // it would leave that group's jobs above the serial on disk (until the
      // next serial, or for good after a SIGKILL): it is dropped instead, as
      // the higher serial covers this group's ids too. Decided here, in the
      // publishing turn, so no other group renames a serial meanwhile.
      const covered = gate !== undefined && maxNewId <= this.publishedSerial;
      const published = await publishFiles(this.fs, prepared, covered);
      if (published.gateRenamed) this.publishedSerial = maxNewId;
      return published;
    });
    this.publishTurn = publishing.catch(() => undefined);
    const outcome = await publishing;
    if (outcome.gate !== null) {
      this.logger.error(`cannot persist the job serial: ${outcome.gate.message}`);
    }
    group.forEach((w, i) => {
      const id = w.job.id;
      const failure = outcome.writes[i];
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
  report: LoadReport;
}

async function loadDirectory(dir: string, fs: FsOps, logger: Logger): Promise<Loaded> {
  // The reader thread starts now, while the directory is listed (see
  // file-reader.ts); with injected file operations (tests) files are read here.
  const reader = fs === realFsOps && (await looksLarge(dir)) ? new FileReaderThread() : null;
  try {
    return await loadEntries(dir, fs, logger, reader);
  } finally {
    reader?.stop();
  }
}

async function loadEntries(
  dir: string,
  fs: FsOps,
  logger: Logger,
  reader: FileReaderThread | null,
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

  const jobs = new Map<number, Job>();
  for (const job of parsed) if (job !== null) jobs.set(job.id, job);
  report.jobs = jobs.size;

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
    lastId: Math.max(serial, seen),
    drained: names.has(DRAIN_FILE),
    scheduleState,
    slaves,
    disasterImports,
    report,
  };
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
