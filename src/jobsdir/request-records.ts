// What admin requests that changed something did, by the id their client
// chose (DESIGN.md, "Admin requests are safe to retry"). A client whose
// connection dropped before the answer sends the request again with the same
// id; the master then answers what it answered the first time and changes
// nothing. Pure: the jobs directory keeps these records in its `requests`
// file (job-store.ts); the fake master keeps them in memory only.
//
// The file holds one JSON line per request:
//
//   {"id":"…","method":"run","digest":"<sha256 hex>","at":<ms>,"reply":<result>,"jobs":[<job>,…]}
//
// `jobs`, when there, are the versions of the jobs the request created or
// changed, written in the same line as the record: the line is the request's
// commit point, and at startup a job missing from the directory, or older
// there than in the line, is written again from it. Lines are rewritten
// without `jobs` once their job files are known durable.

import { createHash } from "node:crypto";
import { describeError } from "../errors.js";
import { Fields, type JsonObject, type JsonValue, ShapeError } from "../json-shape.js";

/** Records are kept at least this long... */
export const RETAIN_MS = 24 * 3600 * 1000;
/** ...and at least this many of the newest are kept, whichever keeps more. */
export const RETAIN_COUNT = 100_000;

/** A request id: what `abs` makes (a UUID) and what a script may choose. */
export const REQUEST_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{7,63}$/;

/** A changing request as the master received it. */
export interface RequestTag {
  id: string;
  method: string;
  /** sha256 of the method and its arguments (requestDigest): a reused id with other arguments differs here. */
  digest: string;
}

export interface RequestRecord extends RequestTag {
  /** When it was done, ms since the epoch. */
  at: number;
  /** The result the first answer carried. */
  reply: JsonValue;
}

/** The digest of a request: its method and its arguments, keys sorted, so key order does not matter. */
export function requestDigest(method: string, args: JsonObject): string {
  return createHash("sha256")
    .update(canonicalJson([method, args]))
    .digest("hex");
}

function canonicalJson(value: JsonValue): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
}

/** What a request id, looked up, says about the request carrying it. */
export type RequestLookup =
  | { kind: "new" }
  | { kind: "repeat"; record: RequestRecord }
  | { kind: "reused"; record: RequestRecord };

/** The records, newest last, with the retention rule above. */
export class RequestRecords {
  /** By id, in the order they were added (which is the order of `at`, give or take a clock step). */
  private readonly byId = new Map<string, RequestRecord>();

  get size(): number {
    return this.byId.size;
  }

  /** A repeat (same id, same digest) answers the first reply; the same id with another digest is a reuse. */
  lookup(tag: RequestTag): RequestLookup {
    const record = this.byId.get(tag.id);
    if (record === undefined) return { kind: "new" };
    return record.digest === tag.digest && record.method === tag.method
      ? { kind: "repeat", record }
      : { kind: "reused", record };
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** Adds `record`; an id already recorded keeps its first record. */
  add(record: RequestRecord): void {
    if (!this.byId.has(record.id)) this.byId.set(record.id, record);
  }

  /**
   * Forgets the records both older than RETAIN_MS and beyond the newest
   * RETAIN_COUNT. Answers how many were forgotten.
   */
  expire(now: number, retainMs = RETAIN_MS, retainCount = RETAIN_COUNT): number {
    let forgotten = 0;
    for (const [id, record] of this.byId) {
      if (this.byId.size <= retainCount || record.at >= now - retainMs) break;
      this.byId.delete(id);
      forgotten += 1;
    }
    return forgotten;
  }

  /** Every record, oldest first, one line each (without jobs): the file's text after a rewrite. */
  toText(): string {
    let text = "";
    for (const record of this.byId.values()) text += requestLine(record);
    return text;
  }
}

/**
 * One line of the file. `jobs` are job files' texts (compact JSON, a newline
 * at the end, as serializeJob writes them), embedded as they are.
 */
export function requestLine(record: RequestRecord, jobs: readonly string[] = []): string {
  const head = JSON.stringify({
    id: record.id,
    method: record.method,
    digest: record.digest,
    at: record.at,
    reply: record.reply,
  });
  if (jobs.length === 0) return head + "\n";
  return `${head.slice(0, -1)},"jobs":[${jobs.map((j) => j.trimEnd()).join(",")}]}\n`;
}

/** A line read back: the record, and the jobs it carries (not yet checked: job-file.ts does that). */
export interface ParsedRequestLine {
  record: RequestRecord;
  jobs: unknown[];
}

/** What reading the file found. */
export interface ParsedRequests {
  lines: ParsedRequestLine[];
  /** Lines that could not be used, by 1-based line number, with why. */
  bad: { line: number; reason: string }[];
  /** The text after the last newline, when there is some: an append a crash cut short. */
  torn: string | null;
}

/**
 * Reads the file's text. A bad line is reported and skipped, never fatal:
 * what it held is one request a retry would then do again. Text after the
 * last newline is an append that never finished (its request was never
 * answered), so it is not a record.
 */
export function parseRequests(text: string): ParsedRequests {
  const end = text.lastIndexOf("\n");
  const torn = end === text.length - 1 ? null : text.slice(end + 1);
  const body = end < 0 ? "" : text.slice(0, end);
  const out: ParsedRequests = { lines: [], bad: [], torn };
  if (body === "") return out;
  body.split("\n").forEach((line, i) => {
    try {
      out.lines.push(parseRequestLine(line));
    } catch (err) {
      const reason =
        err instanceof ShapeError
          ? `${err.field}: ${err.why}`
          : `not valid JSON (${describeError(err)})`;
      out.bad.push({ line: i + 1, reason });
    }
  });
  return out;
}

function parseRequestLine(line: string): ParsedRequestLine {
  const f = new Fields(JSON.parse(line) as unknown, "request");
  const id = f.string("id");
  if (!REQUEST_ID_RE.test(id)) throw new ShapeError("request.id", "is not a request id");
  const record: RequestRecord = {
    id,
    method: f.string("method"),
    digest: f.string("digest"),
    at: f.int("at", { min: 0 }),
    reply: (f.raw["reply"] ?? null) as JsonValue,
  };
  return { record, jobs: f.has("jobs") ? f.array("jobs") : [] };
}
