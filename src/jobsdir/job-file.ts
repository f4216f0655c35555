// Reads and writes the text of one job file. Pure: text in, Job out (or a
// JobFileError naming the file, the field and what was wrong).

import { JobFileError, describeError } from "../errors.js";
import { Fields, ShapeError } from "../json-shape.js";
import { JOB_STATES, type Job } from "./job.js";

const LOG_LEVELS = ["info", "warning", "error"] as const;

const JOB_KEYS = [
  "id",
  "definition",
  "slave",
  "method",
  "params",
  "state",
  "priority",
  "attempt",
  "timestamps",
  "progress",
  "result",
  "policy",
  "log",
  "serial",
] as const;

/** The text stored for a job: compact JSON and a newline. */
export function serializeJob(job: Job): string {
  return JSON.stringify(job) + "\n";
}

/**
 * Parses the text of `file`, which by its name holds job `expectedId`.
 * Throws JobFileError for bad JSON, a field of the wrong type or an id that
 * does not match the file name (a file copied or renamed by hand).
 */
export function parseJobFile(text: string, file: string, expectedId: number): Job {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const why = text.length === 0 ? "the file is empty" : `not valid JSON (${describeError(err)})`;
    throw new JobFileError(`${file}: ${why}`, file);
  }
  const job = parseJobValue(value, file);
  if (job.id !== expectedId) {
    throw new JobFileError(
      `${file}: holds job ${job.id}, but its name says job ${expectedId}`,
      file,
      "id",
    );
  }
  return job;
}

// The checks below validate the parsed object in place and hand it back as
// it is: building a second copy of every job would double what the load
// allocates, for the same content (onlyKeys has ruled out anything extra).

/** A job already parsed from JSON (one embedded in the requests file, say); `where` names it in errors. */
export function parseJobValue(value: unknown, where: string): Job {
  try {
    return readJob(new Fields(value));
  } catch (err) {
    if (err instanceof ShapeError) {
      throw new JobFileError(`${where}: ${err.field}: ${err.why}`, where, err.field);
    }
    throw err;
  }
}

function readJob(f: Fields): Job {
  f.onlyKeys(JOB_KEYS);
  const t = f.object("timestamps");
  t.onlyKeys(["received", "dispatched", "started", "ended", "notBefore"]);
  f.int("id", { min: 1 });
  f.string("definition", { nonEmpty: true });
  f.string("slave", { nonEmpty: true });
  f.string("method", { nonEmpty: true });
  f.jsonObject("params");
  f.oneOf("state", JOB_STATES);
  f.int("priority");
  f.int("attempt", { min: 1 });
  t.int("received", { min: 0 });
  t.nullableInt("dispatched", { min: 0 });
  t.nullableInt("started", { min: 0 });
  t.nullableInt("ended", { min: 0 });
  t.nullableInt("notBefore", { min: 0 });
  checkProgress(f.nullableObject("progress"));
  checkResult(f.nullableObject("result"));
  checkPolicy(f.object("policy"));
  f.objects("log", checkLogEntry);
  f.int("serial", { min: 0 });
  return f.raw as unknown as Job;
}

function checkProgress(f: Fields | null): void {
  if (f === null) return;
  f.onlyKeys(["files", "bytes", "path"]);
  f.int("files", { min: 0 });
  f.int("bytes", { min: 0 });
  if (f.raw.path !== null) f.string("path");
}

function checkResult(f: Fields | null): void {
  if (f === null) return;
  f.onlyKeys(["message", "data"]);
  f.string("message");
  f.jsonObject("data");
}

function checkPolicy(f: Fields): void {
  f.onlyKeys(["maxRunTimeMs", "startBy", "retries", "retryBackoffMs", "retryBackoffMaxMs"]);
  f.nullableInt("maxRunTimeMs", { min: 0 });
  f.nullableInt("startBy", { min: 0 });
  f.int("retries", { min: 0 });
  f.int("retryBackoffMs", { min: 0 });
  f.int("retryBackoffMaxMs", { min: 0 });
}

function checkLogEntry(f: Fields): void {
  f.onlyKeys(["serial", "time", "level", "message"]);
  f.int("serial", { min: 1 });
  f.int("time", { min: 0 });
  f.oneOf("level", LOG_LEVELS);
  f.string("message");
}
