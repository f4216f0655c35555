// The admin methods: their names, what each takes and what each answers.
// The master implements them (src/master/admin-methods.ts), `abs` calls them
// (src/cli); admin-contract.ts ties each name to its parser and result.
// Arguments are checked here, purely, so both sides agree on them; a bad
// argument throws ShapeError, which the admin server turns into BAD_ARGUMENT
// naming the field.
//
// Times are milliseconds since the epoch; durations are milliseconds.

import { JOB_STATES, type JobLogEntry, type JobState } from "../model/job-vocabulary.js";
import { Fields, type JsonObject, ShapeError, showValue } from "../json-shape.js";
import type { AuthMode } from "../model/auth-modes.js";

export const ADMIN_METHODS = [
  "status",
  "show-jobs",
  "show-job",
  "show-slaves",
  "show-schedule",
  "run",
  "cancel",
  "watch",
  "archive",
  "autoarchive",
  "drain",
  "reload",
  "import-disaster-log",
] as const;
export type AdminMethodName = (typeof ADMIN_METHODS)[number];

/** `status`: who answers, and how busy it is. */
export interface StatusResult {
  master: string;
  realm: string;
  /** "real" or, for abs-master --disaster, "disaster". */
  mode: "real" | "disaster";
  pid: number;
  startedAt: number;
  /** The slave link's address, e.g. "0.0.0.0:7370". */
  listen: string;
  /** How slaves authenticate (master.conf `auth`). */
  auth: AuthMode;
  /** With kerberos, the service principal slaves get tickets for, `service/host@REALM`; else null. */
  servicePrincipal: string | null;
  jobsDir: string | null;
  /** Unarchived jobs. */
  jobs: number;
  drained: boolean;
  slavesConnected: number;
}

/** A job as `abs show jobs` lists it (show-job adds the log). */
export interface JobView {
  id: number;
  definition: string;
  slave: string;
  method: string;
  state: JobState;
  priority: number;
  attempt: number;
  received: number;
  dispatched: number | null;
  started: number | null;
  ended: number | null;
  /** A retry's backoff: not dispatched before this time. */
  notBefore: number | null;
  progress: { files: number; bytes: number; path: string | null } | null;
  /** The outcome's one-line message, once finished. */
  result: string | null;
  /** Why a queued or orphaned job waits, e.g. "slave green-acres at its limit 2/2". */
  waitReason: string | null;
  serial: number;
}

export interface JobDetail extends JobView {
  /** The method's parameters; a command job's `env` by its names only, never the values. */
  params: JsonObject;
  resultData: JsonObject | null;
  policy: {
    maxRunTimeMs: number | null;
    startBy: number | null;
    retries: number;
    retryBackoffMs: number;
    retryBackoffMaxMs: number;
  };
  log: JobLogEntry[];
  /** Read from the archive rather than the live directory. */
  archived: boolean;
}

/**
 * `show-jobs`. Without `all`, the jobs not finished plus those that ended
 * within the last `recentMs` (default 24 hours): "what runs where".
 */
export interface ShowJobsArgs {
  all: boolean;
  states: JobState[] | null;
  slave: string | null;
  definition: string | null;
  /** At most this many, the newest. Default: no limit. */
  limit: number | null;
}
export interface ShowJobsResult {
  jobs: JobView[];
}

export interface ShowJobArgs {
  id: number;
}
export interface ShowJobResult {
  job: JobDetail;
}

export interface SlaveView {
  name: string;
  /** Realm-key: the name the slave proved; Kerberos: its principal. */
  identity: string;
  /** Where it connected from, "address:port" (the last connection). */
  address: string;
  connected: boolean;
  /** When it last registered. */
  registeredAt: number;
  /** When the master last heard from it (now, while connected). */
  lastSeen: number;
  /** Jobs it runs at once (the smaller of its own limit and the master's). */
  maxJobs: number;
  /** Jobs dispatched to it and not finished. */
  active: number;
}
export interface ShowSlavesResult {
  slaves: SlaveView[];
}

