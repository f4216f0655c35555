// The requests file of a jobs directory (request-records.ts has its format):
// the records of the admin requests that changed something, appended as
// commits carry them and rewritten from time to time without what expired
// and without the job texts whose files are durable by then.

import path from "node:path";
import { JobsDirIoError, describeError } from "../errors.js";
import type { Logger } from "../log.js";
import type { FsOps } from "../storage/fs-ops.js";
import { commitFile } from "./durable-files.js";
import { REQUESTS_FILE } from "./layout.js";
import type {
  RequestLookup,
  RequestRecord,
  RequestRecords,
  RequestTag,
} from "./request-records.js";

/**
 * The file is rewritten (records expired, job texts dropped) once this much
 * was appended, or as much as it held after the last rewrite if that is
 * more: its size stays within twice what it must keep, plus this.
 */
export const REQUESTS_REWRITE_BYTES = 8 * 1024 * 1024;

export interface RequestFileOptions {
  dir: string;
  fs: FsOps;
  logger: Logger;
  clock: () => number;
  /** The records the load read. */
  records: RequestRecords;
  /** Whether the file was there at the load. */
  exists: boolean;
  /** Appended bytes after which the file is rewritten. Default REQUESTS_REWRITE_BYTES. */
  rewriteBytes?: number;
}

export class RequestFile {
  private readonly records: RequestRecords;
  private exists: boolean;
  private readonly rewriteBytes: number;
  private bytesSinceRewrite = 0;
  private bytesAtRewrite = 0;
  /** An append failed: the file may end in part of a line, which the next append must not extend. */
  private torn = false;
  /**
   * A job file of a recorded request failed to be written after its record
   * was: the file's copy of it is the only one until a restart writes it
   * again, so the file is not rewritten (which drops job texts) until then.
   */
  private holdsUnwrittenJobs = false;

  constructor(private readonly opts: RequestFileOptions) {
    this.records = opts.records;
    this.exists = opts.exists;
    this.rewriteBytes = opts.rewriteBytes ?? REQUESTS_REWRITE_BYTES;
  }

  lookup(tag: RequestTag): RequestLookup {
    return this.records.lookup(tag);
  }

  has(id: string): boolean {
    return this.records.has(id);
  }

  /** Adds records whose lines write() made durable. */
  add(records: readonly RequestRecord[]): void {
    for (const r of records) this.records.add(r);
  }

  /** See holdsUnwrittenJobs. */
  holdUnwrittenJobs(): void {
    this.holdsUnwrittenJobs = true;
  }

  /**
   * Appends `lines` to the requests file, durably; or, when it is due,
   * rewrites the file with every record kept (expired ones dropped, without
   * their jobs' texts, whose files are durable by now) and `lines` at the
   * end. Only ever called in the commit queue's publishing turn, so the
   * lines of one commit never interleave with another's.
   */
  async write(lines: readonly string[]): Promise<JobsDirIoError | null> {
    let text = lines.join("");
    const file = path.join(this.opts.dir, REQUESTS_FILE);
    const rewrite =
      !this.exists ||
      (!this.holdsUnwrittenJobs &&
        this.bytesSinceRewrite >= Math.max(this.rewriteBytes, this.bytesAtRewrite));
    try {
      if (rewrite) {
        const expired = this.records.expire(this.opts.clock());
        if (expired > 0) this.opts.logger.info(`forgot ${expired} admin requests older than a day`);
        const kept = this.records.toText();
        await commitFile(this.opts.fs, this.opts.dir, REQUESTS_FILE, kept + text);
        this.exists = true;
        this.torn = false;
        this.bytesAtRewrite = Buffer.byteLength(kept);
        this.bytesSinceRewrite = Buffer.byteLength(text);
      } else {
        // After a failed append the file may end in part of a line: a
        // newline ends it there, as a line load reports and skips.
        if (this.torn) text = "\n" + text;
        await this.opts.fs.appendSynced(file, text);
        this.torn = false;
        this.bytesSinceRewrite += Buffer.byteLength(text);
      }
      return null;
    } catch (err) {
      if (!rewrite) this.torn = true;
      const failure =
        err instanceof JobsDirIoError
          ? err
          : new JobsDirIoError(
              `cannot record the admin request in ${file}: ${describeError(err)}`,
              file,
              err,
            );
      this.opts.logger.error(failure.message);
      return failure;
    }
  }
}
