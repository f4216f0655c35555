// `abs import-disaster-log FILE`: what the slaves told the fake master,
// merged into the real master's jobs directory once it is back.
//
// Nothing in the log is taken on trust (disaster-log.ts reads it):
//
// - the file must be owned by root or this master's user and not be
//   writable by group or others, or nothing is imported;
// - each line must carry a MAC that verifies under the key derived from the
//   realm key (or disaster_log_key_file), auth/disaster-log-key.ts;
// - the record's authenticated identity must vouch for the slave name it
//   gives (principalMayUseName: a realm-key slave's identity is its name);
// - an attempt must have been dispatched to that slave: by this master (the
//   job of that id on that slave, dispatched at that attempt) or by the
//   fake master (a "dispatched" record of its own). A slave cannot report
//   into existence a job nobody gave it, nor finish one still queued.
//
// A line or attempt that fails one of these is refused, named by its line
// and the reason, and the rest of the log is imported: each record is
// authenticated on its own, so a forged or damaged line says nothing about
// the others, and an import can be run again at no cost (below). An admin
// recovering from a disaster gets every outcome that can be trusted at the
// first go, and the list of what was not, with no file to edit; `abs`
// exits non-zero when anything was refused.
//
// The log is folded, line by line, into one ReportedAttempt per
// (slave, job id, attempt): its first and last report times, and its
// result or rejection if the slave reported one. Then each attempt is
// matched with a job:
//
// - Known: the job of that id, on that slave, received before the first
//   report (a jobs directory restored from an older copy may have given the
//   id to a newer job since; that one is not it), give or take a minute of
//   clock difference between the two masters' hosts.
//   - Same attempt, not finished: the result is applied as if the slave had
//     reported it to this master (a failure follows the retry policy).
//   - Same attempt, failed as lost (the slave had forgotten the result by
//     the time it registered here): the slave's outcome replaces "lost".
//   - Same attempt, already finished with this outcome: unchanged.
//   - Anything else with a result (finished otherwise, an earlier attempt):
//     the job keeps its state; its log gets one line saying what the
//     disaster log has.
//   - Reported running only: unchanged (the slave reports a running job to
//     whichever master it registers with).
// - Unknown, and dispatched by the fake master (an admin's `abs run` there,
//   its ids far above any real one, fake-master.ts disasterJobId): recorded
//   as a finished job of definition "(disaster)" on that slave, whose params
//   name the reported id and attempt. With no result in the log it is
//   recorded lost, so a later, longer log can still complete it.
// - Unknown otherwise: refused (never dispatched to that slave, as far as
//   this jobs directory and the log show).
//
// Importing the same log twice changes nothing: every line an import writes
// ends with a tag of the attempt (importTag), and an attempt whose tag a job
// holds is left alone; an unknown attempt is found again through the jobs
// directory's disaster-imports.json (even once its job is archived) or the
// params of its live job (even if the master stopped before that was saved).

import { formatDuration } from "../config/duration.js";
import { JobNotFoundError } from "../errors.js";
import { isFinished, type Job, type JobResult, type NewJob } from "../jobsdir/job.js";
import {
  correctLost,
  isLost,
  lostResult,
  recordLog,
  transition,
  type Transition,
} from "../jobsdir/job-state.js";
import type { JobStore } from "../jobsdir/job-store.js";
import type { ImportedAttempt } from "../jobsdir/state-files.js";
import type { JsonObject } from "../json-shape.js";
import type {
  ImportDisasterLogResult,
  ImportedAttemptView,
  ImportVerdictName,
} from "../protocol/admin-api.js";
import type { Outcome } from "../protocol/slave-messages.js";
import type { DisasterLogKey } from "../auth/disaster-log-key.js";
import { principalMayUseName, type SlaveNamePolicy } from "../auth/slave-identity.js";
import {
  type DisasterRecord,
  MAX_REFUSED_KEPT,
  type RefusedLine,
  readDisasterLog,
} from "./disaster-log.js";
import { afterFailure } from "./job-policy.js";

/** The definition under which attempts this master does not know are recorded. */
export const DISASTER_DEFINITION = "(disaster)";

