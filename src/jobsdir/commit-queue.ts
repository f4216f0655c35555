// The group-commit pipeline of the jobs directory (DESIGN.md, "The jobs
// directory"). Writes of different jobs that arrive together are committed
// together: their temp files written and fsynced in parallel, then renamed
// into place, then one fsync of the directory for the whole group
// (durable-files.ts). Pipelined two deep: while one group publishes, the
// next writes its temp files. Writes to one job stay in order, and a change
// to a job whose write has not started yet is merged into it.
//
// Job ids come from `serial`, written as the gate of the first group whose
// files use the new ids: renamed before them, so the serial on disk is never
// below a job file's id. The records of admin requests a group carries are
// written to the requests file between the serial and the job files.
//
// The store (job-store.ts) owns what jobs are; this owns when their files
// are written, and tells the store (`durable`, `failed`) as each settles.

import { AbsError, JobsDirIoError } from "../errors.js";
import type { Logger } from "../log.js";
import type { FsOps } from "../storage/fs-ops.js";
import { type FileWrite, prepareFiles, publishFiles } from "./durable-files.js";
import type { Job } from "./job.js";
import { serializeJob } from "./job-file.js";
import { SERIAL_FILE, jobFileName } from "./layout.js";
import { type RequestRecord, requestLine } from "./request-records.js";
import type { RequestFile } from "./request-file.js";
import path from "node:path";

/** A request's record on its way to the requests file, with the jobs its line carries. */
export interface PendingRequest {
  record: RequestRecord;
  jobIds: readonly number[];
}

/** One job file to write: the job's newest version, and everyone waiting for it. */
interface PendingWrite {
  job: Job;
  isNew: boolean;
  callers: { resolve: () => void; reject: (err: AbsError) => void }[];
  /** Not written before this time (the monotonic clock, ms) unless flushed with others; 0: at once. */
  dueAt: number;
  /** Admin requests whose record goes in the requests file with this write, before its rename. */
  requests: PendingRequest[];
}

/** Commit groups under way at once: one publishing, one writing its temp files. */
const MAX_GROUPS_IN_FLIGHT = 2;

export interface CommitQueueOptions {
  dir: string;
  fs: FsOps;
  logger: Logger;
  /** Milliseconds on a clock that never steps back, for deferred writes. */
  monotonic: () => number;
  /** The highest job id in use at the load: any serial written from now on is above it. */
  lastId: number;
  requests: RequestFile;
  /** Told of each write once it is durable, before its callers. */
  durable: (job: Job) => void;
  /** Told of a job whose write failed (its later writes queued on top of it failed too). */
  failed: (id: number) => void;
}

export class CommitQueue {
  /**
   * Writes not yet in a group, at most one per job: a change to a job whose
   * write has not started yet is merged into it (the newest version holds
   * every earlier change), so a burst of progress reports, or a `started`
   * and a `result` back to back, cost one write.
   */
  private readonly pending = new Map<number, PendingWrite>();
  /** Jobs with a write in a group under way: their next write waits, so writes to one job stay in order. */
  private readonly writing = new Set<number>();
  /** The last write of each job with one under way, settled (archiving waits for it). */
  private readonly lastWrite = new Map<number, Promise<void>>();
  /** Wakes flush for deferred writes (the deferMs of write). */
  private deferredTimer: NodeJS.Timeout | null = null;
  private deferredAt = Infinity;
  /** Groups being committed: at most MAX_GROUPS_IN_FLIGHT. */
  private readonly groupsInFlight = new Set<Promise<void>>();
  /** Publishing (renames + directory fsync) of one group after the other, in order. */
  private publishTurn: Promise<unknown> = Promise.resolve();
  /** The highest id a serial write has been started for. */
  private scheduledSerial: number;
  /** The highest serial renamed into place (what `serial` on disk holds). */
  private publishedSerial: number;
  private readonly requests: RequestFile;
  /** Once closing, deferred writes go out at once. */
  private closing = false;

  constructor(private readonly opts: CommitQueueOptions) {
    this.scheduledSerial = opts.lastId;
    this.publishedSerial = opts.lastId;
    this.requests = opts.requests;
  }

  /** The last write of job `id` under way, settled; undefined when none is. */
  lastWriteOf(id: number): Promise<void> | undefined {
    return this.lastWrite.get(id);
  }

