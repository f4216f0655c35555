// The fake master's disaster log: what the slaves reported while the real
// master was away, one JSON object per line, appended and fsynced before
// the fake master acknowledges a result (so an acknowledged result is on
// disk, as with the real master). `abs import-disaster-log` on the real
// master reads it back.
//
// Appends are serialized: lines that arrive while an fsync runs go out
// together with the next one, so a burst of reports costs few fsyncs.

import { type FileHandle, open } from "node:fs/promises";
import { AbsError, describeError } from "../errors.js";
import type { JsonObject } from "../json-shape.js";
import type { Outcome, Progress, RunningState } from "../protocol/slave-messages.js";

/** One report of a slave, as the fake master heard it. */
export interface DisasterRecord {
  /** When the fake master received it, ms since the epoch. */
  time: number;
  /** The slave's name, and its authenticated identity (Kerberos principal or name). */
  slave: string;
  identity: string;
  report: "running" | "started" | "progress" | "result" | "reject";
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
}

export class DisasterLog {
  private chain: Promise<void> = Promise.resolve();
  private waiting: string[] = [];
  private flushing: Promise<void> | null = null;

  private constructor(
    readonly file: string,
    private readonly handle: FileHandle,
  ) {}

  static async open(file: string): Promise<DisasterLog> {
    try {
      return new DisasterLog(file, await open(file, "a", 0o640));
    } catch (err) {
      throw new AbsError("CONFIG", `cannot open the disaster log ${file}: ${describeError(err)}`, {
        cause: err,
        context: { file },
      });
    }
  }

  /** Appends `records`; resolves once they are on disk (fsynced). */
  append(records: readonly DisasterRecord[]): Promise<void> {
    for (const r of records) this.waiting.push(JSON.stringify(r) + "\n");
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
