// The fake master's disaster log: what the slaves reported while the real
// master was away, one JSON object per line, appended and fsynced before
// the fake master acknowledges a result (so an acknowledged result is on
// disk, as with the real master). `abs import-disaster-log` on the real
// master reads it back.
//
// Appends are serialized: lines that arrive while an fsync runs go out
// together with the next one, so a burst of reports costs few fsyncs.
//
// Every line carries a MAC of its record under a key derived from the realm
// key (auth/disaster-log-key.ts), so the import can tell a record the fake
// master wrote from one written by hand.
//
// Reading it back (readDisasterLog) streams the file, so a log of a long
// disaster with many progress lines is never held whole in memory. A line
// that is not a record, or whose MAC does not verify, is refused with its
// line number and the reason, and reading goes on; an unfinished last line
// is skipped: the fake master stopped while writing it, so it was never
// fsynced nor acknowledged, and the slave still holds what it said.

import { constants, type FileHandle, open } from "node:fs/promises";
import { type DisasterLogKey, openRecord, sealRecord } from "../auth/disaster-log-key.js";
import { AbsError, describeError } from "../errors.js";
import { Fields, type JsonObject, ShapeError } from "../json-shape.js";
import {
  MAX_IDENTITY_LENGTH,
  MAX_NAME_LENGTH,
  MAX_TEXT_LENGTH,
} from "../protocol/message-fields.js";
import {
  OUTCOMES,
  type Outcome,
  type Progress,
  RUNNING_STATES,
  type RunningState,
  readProgress,
} from "../protocol/slave-messages.js";
import { trustProblem } from "../storage/trusted-file.js";

/**
 * One report of a slave, as the fake master heard it; or ("dispatched") a
 * run an admin started by hand on the fake master, as it was sent.
 */
export interface DisasterRecord {
  /** When the fake master received it, ms since the epoch. */
  time: number;
  /** The slave's name, and its authenticated identity (Kerberos principal or name). */
  slave: string;
  identity: string;
  report: "dispatched" | "running" | "started" | "progress" | "result" | "reject";
  jobId: number;
  attempt: number;
  /** running: the state the slave reported. */
  state?: RunningState;
  progress?: Progress | null;
  /** result: the outcome, its message and the method's data. */
  outcome?: Outcome;
  message?: string;
  data?: JsonObject;
  /** reject: why the slave refused. */
  reason?: string;
  /** dispatched (an admin's `abs run` on the fake master): what was sent. */
  definition?: string;
  method?: string;
  params?: JsonObject;
}

/** The latest time a Date can hold (ms since the epoch): times must format. */
const MAX_TIME = 8.64e15;
/**
 * The longest line read: a report is one slave-link message, whose frames
 * are far smaller; anything longer is not a disaster log.
 */
export const MAX_LINE_LENGTH = 4 * 1024 * 1024;

const REPORTS = ["dispatched", "running", "started", "progress", "result", "reject"] as const;

/** Reads one line's JSON as a record; throws ShapeError naming the bad field. */
export function parseDisasterRecord(value: unknown): DisasterRecord {
  const f = new Fields(value);
  const report = f.oneOf("report", REPORTS);
  const record: DisasterRecord = {
    time: f.int("time", { min: 0, max: MAX_TIME }),
    slave: f.string("slave", { nonEmpty: true, maxLength: MAX_NAME_LENGTH }),
    identity: f.string("identity", { nonEmpty: true, maxLength: MAX_IDENTITY_LENGTH }),
    report,
    jobId: f.int("jobId", { min: 1 }),
    attempt: f.int("attempt", { min: 1 }),
  };
  switch (report) {
    case "running": {
      const p = f.has("progress") ? f.nullableObject("progress") : null;
      return {
        ...record,
        state: f.oneOf("state", RUNNING_STATES),
        progress: p === null ? null : readProgress(p),
      };
    }
    case "progress":
      return { ...record, progress: readProgress(f.object("progress")) };
    case "result":
      return {
        ...record,
        outcome: f.oneOf("outcome", OUTCOMES),
        message: f.string("message", { maxLength: MAX_TEXT_LENGTH }),
        data: f.has("data") ? f.jsonObject("data") : {},
      };
    case "reject":
      return { ...record, reason: f.string("reason", { maxLength: MAX_TEXT_LENGTH }) };
    case "dispatched":
      return {
        ...record,
        definition: f.string("definition", { nonEmpty: true, maxLength: MAX_NAME_LENGTH }),
        method: f.string("method", { nonEmpty: true, maxLength: MAX_NAME_LENGTH }),
        params: f.jsonObject("params"),
      };
    case "started":
      return record;
  }
}

/** A line of the log the import does not act on, and why. */
export interface RefusedLine {
  line: number;
  reason: string;
}

/** What reading a disaster log found besides its records. */
export interface DisasterLogReading {
  /** Lines read (the unfinished last one included). */
  lines: number;
  /** The number of an unfinished last line that was skipped, or null. */
  unfinishedLine: number | null;
  /** Lines refused (at most MAX_REFUSED_KEPT of them, in order), and how many in all. */
  refused: RefusedLine[];
  refusedCount: number;
}

/**
 * At most this many refused lines are kept to be named (the count says how
 * many in all): a file that is not a disaster log at all has one per line.
 */
