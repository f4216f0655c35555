// Reads and writes the text of one job file. Pure: text in, Job out (or a
// JobFileError naming the file, the field and what was wrong).

import { JobFileError } from "../errors.js";
import { Fields, ShapeError } from "../json-shape.js";
import { JOB_STATES, type Job, type JobLogEntry, type JobProgress, type JobResult } from "./job.js";

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
  "waitReason",
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
    const why =
      text.length === 0 ? "the file is empty" : `not valid JSON (${(err as Error).message})`;
    throw new JobFileError(`${file}: ${why}`, file);
  }
  let job: Job;
  try {
    job = readJob(new Fields(value));
  } catch (err) {
    if (err instanceof ShapeError) {
      throw new JobFileError(`${file}: ${err.field}: ${err.why}`, file, err.field);
    }
    throw err;
  }
  if (job.id !== expectedId) {
    throw new JobFileError(
      `${file}: holds job ${job.id}, but its name says job ${expectedId}`,
      file,
      "id",
    );
  }
  return job;
}

function readJob(f: Fields): Job {
  f.onlyKeys(JOB_KEYS);
  const t = f.object("timestamps");
  t.onlyKeys(["received", "dispatched", "started", "ended"]);
  return {
    id: f.int("id", { min: 1 }),
    definition: f.string("definition", { nonEmpty: true }),
    slave: f.string("slave", { nonEmpty: true }),
    method: f.string("method", { nonEmpty: true }),
    params: f.jsonObject("params"),
    state: f.oneOf("state", JOB_STATES),
    priority: f.int("priority"),
    attempt: f.int("attempt", { min: 1 }),
    timestamps: {
      received: t.int("received", { min: 0 }),
      dispatched: t.nullableInt("dispatched", { min: 0 }),
      started: t.nullableInt("started", { min: 0 }),
      ended: t.nullableInt("ended", { min: 0 }),
    },
    progress: readProgress(f.nullableObject("progress")),
    result: readResult(f.nullableObject("result")),
    waitReason: f.raw.waitReason === null ? null : f.string("waitReason"),
    log: f.objects("log", readLogEntry),
    serial: f.int("serial", { min: 0 }),
  };
}

function readProgress(f: Fields | null): JobProgress | null {
  if (f === null) return null;
  f.onlyKeys(["files", "bytes", "path"]);
  return {
    files: f.int("files", { min: 0 }),
    bytes: f.int("bytes", { min: 0 }),
    path: f.raw.path === null ? null : f.string("path"),
  };
}

function readResult(f: Fields | null): JobResult | null {
  if (f === null) return null;
  f.onlyKeys(["message", "data"]);
  return { message: f.string("message"), data: f.jsonObject("data") };
}

function readLogEntry(f: Fields): JobLogEntry {
  f.onlyKeys(["serial", "time", "level", "message"]);
  return {
    serial: f.int("serial", { min: 1 }),
    time: f.int("time", { min: 0 }),
    level: f.oneOf("level", LOG_LEVELS),
    message: f.string("message"),
  };
}
