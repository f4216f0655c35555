// Job definitions: one `[job NAME]` section each, in master.conf or any
// jobs.d/*.conf. Step 2 (check every key, then the keys against each other)
// and step 3 (fill defaults, durations to milliseconds). Pure code.
//
//   [job home]                  # or [job "home"]; names: letters, digits, - _ .
//   slave = green-acres         # or a comma list: one job per slave at each run
//   schedule = 0 2 * * *
//   timezone = Europe/Paris
//   method = tar
//   tar.sources = /home, /etc
//   tar.destination = /srv/backup/home
//
// Method parameters carry their method as a prefix (`tar.sources`,
// `command.program`), so a key says which method it belongs to and a key of
// another method is an error rather than silently unused. The same goes for
// every key that would have no effect: timezone or missed_run without a
// schedule, retry_backoff without retries, `command.args` with a shell.

import type { JsonObject } from "../json-shape.js";
import type { CronSchedule } from "./cron.js";
import { formatDuration } from "./duration.js";
import type { IniSection } from "./ini-tokenizer.js";
import { type ConfigIssue, makeIssue } from "./issues.js";
import { type Located, readSection } from "./section-reader.js";
import {
  absolutePath,
  boolean,
  cron,
  duration,
  integer,
  list,
  name,
  oneOf,
  text,
  timeZone,
  words,
} from "./values.js";

export const METHODS = ["tar", "restore", "verify", "command"] as const;
export type MethodName = (typeof METHODS)[number];
export const OVERLAP_POLICIES = ["allow", "forbid", "replace"] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];
export const MISSED_RUN_POLICIES = ["skip", "run-once"] as const;
export type MissedRunPolicy = (typeof MISSED_RUN_POLICIES)[number];
export const TAR_LEVELS = ["full", "incremental"] as const;
export type TarLevel = (typeof TAR_LEVELS)[number];

/** `tar`: archives of source paths into a destination directory (GNU tar format). */
export interface TarMethod {
  kind: "tar";
  /** `tar.sources`: absolute paths to back up, normalized. Required. */
  sources: string[];
  /** `tar.destination`: absolute path of the directory the archives go to. Required. */
  destination: string;
  /** `tar.exclude`: patterns of paths to leave out (comma list). Default: none. */
  exclude: string[];
  /** `tar.level`: full, or only what changed since the previous backup. Default "full". */
  level: TarLevel;
  /** `tar.gzip`: compress the archive. Default false. */
  gzip: boolean;
}

/** `restore`: extracts an archive chain (full plus incrementals) into a target. */
export interface RestoreMethod {
  kind: "restore";
  /** `restore.source`: absolute path of the archive, or of the directory holding the chain. Required. */
  source: string;
  /** `restore.target`: absolute path to extract into. Required. */
  target: string;
}

/** `verify`: re-reads an archive and checks it against its manifest. */
export interface VerifyMethod {
  kind: "verify";
  /** `verify.archive`: absolute path of the archive (or chain directory). Required. */
  archive: string;
}

/** `command`: runs a program (restic, pg_dump, rsync, ...). */
export interface CommandMethod {
  kind: "command";
  /**
   * `command.program`: the program (absolute path, or a name looked up in
   * the slave's fixed PATH of command jobs); with `shell`, a whole shell
   * command line. The slave runs it only if its allowed_programs lists it.
   * Required.
   */
  program: string;
  /**
   * `command.args`: its arguments, split like a shell would but without one:
   * blanks separate, '...' and "..." quote, \ escapes, an unquoted ; or #
   * starts a comment. Default: none.
   */
  args: string[];
  /**
   * `command.env.NAME = value`, one key per variable, added to the minimal
   * environment command jobs get on the slave (PATH, HOME, LANG; not the
   * slave's own). Default: none.
   */
  env: Record<string, string>;
  /** `command.cwd`: absolute working directory. Default null: the slave's state directory. */
  cwd: string | null;
  /** `command.shell`: run `program` through /bin/sh -c. Default false. */
  shell: boolean;
}

export type JobMethod = TarMethod | RestoreMethod | VerifyMethod | CommandMethod;