/** Everything the log says about one attempt of one job on one slave. */
export interface ReportedAttempt {
  slave: string;
  jobId: number;
  attempt: number;
  /** First and last report, ms since the epoch (the fake master's clock). */
  firstTime: number;
  lastTime: number;
  /** When the slave reported it started, if it did. */
  startedTime: number | null;
  /** The first result reported (a repeat after a lost ack says the same). */
  result: { outcome: Outcome; message: string; data: JsonObject; time: number } | null;
  /** The slave's refusal, if it refused the dispatch. */
  reject: { reason: string; time: number } | null;
  /** The fake master's own dispatch (an admin's `abs run` there), if it made this job. */
  dispatch: { definition: string; method: string } | null;
  /** The line of the first report, for messages. */
  line: number;
}

export function attemptKey(slave: string, jobId: number, attempt: number): string {
  return `${slave}\0${jobId}\0${attempt}`;
}

/** Adds one record of the log to `attempts` (pure but for the map). */
export function foldRecord(
  attempts: Map<string, ReportedAttempt>,
  r: DisasterRecord,
  line: number,
): void {
  const key = attemptKey(r.slave, r.jobId, r.attempt);
  let a = attempts.get(key);
  if (a === undefined) {
    a = {
      slave: r.slave,
      jobId: r.jobId,
      attempt: r.attempt,
      firstTime: r.time,
      lastTime: r.time,
      startedTime: null,
      result: null,
      reject: null,
      dispatch: null,
      line,
    };
    attempts.set(key, a);
  }
  a.firstTime = Math.min(a.firstTime, r.time);
  a.lastTime = Math.max(a.lastTime, r.time);
  switch (r.report) {
    case "started":
      a.startedTime ??= r.time;
      break;
    case "running":
      if (r.state === "running" || r.state === "canceling") a.startedTime ??= r.time;
      break;
    case "result":
      a.result ??= {
        outcome: r.outcome ?? "failed",
        message: r.message ?? "",
        data: r.data ?? {},
        time: r.time,
      };
      break;
    case "reject":
      a.reject ??= { reason: r.reason ?? "", time: r.time };
      break;
    case "dispatched":
      a.dispatch ??= { definition: r.definition ?? "?", method: r.method ?? "unknown" };
      break;
    case "progress":
      break;
  }
}

/** The outcome an attempt's reports amount to, or null if it was only seen running. */
export function reportedOutcome(
  a: ReportedAttempt,
): { outcome: Outcome; result: JobResult; time: number } | null {
  if (a.result !== null) {
    return {
      outcome: a.result.outcome,
      result: { message: a.result.message, data: a.result.data },
      time: a.result.time,
    };
  }
  if (a.reject !== null) {
    const message = `refused by ${a.slave}: ${a.reject.reason}`;
    return { outcome: "failed", result: { message, data: {} }, time: a.reject.time };
  }
  return null;
}

/**
 * How far the fake master's clock may be behind the real master's: the two
 * may run on different hosts, and a job received just before the disaster
 * must still be recognized in its first report.
 */
export const CLOCK_SKEW_MS = 60_000;

/** Whether job `job` is the one the attempt was reported for (see the header). */
export function isSameJob(job: Job, a: ReportedAttempt): boolean {
  return job.slave === a.slave && job.timestamps.received <= a.firstTime + CLOCK_SKEW_MS;
}

/**
 * The mark that ends every log line an import writes about an attempt: a
 * later import of the same log finds it and changes nothing, whatever the
 * job has done since (a retry, say).
 */
export function importTag(a: ReportedAttempt, time: number): string {
  return `(from the disaster log: ${a.slave}, attempt ${a.attempt}, at ${new Date(time).toISOString()})`;
}

/**
 * Whether the job was dispatched again after the attempt's last report: the
 * slave, registering here without it, had it queued again as the same
 * attempt (slave-session.ts), and a new run is under way. Its result is the
 * one that counts; the log's is of the run before.
 */
function dispatchedSince(job: Job, a: ReportedAttempt): boolean {
  const { dispatched } = job.timestamps;
  return dispatched !== null && dispatched > a.lastTime + CLOCK_SKEW_MS;
}

/**
 * The known job after the attempt's reports are applied to it, and the
 * verdict. Pure: `now` is when the import runs (retry backoffs count from
 * it). Returns `job` itself when nothing changes.
 */
