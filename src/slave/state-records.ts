// The records of the slave's state directory (state-dir.ts), as text. Pure
// code: serialize and parse, each field checked, so a damaged file is named
// with the field that is wrong rather than crashing the slave.

import { Fields, type JsonObject, ShapeError } from "../json-shape.js";
import { OUTCOMES, type JobResultReport } from "../protocol/slave-messages.js";
import { describeError } from "../errors.js";

/** Version of the record format; a record of another version is quarantined. */
export const STATE_RECORD_VERSION = 1;

/** A job this slave runs: what the master dispatched, and when it started here. */
export interface RunRecord {
  jobId: number;
  attempt: number;
  definition: string;
  method: string;
  params: JsonObject;
  maxRunTimeMs: number | null;
  /** When this slave started it, ms since the epoch. */
  startedAt: number;
  /** The abs-slave process that ran it (for the "slave restarted" message). */
  pid: number;
}

export const RUN_PREFIX = "run-";
export const RESULT_PREFIX = "result-";

/** `run-12-1.json` for job 12 attempt 1. */
export function runFileName(jobId: number, attempt: number): string {
  return `${RUN_PREFIX}${jobId}-${attempt}.json`;
}

export function resultFileName(jobId: number, attempt: number): string {
  return `${RESULT_PREFIX}${jobId}-${attempt}.json`;
}

/** What a file name in the state directory is: a record of one attempt, or nothing of ours. */
export function recordKindOf(
  name: string,
): { kind: "run" | "result"; jobId: number; attempt: number } | null {
  const m = /^(run|result)-([1-9]\d{0,14})-([1-9]\d{0,8})\.json$/.exec(name);
  if (m === null) return null;
  return { kind: m[1] as "run" | "result", jobId: Number(m[2]), attempt: Number(m[3]) };
}

export function serializeRunRecord(r: RunRecord): string {
  return JSON.stringify({ version: STATE_RECORD_VERSION, ...r }) + "\n";
}

export function serializeResultRecord(r: JobResultReport): string {
  return JSON.stringify({ version: STATE_RECORD_VERSION, ...r }) + "\n";
}

/** Throws ShapeError naming the field when `text` is not a run record of this version. */
export function parseRunRecord(text: string): RunRecord {
  const f = recordFields(text);
  return {
    jobId: f.int("jobId", { min: 1 }),
    attempt: f.int("attempt", { min: 1 }),
    definition: f.string("definition", { nonEmpty: true }),
    method: f.string("method", { nonEmpty: true }),
    params: f.jsonObject("params"),
    maxRunTimeMs: f.nullableInt("maxRunTimeMs", { min: 0 }),
    startedAt: f.int("startedAt", { min: 0 }),
    pid: f.int("pid", { min: 0 }),
  };
}

/** Throws ShapeError naming the field when `text` is not a result record of this version. */
export function parseResultRecord(text: string): JobResultReport {
  const f = recordFields(text);
  return {
    jobId: f.int("jobId", { min: 1 }),
    attempt: f.int("attempt", { min: 1 }),
    outcome: f.oneOf("outcome", OUTCOMES),
    message: f.string("message"),
    data: f.jsonObject("data"),
  };
}

function recordFields(text: string): Fields {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ShapeError("record", `not JSON (${describeError(err)})`);
  }
  const f = new Fields(value, "record");
  const version = f.int("version", { min: 1 });
  if (version !== STATE_RECORD_VERSION) {
    throw new ShapeError(
      "record.version",
      `version ${version}, but this abs-slave reads version ${STATE_RECORD_VERSION}`,
    );
  }
  return f;
}