export interface ShowScheduleArgs {
  /** How far ahead, in days. Default 1. */
  days: number;
}
export interface ScheduleView {
  definition: string;
  slaves: string[];
  /** The cron expression, or null for a definition run only by hand. */
  schedule: string | null;
  timezone: string;
  enabled: boolean;
  /** When it last fired. */
  lastTrigger: number | null;
  /** Its fire times within the window, at most MAX_SCHEDULE_RUNS. */
  next: number[];
}
/** `show-schedule` lists at most this many fire times per definition. */
export const MAX_SCHEDULE_RUNS = 1000;
export interface ShowScheduleResult {
  definitions: ScheduleView[];
}

export interface RunArgs {
  definition: string;
  /** Only this one of the definition's slaves (or another slave by name). Default: each of them. */
  slave: string | null;
}
export interface RunResult {
  /** The jobs made, one per slave. */
  jobs: number[];
}

export interface CancelArgs {
  id: number;
}
export interface CancelResult {
  job: JobView;
}

/**
 * `watch`: waits up to `timeoutMs` for job `id` to change past `serial`;
 * answers at once if it already has, or if it is finished.
 */
export interface WatchArgs {
  id: number;
  serial: number;
  timeoutMs: number;
}
export interface WatchResult {
  changed: boolean;
  job: JobDetail;
  /**
   * What the job is expected to come to, for the progress bar of `abs
   * watch` (src/master/progress-estimate.ts says from what); null when
   * nothing says, or the job is finished. Beside `job` rather than in it,
   * so `abs watch --json` and `abs show job --json` print what they always
   * did. Optional: an older master sends none, and abs then shows no bar.
   */
  expected?: ExpectedTotals | null;
}

/** The counts a finished run came to, in the units of a job's progress. */
export interface ExpectedTotals {
  files: number;
  bytes: number;
}

export interface ArchiveArgs {
  ids: number[];
}
export interface ArchiveResult {
  archived: number;
}

export interface AutoarchiveArgs {
  /** Finished jobs that ended at least this long ago. */
  ageMs: number;
}
export interface AutoarchiveResult {
  archived: number;
  /** Old enough but left for a next call (batches bound the time of one call). */
  remaining: number;
}

export interface DrainArgs {
  on: boolean;
}
export interface DrainResult {
  drained: boolean;
}

/** `reload`: like SIGHUP, but the error comes back (CONFIG, with every issue). */
export interface ReloadResult {
  summary: string;
}

/**
 * `import-disaster-log`: the master reads the fake master's log at `file`
 * (an absolute path: the master's working directory is not the caller's)
 * and merges what the slaves reported into the jobs directory.
 */
export interface ImportDisasterLogArgs {
  file: string;
}
/** What an import did with one reported attempt (src/master/disaster-import.ts). */
export type ImportVerdictName =
  /** The outcome was applied to a job that had none yet. */
  | "merged"
  /** The outcome replaced the master's "lost". */
  | "corrected"
  /** The job keeps its state; its log says what the disaster log has. */
  | "noted"
  /** Nothing to change: imported before, or only reported running. */
  | "unchanged"
  /** Not a job of this master: recorded as a new job of definition "(disaster)". */
  | "recorded"
  /** The job is archived: left as it is. */
  | "archived";
export interface ImportedAttemptView {
  slave: string;
  /** The job id and attempt the slave reported. */
  reportedJobId: number;
  attempt: number;
  verdict: ImportVerdictName;
  /** The job of this master the report went to (a new one when recorded). */
  jobId: number;
  state: JobState;
  /** The log line where the attempt first appears. */
  line: number;
}
/** How many attempts got each verdict, in the order verdicts first appear. */
export function countVerdicts(
  attempts: readonly ImportedAttemptView[],
): [ImportVerdictName, number][] {
  const counts = new Map<ImportVerdictName, number>();
  for (const a of attempts) counts.set(a.verdict, (counts.get(a.verdict) ?? 0) + 1);
  return [...counts];
}
export interface ImportDisasterLogResult {
  file: string;
  lines: number;
  /** An unfinished last line, skipped (never acknowledged: its slave still holds it). */
  unfinishedLine: number | null;
  attempts: ImportedAttemptView[];
  /**
   * Lines the import did not act on, in line order (at most 100 of them):
   * not a record, no MAC or one that does not verify, a slave name its
   * identity does not vouch for, an attempt never dispatched to that slave.
   */
  refused: { line: number; reason: string }[];
  /** How many lines were refused in all. */
  refusedCount: number;
}