/** One job definition, checked and with every default filled in. */
export interface JobDefinition {
  /** The NAME of `[job NAME]`: letters, digits, -, _ and . (at most 255). */
  name: string;
  /** Where it is defined, for messages. */
  file: string;
  line: number;
  /**
   * `slave`: the slaves it runs on, a name or a comma list. Each run makes one
   * job per slave. Required.
   */
  slaves: string[];
  /**
   * `schedule`: when it runs, a cron expression (5 fields, or 6 with
   * seconds first). Default null: it runs only when asked (`abs run`).
   */
  schedule: CronSchedule | null;
  /**
   * `timezone`: IANA zone the schedule is read in. Default: `timezone` of
   * [master], itself by default the master host's local zone.
   */
  timezone: string;
  /** `method`: tar, restore, verify or command, with its parameters. Required. */
  method: JobMethod;
  /** `priority`: -1000 to 1000; higher runs first, then first in, first out. Default 0. */
  priority: number;
  /** `max_run_time`: milliseconds a run may take before it is canceled. Default null: no limit. */
  maxRunTimeMs: number | null;
  /**
   * `start_deadline`: milliseconds after its trigger a job may wait to start;
   * past it the job fails with that reason. Default null: it waits as long as it takes.
   */
  startDeadlineMs: number | null;
  /** `retries`: further attempts after a failed one, 0 to 100. Default 0. */
  retries: number;
  /**
   * `retry_backoff`: milliseconds before the first retry; each next retry
   * waits twice as long, up to `retryBackoffMaxMs`. Default 60,000 (1m).
   */
  retryBackoffMs: number;
  /** `retry_backoff_max`: the longest wait between retries, in milliseconds. Default 3,600,000 (1h). */
  retryBackoffMaxMs: number;
  /**
   * `overlap`: when a run is due while the previous one still runs: allow
   * (start it too), forbid (skip the new one), replace (cancel the old one).
   * Default "forbid".
   */
  overlap: OverlapPolicy;
  /**
   * `missed_run`: runs due while the master was down: skip them, or run once
   * at startup. Default "run-once".
   */
  missedRun: MissedRunPolicy;
  /** `enabled`: false keeps the definition but never schedules it. Default true. */
  enabled: boolean;
}

export const DEFAULT_RETRY_BACKOFF_MS = 60_000;
export const DEFAULT_RETRY_BACKOFF_MAX_MS = 3_600_000;

const JOB_SCHEMA = {
  slave: list(name),
  schedule: cron,
  timezone: timeZone,
  method: oneOf(METHODS),
  priority: integer(-1000, 1000),
  max_run_time: duration(1),
  start_deadline: duration(1),
  retries: integer(0, 100),
  retry_backoff: duration(0),
  retry_backoff_max: duration(0),
  overlap: oneOf(OVERLAP_POLICIES),
  missed_run: oneOf(MISSED_RUN_POLICIES),
  enabled: boolean,
  "tar.sources": list(absolutePath),
  "tar.destination": absolutePath,
  "tar.exclude": list(text(4096), { allowEmpty: true }),
  "tar.level": oneOf(TAR_LEVELS),
  "tar.gzip": boolean,
  "restore.source": absolutePath,
  "restore.target": absolutePath,
  "verify.archive": absolutePath,
  "command.program": text(4096),
  "command.args": words,
  "command.cwd": absolutePath,
  "command.shell": boolean,
};

/** Every key a job definition takes (`command.env.NAME` aside). */
export const JOB_KEYS: readonly string[] = [...Object.keys(JOB_SCHEMA), "command.env.NAME"];

/** The parameters each method requires. */
const REQUIRED_PARAMS: Record<MethodName, readonly string[]> = {
  tar: ["tar.sources", "tar.destination"],
  restore: ["restore.source", "restore.target"],
  verify: ["verify.archive"],
  command: ["command.program"],
};

const ENV_PREFIX = "command.env.";

function methodOfKey(key: string): MethodName | undefined {
  const prefix = key.split(".")[0];
  return METHODS.find((m) => m === prefix);
}

function and(items: readonly string[]): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

/** The `[job ...]` header's name: `job home` or `job "home"`; undefined if the header is not a job. */
export function jobHeaderName(header: string): string | undefined {
  const m = /^job(?:\s+(.*))?$/.exec(header);
  if (m === null) return undefined;
  const rest = (m[1] ?? "").trim();
  return rest.length >= 2 && rest.startsWith('"') && rest.endsWith('"') ? rest.slice(1, -1) : rest;
}

/**
 * Checks one `[job NAME]` section whose name is already checked; returns the
 * definition, or undefined after adding its issues.
 */