  /**
   * Writes one admin request's record alone, in the publishing turn (so
   * after every group already publishing). Answers null or what failed.
   */
  recordAlone(record: RequestRecord): Promise<JobsDirIoError | null> {
    const turn = this.publishTurn.then(() => this.requests.write([requestLine(record)]));
    this.publishTurn = turn.catch(() => undefined);
    return turn;
  }

  /** Writes everything queued, deferred or not, and resolves when all is settled. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.deferredTimer !== null) clearTimeout(this.deferredTimer);
    this.deferredTimer = null;
    this.flush();
    while (this.groupsInFlight.size > 0 || this.pending.size > 0) {
      await Promise.allSettled([...this.groupsInFlight]);
    }
  }

  /**
   * Queues the write of `job`, merged with a queued write of the same job if
   * there is one; resolves once it is durable, after `durable` was told.
   * `request`: an admin request whose record goes with this write. With
   * `flush` false the caller calls flush() once it has queued them all.
   */
  write(
    job: Job,
    isNew: boolean,
    opts: { deferMs?: number; request?: PendingRequest; flush?: boolean } = {},
  ): Promise<void> {
    const { deferMs = 0, request, flush = true } = opts;
    // A request's record must not wait: its client waits for the answer.
    const dueAt = deferMs > 0 && request === undefined ? this.opts.monotonic() + deferMs : 0;
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
      if (flush) this.flush();
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
  flush(now = this.opts.monotonic()): void {
    while (this.groupsInFlight.size < MAX_GROUPS_IN_FLIGHT && this.pending.size > 0) {
      const group: PendingWrite[] = [];
      for (const [id, w] of this.pending) {
        if (this.writing.has(id)) continue; // its previous write first
        if (w.dueAt > now && !this.closing) continue; // deferred (closing flushes all)
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
        this.flush();
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
        const now = this.opts.monotonic();
        this.flush(now);
        // Writes due later need the timer again. One due already but not
        // taken (its previous write under way, or both groups busy) goes
        // with the next group: startFlush runs again as each group ends.
        let next = Infinity;
        for (const w of this.pending.values()) if (w.dueAt > now) next = Math.min(next, w.dueAt);
        if (next < Infinity) this.armDeferred(next);
      },
      Math.max(0, dueAt - this.opts.monotonic()),
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
    const prepared = await prepareFiles(this.opts.fs, this.opts.dir, writes, gate);
    const publishing = this.publishTurn.then(async () => {
      // A group started after this one, with fewer files to write, may have
      // published a higher serial already. Renaming this group's serial over
      // it would leave that group's jobs above the serial on disk (until the
      // next serial, or for good after a SIGKILL): it is dropped instead, as
      // the higher serial covers this group's ids too. Decided here, in the
      // publishing turn, so no other group renames a serial meanwhile.
      const covered = gate !== undefined && maxNewId <= this.publishedSerial;
      const published = await publishFiles(
        this.opts.fs,
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
      this.opts.logger.error(`cannot persist the job serial: ${outcome.gate.message}`);
    }
    if (requests.lines.length > 0 && outcome.journal === null) {
      // Before any caller is told: the admin server looks the record up.
      this.requests.add(requests.records);
    }
    group.forEach((w, i) => {
      const id = w.job.id;
      let failure = outcome.writes[i];
      if (failure !== null && w.requests.length > 0 && outcome.journal === null) {
        // The record, with this version of the job, is durable: the request
        // happened, and a restart writes the job file from the record. So
        // the change stands; only the file is behind.
        this.opts.logger.error(
          `job ${id}: ${failure.message}; the requests file holds this version of it until a restart writes it`,
          { job: id },
        );
        this.requests.holdUnwrittenJobs();
        failure = null;
      }
      if (failure === null) {
        // Memory changes only once the file is durable: the store never
        // answers what a restart would not read back.
        this.opts.durable(w.job);
        for (const c of w.callers) c.resolve();
        return;
      }
      this.opts.logger.error(`job ${id}: ${failure.message}`, { job: id });
      for (const c of w.callers) c.reject(failure);
      // A queued write of this job was computed on top of the failed one:
      // it fails too, and the next change starts again from the durable job.
      const after = this.pending.get(id);
      if (after !== undefined) {
        this.pending.delete(id);
        for (const c of after.callers) c.reject(failure);
      }
      this.opts.failed(id);
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
        this.opts.logger.error(`internal: request ${r.record.id}: its jobs are not in one write`);
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
        path.join(this.opts.dir, SERIAL_FILE),
        gate.error,
      );
    }
    return this.requests.write(lines);
  }
}