export const MAX_WATCH_TIMEOUT_MS = 60_000;
const MAX_IDS = 100_000;

export function parseShowJobsArgs(args: JsonObject): ShowJobsArgs {
  const f = new Fields(args, "args");
  f.onlyKeys(["all", "states", "slave", "definition", "limit"]);
  return {
    all: f.has("all") ? f.boolean("all") : false,
    states: f.has("states")
      ? f.array("states", { maxLength: JOB_STATES.length }).map((v, i) => {
          if (typeof v === "string" && (JOB_STATES as readonly string[]).includes(v)) {
            return v as JobState;
          }
          throw new ShapeError(
            `args.states[${i}]`,
            `expected one of ${JOB_STATES.join(", ")}, got ${showValue(v)}`,
          );
        })
      : null,
    slave: f.optionalString("slave", { nonEmpty: true }) ?? null,
    definition: f.optionalString("definition", { nonEmpty: true }) ?? null,
    limit: f.optionalInt("limit", { min: 1 }) ?? null,
  };
}

export function parseIdArgs(args: JsonObject): { id: number } {
  const f = new Fields(args, "args");
  f.onlyKeys(["id"]);
  return { id: f.int("id", { min: 1 }) };
}

export function parseShowScheduleArgs(args: JsonObject): ShowScheduleArgs {
  const f = new Fields(args, "args");
  f.onlyKeys(["days"]);
  return { days: f.optionalInt("days", { min: 1, max: 366 }) ?? 1 };
}

export function parseRunArgs(args: JsonObject): RunArgs {
  const f = new Fields(args, "args");
  f.onlyKeys(["definition", "slave"]);
  return {
    definition: f.string("definition", { nonEmpty: true, maxLength: 255 }),
    slave: f.optionalString("slave", { nonEmpty: true, maxLength: 255 }) ?? null,
  };
}

export function parseWatchArgs(args: JsonObject): WatchArgs {
  const f = new Fields(args, "args");
  f.onlyKeys(["id", "serial", "timeoutMs"]);
  return {
    id: f.int("id", { min: 1 }),
    serial: f.int("serial", { min: 0 }),
    timeoutMs: f.int("timeoutMs", { min: 0, max: MAX_WATCH_TIMEOUT_MS }),
  };
}

export function parseArchiveArgs(args: JsonObject): ArchiveArgs {
  const f = new Fields(args, "args");
  f.onlyKeys(["ids"]);
  const ids = f.array("ids", { maxLength: MAX_IDS }).map((v, i) => {
    if (typeof v === "number" && Number.isSafeInteger(v) && v >= 1) return v;
    throw new ShapeError(
      `args.ids[${i}]`,
      `expected a job id (an integer >= 1), got ${showValue(v)}`,
    );
  });
  return { ids };
}

export function parseAutoarchiveArgs(args: JsonObject): AutoarchiveArgs {
  const f = new Fields(args, "args");
  f.onlyKeys(["ageMs"]);
  return { ageMs: f.int("ageMs", { min: 0 }) };
}

export function parseDrainArgs(args: JsonObject): DrainArgs {
  const f = new Fields(args, "args");
  f.onlyKeys(["on"]);
  return { on: f.boolean("on") };
}

export function parseImportDisasterLogArgs(args: JsonObject): ImportDisasterLogArgs {
  const f = new Fields(args, "args");
  f.onlyKeys(["file"]);
  const file = f.string("file", { nonEmpty: true, maxLength: 4096 });
  if (!file.startsWith("/") || file.includes("\0")) {
    throw new ShapeError("args.file", `expected an absolute path, got ${showValue(file)}`);
  }
  return { file };
}

/** The arguments of a method that takes none. */
export type NoArgs = Record<string, never>;

export function parseNoArgs(args: JsonObject): NoArgs {
  new Fields(args, "args").onlyKeys([]);
  return {};
}