export function applyToKnownJob(
  job: Job,
  a: ReportedAttempt,
  now: number,
): { job: Job; verdict: ImportVerdictName } {
  const reported = reportedOutcome(a);
  if (reported === null) return { job, verdict: "unchanged" };
  const { outcome, result, time } = reported;
  const tag = importTag(a, time);
  if (job.log.some((e) => e.message.includes(tag))) return { job, verdict: "unchanged" };
  const what = `${outcome} on ${a.slave}: ${result.message}`;
  const sameAttempt = a.attempt === job.attempt;
  if (sameAttempt && !isFinished(job.state) && !dispatchedSince(job, a)) {
    let j = job;
    if (j.state === "queued") {
      // Queued again as the same attempt because the slave, registering
      // here, no longer listed it: it had been dispatched all the same.
      j = transition(j, {
        to: "dispatched",
        now,
        message: `dispatched to ${a.slave} (as the disaster log shows)`,
      });
    }
    const change: Transition =
      outcome === "failed" && j.state !== "canceling"
        ? afterFailure(j, now, `failed on ${a.slave}: ${result.message} ${tag}`, result)
        : { to: outcome, now, message: `${what} ${tag}`, result };
    return { job: transition(j, change), verdict: "merged" };
  }
  if (sameAttempt && isLost(job)) {
    const was = job.result?.message ?? "lost";
    const message = `${what} (it had been failed as "${was}") ${tag}`;
    return { job: correctLost(job, { to: outcome, now, message, result }), verdict: "corrected" };
  }
  if (sameAttempt && job.state === outcome && job.result?.message === result.message) {
    return { job, verdict: "unchanged" }; // the slave told this master the same
  }
  const where =
    a.attempt < job.attempt
      ? `earlier attempt ${a.attempt} ${what}; the job is at attempt ${job.attempt} (${job.state})`
      : a.attempt > job.attempt
        ? `attempt ${a.attempt} ${what}, beyond the job's attempt ${job.attempt} (${job.state})`
        : isFinished(job.state)
          ? `attempt ${a.attempt} ${what}; the job stays ${job.state}`
          : `attempt ${a.attempt} ${what}, from a run before the job was dispatched again; the job goes on (${job.state})`;
  return {
    job: recordLog(job, now, "warning", `the disaster log has ${where} ${tag}`),
    verdict: "noted",
  };
}

/** The params of the (disaster) job recording an unknown attempt: how it is found again. */
export function disasterParams(a: ReportedAttempt): JsonObject {
  return { reportedJobId: a.jobId, reportedAttempt: a.attempt };
}

/** The submission of the (disaster) job for an unknown attempt. */
export function unknownJobSpec(a: ReportedAttempt, why: string): NewJob {
  const byHand =
    a.dispatch === null
      ? ""
      : ` (run by hand on the fake master: definition ${a.dispatch.definition})`;
  return {
    definition: DISASTER_DEFINITION,
    slave: a.slave,
    method: a.dispatch?.method ?? "unknown",
    params: disasterParams(a),
    priority: 0,
    message: `received from the disaster log: ${a.slave} reported job ${a.jobId} attempt ${a.attempt}${byHand}, ${why}`,
  };
}

/** Takes the new (disaster) job from queued to the finished state the log shows. */
export function finishUnknownJob(queued: Job, a: ReportedAttempt): Job {
  const reported = reportedOutcome(a);
  let j = transition(queued, {
    to: "dispatched",
    now: a.firstTime,
    message:
      a.dispatch === null
        ? `dispatched to ${a.slave} by a master this jobs directory does not know`
        : `dispatched to ${a.slave} by the fake master`,
  });
  if (a.startedTime !== null) {
    j = transition(j, { to: "running", now: a.startedTime, message: `started on ${a.slave}` });
  }
  if (reported === null) {
    const last = new Date(a.lastTime).toISOString();
    const seen =
      a.startedTime === null && a.dispatch !== null
        ? `the fake master dispatched it to ${a.slave} (at ${last})`
        : `${a.slave} reported it running during the disaster (last at ${last})`;
    const message = `lost: ${seen}, and the log has no result`;
    return transition(j, { to: "failed", now: a.lastTime, message, result: lostResult(message) });
  }
  const { outcome, result, time } = reported;
  return transition(j, {
    to: outcome,
    now: time,
    message: `${outcome} on ${a.slave}: ${result.message} ${importTag(a, time)}`,
    result,
  });
}