export function readJobDefinition(
  file: string,
  jobName: string,
  section: IniSection,
  defaults: { timezone: string },
  masterKeys: readonly string[],
  issues: ConfigIssue[],
): JobDefinition | undefined {
  const before = issues.length;
  const env: Record<string, string> = {};
  const { values: v, written } = readSection(file, section, JOB_SCHEMA, issues, {
    rawKeys: ["command.args"],
    elsewhere: { keys: masterKeys, where: "[master]" },
    extra: (entry) => {
      if (!entry.key.startsWith(ENV_PREFIX)) return false;
      const variable = entry.key.slice(ENV_PREFIX.length);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(variable)) {
        issues.push(
          makeIssue(
            file,
            entry.line,
            entry.key,
            entry.value,
            "an environment variable name holds letters, digits and _, and does not start with a digit",
          ),
        );
      } else {
        env[variable] = entry.value;
      }
      return true;
    },
  });
  const header = { key: "job", value: jobName };
  const at = (l: { line: number }, key: string, value: string, why: string): void => {
    issues.push(makeIssue(file, l.line, key, value, why));
  };
  const unused = (key: string, why: string): void => {
    const e = written.get(key);
    if (e !== undefined) at(e, key, e.value, why);
  };

  // Required keys; a key written with a bad value has its own message already.
  for (const key of ["slave", "method"]) {
    if (!written.has(key)) {
      at(section, header.key, header.value, `missing required key "${key}"`);
    }
  }

  // Method parameters: those of the method are required, those of another refused.
  const method = v.method?.value;
  if (v.method !== undefined && method !== undefined) {
    const missing = REQUIRED_PARAMS[method].filter((k) => !written.has(k));
    if (missing.length > 0) at(v.method, "method", method, `needs ${and(missing)}`);
  }
  if (method !== undefined) {
    for (const [key, entry] of written) {
      const owner = methodOfKey(key);
      if (owner !== undefined && owner !== method) {
        at(entry, key, entry.value, `only used with method = ${owner} (method is ${method})`);
      }
    }
  }

  // Keys that would have no effect.
  if (!written.has("schedule")) {
    const why = "only used with a schedule; this definition has none (it runs only by abs run)";
    unused("timezone", why);
    unused("missed_run", why);
  }
  const retries = v.retries?.value ?? 0;
  // A bad retries value has its own message; do not add one per retry key.
  const retriesOff = written.has("retries") ? v.retries?.value === 0 : true;
  if (retriesOff) {
    const why = "only used when retries is more than 0";
    unused("retry_backoff", why);
    unused("retry_backoff_max", why);
  }
  if (v["command.shell"]?.value === true && v["command.args"] !== undefined) {
    const a = v["command.args"];
    at(
      a,
      "command.args",
      a.text,
      "not used with command.shell = true: the program is then a shell command line; put the arguments in it",
    );
  }
  const backoff = v.retry_backoff?.value ?? DEFAULT_RETRY_BACKOFF_MS;
  const backoffMax = v.retry_backoff_max?.value ?? DEFAULT_RETRY_BACKOFF_MAX_MS;
  if (retries > 0 && backoff > backoffMax) {
    if (v.retry_backoff_max !== undefined) {
      const m = v.retry_backoff_max;
      at(m, "retry_backoff_max", m.text, `shorter than retry_backoff (${formatDuration(backoff)})`);
    } else if (v.retry_backoff !== undefined) {
      const b = v.retry_backoff;
      at(
        b,
        "retry_backoff",
        b.text,
        `longer than retry_backoff_max (${formatDuration(backoffMax)}, the default); raise retry_backoff_max too`,
      );
    }
  }

  if (issues.length > before) return undefined;
  return fillJobDefaults(file, jobName, section.line, v, env, defaults);
}

type JobValues = ReturnType<typeof readSection<typeof JOB_SCHEMA>>["values"];

function get<T>(l: Located<T> | undefined): T | undefined {
  return l?.value;
}

/** Step 3: a checked section with no issues → a definition with every default. */
function fillJobDefaults(
  file: string,
  jobName: string,
  line: number,
  v: JobValues,
  env: Record<string, string>,
  defaults: { timezone: string },
): JobDefinition | undefined {
  const slaves = get(v.slave);
  const methodName = get(v.method);
  if (slaves === undefined || methodName === undefined) return undefined;
  let method: JobMethod;
  switch (methodName) {
    case "tar": {
      const sources = get(v["tar.sources"]);
      const destination = get(v["tar.destination"]);
      if (sources === undefined || destination === undefined) return undefined;
      method = {
        kind: "tar",
        sources,
        destination,
        exclude: get(v["tar.exclude"]) ?? [],
        level: get(v["tar.level"]) ?? "full",
        gzip: get(v["tar.gzip"]) ?? false,
      };
      break;
    }
    case "restore": {
      const source = get(v["restore.source"]);
      const target = get(v["restore.target"]);
      if (source === undefined || target === undefined) return undefined;
      method = { kind: "restore", source, target };
      break;
    }
    case "verify": {
      const archive = get(v["verify.archive"]);
      if (archive === undefined) return undefined;
      method = { kind: "verify", archive };
      break;
    }
    case "command": {
      const program = get(v["command.program"]);
      if (program === undefined) return undefined;
      method = {
        kind: "command",
        program,
        args: get(v["command.args"]) ?? [],
        env,
        cwd: get(v["command.cwd"]) ?? null,
        shell: get(v["command.shell"]) ?? false,
      };
      break;
    }
  }
  return {
    name: jobName,
    file,
    line,
    slaves,
    schedule: get(v.schedule) ?? null,
    timezone: get(v.timezone) ?? defaults.timezone,
    method,
    priority: get(v.priority) ?? 0,
    maxRunTimeMs: get(v.max_run_time) ?? null,
    startDeadlineMs: get(v.start_deadline) ?? null,
    retries: get(v.retries) ?? 0,
    retryBackoffMs: get(v.retry_backoff) ?? DEFAULT_RETRY_BACKOFF_MS,
    retryBackoffMaxMs: get(v.retry_backoff_max) ?? DEFAULT_RETRY_BACKOFF_MAX_MS,
    overlap: get(v.overlap) ?? "forbid",
    missedRun: get(v.missed_run) ?? "run-once",
    enabled: get(v.enabled) ?? true,
  };
}

/** The method and its parameters as the slave link's `dispatch` carries them. */
export function methodParams(method: JobMethod): { method: MethodName; params: JsonObject } {
  const { kind, ...rest } = method;
  return { method: kind, params: { ...rest } };
}