export const MAX_REFUSED_KEPT = 100;

/**
 * Streams the disaster log `file`, calling `onRecord` with each record
 * whose MAC verifies under `key`, and its line number, in order; onRecord
 * may refuse it by returning why. Lines that are not records, have no MAC
 * or one that does not verify, or that onRecord refuses, are returned as
 * refused (each with its line and reason), and reading goes on: each record
 * is authenticated on its own. Throws BAD_ARGUMENT, and nothing may be acted
 * on, if the file itself cannot be read or trusted: not a regular file,
 * owned by anyone but root or this master's user, or writable by group or
 * others (storage/trusted-file.ts).
 */
export async function readDisasterLog(
  file: string,
  key: DisasterLogKey,
  onRecord: (record: DisasterRecord, line: number) => string | null,
): Promise<DisasterLogReading> {
  const refused: RefusedLine[] = [];
  let refusedCount = 0;
  let lineNo = 0;
  let rest = "";
  const take = (text: string): void => {
    lineNo += 1;
    if (text.trim() === "") return; // a blank line says nothing
    const opened = openRecord(key, text);
    if ("why" in opened) return refuse(opened.why);
    let value: unknown;
    try {
      value = JSON.parse(opened.recordJson);
    } catch {
      // Not the parser's message: it quotes the line, and the file may be
      // any file the master can read.
      return refuse("not JSON");
    }
    let record: DisasterRecord;
    try {
      record = parseDisasterRecord(value);
    } catch (err) {
      return refuse(err instanceof ShapeError ? err.message : describeError(err));
    }
    const why = onRecord(record, lineNo);
    if (why !== null) refuse(why);
  };
  const refuse = (reason: string): void => {
    refusedCount += 1;
    if (refused.length < MAX_REFUSED_KEPT) refused.push({ line: lineNo, reason });
  };
  const cannot = (why: string): AbsError =>
    new AbsError(
      "BAD_ARGUMENT",
      `cannot read the disaster log ${file}: ${why}; nothing was imported`,
      {
        context: { file, field: "file" },
      },
    );
  let handle: FileHandle;
  try {
    // Non-blocking: opening a FIFO to read would wait for a writer.
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw cannot(describeError(err));
  }
  try {
    const info = await handle.stat();
    // A FIFO or a device would never end (or never start).
    if (!info.isFile()) throw cannot("not a regular file");
    // Checked on the descriptor read from: whoever could write the file
    // could have removed lines, and it says nothing good of the copy.
    const distrust = trustProblem(file, info);
    if (distrust !== null) throw cannot(distrust);
    for await (const chunk of handle.createReadStream({ encoding: "utf8", autoClose: false })) {
      const lines = (chunk as string).split("\n");
      const last = lines.pop() ?? "";
      if (lines.length > 0) {
        take(rest + (lines[0] ?? ""));
        for (let i = 1; i < lines.length; i++) take(lines[i] ?? "");
        rest = last;
      } else {
        rest += last;
      }
      if (rest.length > MAX_LINE_LENGTH) {
        throw cannot(`line ${lineNo + 1} is longer than ${MAX_LINE_LENGTH} characters`);
      }
    }
  } catch (err) {
    if (err instanceof AbsError) throw err;
    throw cannot(describeError(err));
  } finally {
    await handle.close();
  }
  const unfinishedLine = rest === "" ? null : lineNo + 1;
  return { lines: unfinishedLine ?? lineNo, unfinishedLine, refused, refusedCount };
}

export class DisasterLog {
  private chain: Promise<void> = Promise.resolve();
  private waiting: string[] = [];
  private flushing: Promise<void> | null = null;

  private constructor(
    readonly file: string,
    private readonly handle: FileHandle,
    private readonly key: DisasterLogKey,
  ) {}

  /** Opens `file` to append records sealed with `key` (auth/disaster-log-key.ts). */
  static async open(file: string, key: DisasterLogKey): Promise<DisasterLog> {
    try {
      return new DisasterLog(file, await open(file, "a", 0o640), key);
    } catch (err) {
      throw new AbsError("FILE_IO", `cannot open the disaster log ${file}: ${describeError(err)}`, {
        cause: err,
        context: { file },
      });
    }
  }

  /** Appends `records`; resolves once they are on disk (fsynced). */
  append(records: readonly DisasterRecord[]): Promise<void> {
    for (const r of records) this.waiting.push(sealRecord(this.key, JSON.stringify(r)) + "\n");
    // One flush at a time; records arriving meanwhile join the next one.
    this.flushing ??= this.chain.then(() => this.flush());
    return this.flushing;
  }

  private async flush(): Promise<void> {
    this.flushing = null;
    const lines = this.waiting.join("");
    this.waiting = [];
    const done = (async () => {
      await this.handle.write(lines);
      await this.handle.datasync();
    })();
    this.chain = done.catch(() => undefined);
    try {
      await done;
    } catch (err) {
      throw new AbsError(
        "STATE_DIR_IO",
        `cannot write the disaster log ${this.file}: ${describeError(err)}`,
        {
          cause: err,
          context: { file: this.file },
        },
      );
    }
  }

  async close(): Promise<void> {
    await this.chain;
    await this.handle.close();
  }
}