/** The (disaster) job recording `a` again, if the log now has more to say. */
export function applyToRecordedJob(
  job: Job,
  a: ReportedAttempt,
  now: number,
): { job: Job; verdict: ImportVerdictName } {
  const reported = reportedOutcome(a);
  if (reported === null || !isLost(job)) return { job, verdict: "unchanged" };
  const { outcome, result, time } = reported;
  const message = `${outcome} on ${a.slave}: ${result.message} ${importTag(a, time)}`;
  return { job: correctLost(job, { to: outcome, now, message, result }), verdict: "corrected" };
}

/**
 * Why the record's slave name is not one its authenticated identity may
 * use, or null. A realm-key slave's identity is its name (its key proves
 * that name alone); a Kerberos principal (`...@REALM`) vouches as on the
 * slave link, under the master's `policy` (slave-identity.ts).
 */
export function notVouchedBecause(r: DisasterRecord, policy: SlaveNamePolicy): string | null {
  let why: string | null;
  if (r.identity.includes("@")) why = principalMayUseName(r.identity, r.slave, policy);
  else if (r.identity === r.slave) why = null;
  else why = `the key of slave "${r.identity}" proves the name "${r.identity}", not "${r.slave}"`;
  return why === null ? null : `slave "${r.slave}" is not vouched for by its identity: ${why}`;
}

/**
 * Why attempt `a` was never dispatched to its slave as the known job `job`
 * shows it, or null if it was. A retry (a later attempt) follows only a
 * run that was dispatched; a job queued again as the same attempt (its
 * slave had not received it, slave-session.ts and dispatcher.ts) had been
 * dispatched, and its log says so.
 */
export function notDispatchedBecause(job: Job, a: ReportedAttempt): string | null {
  if (a.attempt < job.attempt) return null;
  if (a.attempt > job.attempt) {
    return `job ${job.id} here is at attempt ${job.attempt}, so attempt ${a.attempt} was never dispatched`;
  }
  if (job.timestamps.dispatched !== null) return null;
  if (job.log.some((e) => e.message.endsWith("; queued again"))) return null;
  return `job ${job.id} here (${job.state}) was never dispatched`;
}

/** The refusal of an attempt never dispatched to its slave. */
function neverDispatched(a: ReportedAttempt, why: string): RefusedLine {
  return {
    line: a.line,
    reason: `${a.slave} reported job ${a.jobId} attempt ${a.attempt}, which was never dispatched to it (${why}); its reports are refused`,
  };
}

/** Why an attempt is not matched with the live job of its id, for the new job's first line. */
export function whyUnknown(job: Job | undefined, a: ReportedAttempt): string {
  if (job === undefined) return "which this jobs directory does not have";
  if (job.slave !== a.slave) return `but job ${job.id} here runs on ${job.slave}`;
  const after = formatDuration(Math.max(0, job.timestamps.received - a.firstTime));
  return `but job ${job.id} here was received ${after} after that report`;
}

/** Why an attempt matches no job of this master, for its refusal. */
function whyNotHere(job: Job | undefined, a: ReportedAttempt): string {
  if (job === undefined) return `this jobs directory has no job ${a.jobId} it could be`;
  if (job.slave !== a.slave) return `job ${job.id} here runs on ${job.slave}`;
  const after = formatDuration(Math.max(0, job.timestamps.received - a.firstTime));
  return `job ${job.id} here was received ${after} after that report`;
}

export type ImportSummary = ImportDisasterLogResult;

/** What the import needs of the master. */
export interface ImportPorts {
  store: JobStore;
  now: () => number;
  /** The key the fake master's records are checked with (auth/disaster-log-key.ts). */
  key: DisasterLogKey;
  /** Which Kerberos principals may use which slave names (master.conf; slave-listener.ts slaveNamePolicy). */
  namePolicy: SlaveNamePolicy;
}

/**
 * Imports the disaster log `file` into `store`. The whole log is read and
 * checked before any job changes; then each attempt that is not refused is
 * applied in the order it first appears. Imports must not run concurrently
 * (the master queues them): an unknown attempt is looked up, then recorded.
 */
export async function importDisasterLog(ports: ImportPorts, file: string): Promise<ImportSummary> {
  const attempts = new Map<string, ReportedAttempt>();
  const reading = await readDisasterLog(file, ports.key, (record, line) => {
    const why = notVouchedBecause(record, ports.namePolicy);
    if (why === null) foldRecord(attempts, record, line);
    return why;
  });
  // The (disaster) jobs of earlier imports, by the attempt each records:
  // saved in the jobs directory (found even once archived), and the live
  // ones (found even if the master stopped before the save).
  const { store } = ports;
  const recorded = new Map<string, ImportedAttempt>();
  for (const r of store.importedAttempts) recorded.set(attemptKey(r.slave, r.jobId, r.attempt), r);
  for (const j of store.query({ definition: DISASTER_DEFINITION })) {
    const jobId = j.params["reportedJobId"];
    const attempt = j.params["reportedAttempt"];
    if (typeof jobId === "number" && typeof attempt === "number") {
      const r = { slave: j.slave, jobId, attempt, recordedAs: j.id };
      recorded.set(attemptKey(r.slave, jobId, attempt), r);
    }
  }
  const out: ImportedAttemptView[] = [];
  const refused: RefusedLine[] = [];
  for (const a of attempts.values()) {
    const applied = await importAttempt(ports, a, recorded);
    if ("refused" in applied) {
      refused.push(applied.refused);
      continue;
    }
    const { job, verdict } = applied;
    out.push({
      slave: a.slave,
      reportedJobId: a.jobId,
      attempt: a.attempt,
      verdict,
      jobId: job.id,
      state: job.state,
      line: a.line,
    });
  }
  if (recorded.size !== store.importedAttempts.length) {
    await store.saveImportedAttempts([...recorded.values()]);
  }
  const allRefused = [...reading.refused, ...refused].sort((x, y) => x.line - y.line);
  return {
    file,
    lines: reading.lines,
    unfinishedLine: reading.unfinishedLine,
    attempts: out,
    refused: allRefused.slice(0, MAX_REFUSED_KEPT),
    refusedCount: reading.refusedCount + refused.length,
  };
}

type Applied = { job: Job; verdict: ImportVerdictName };

/** Applies `apply` to the newest version of job `id`, like a slave's own report. */
async function applyTo(
  store: JobStore,
  id: number,
  apply: (job: Job) => Applied,
): Promise<Applied> {
  let verdict: ImportVerdictName = "unchanged";
  const job = await store.update(id, (latest) => {
    const applied = apply(latest);
    verdict = applied.verdict;
    return applied.job;
  });
  return { job, verdict };
}

async function importAttempt(
  { store, now }: ImportPorts,
  a: ReportedAttempt,
  recorded: Map<string, ImportedAttempt>,
): Promise<Applied | { refused: RefusedLine }> {
  const live = store.get(a.jobId);
  if (live !== undefined && isSameJob(live, a)) {
    const why = notDispatchedBecause(live, a);
    if (why !== null) return { refused: neverDispatched(a, why) };
    return applyTo(store, a.jobId, (job) => applyToKnownJob(job, a, now()));
  }
  if (live === undefined) {
    const archived = await store.readArchived(a.jobId).catch((err: unknown) => {
      if (err instanceof JobNotFoundError) return undefined;
      throw err;
    });
    if (archived !== undefined && isSameJob(archived, a)) {
      return { job: archived, verdict: "archived" };
    }
  }
  // Not a job of this master's: only the fake master's own dispatch (an
  // admin's run by hand there) vouches that the slave was given it.
  if (a.dispatch === null) return { refused: neverDispatched(a, whyNotHere(live, a)) };
  const key = attemptKey(a.slave, a.jobId, a.attempt);
  const earlier = recorded.get(key)?.recordedAs;
  if (earlier !== undefined) {
    if (store.get(earlier) !== undefined) {
      return applyTo(store, earlier, (job) => applyToRecordedJob(job, a, now()));
    }
    // Recorded by an earlier import, archived since.
    const archived = await store.readArchived(earlier).catch(() => undefined);
    if (archived !== undefined) return { job: archived, verdict: "archived" };
  }
  const job = await store.recordFinished(unknownJobSpec(a, whyUnknown(live, a)), (queued) =>
    finishUnknownJob(queued, a),
  );
  recorded.set(key, { slave: a.slave, jobId: a.jobId, attempt: a.attempt, recordedAs: job.id });
  return { job, verdict: "recorded" };
}
