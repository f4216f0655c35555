// The archive of a jobs directory: finished jobs moved out of the way into
// archive/<id/10000>/ (layout.ts), as in Ganeti's job queue, and read back
// from there. Which jobs to move, and when, is the store's decision.

import path from "node:path";
import { AbsError, JobNotFoundError, JobsDirIoError, describeError } from "../errors.js";
import { type FsOps, hasCode } from "../storage/fs-ops.js";
import type { Job } from "./job.js";
import { parseJobFile } from "./job-file.js";
import { ARCHIVE_DIR, archiveBucket, jobFileName } from "./layout.js";

export class JobArchive {
  /** Buckets made (and made durable) by this process. */
  private readonly knownBuckets = new Set<string>();

  constructor(
    private readonly dir: string,
    private readonly fs: FsOps,
  ) {}

  /** Reads archived job `id`; JobNotFoundError when it is not there. */
  async read(id: number): Promise<Job> {
    const file = path.join(this.dir, archiveBucket(id), jobFileName(id));
    let text: string;
    try {
      text = await this.fs.readFile(file);
    } catch (err) {
      if (hasCode(err, "ENOENT")) throw new JobNotFoundError(id);
      throw new JobsDirIoError(`cannot read ${file}: ${describeError(err)}`, file, err);
    }
    return parseJobFile(text, file, id);
  }

  /** Moves job `id`'s file into its bucket, durably. */
  async move(id: number): Promise<void> {
    const bucket = archiveBucket(id);
    const bucketDir = path.join(this.dir, bucket);
    const from = path.join(this.dir, jobFileName(id));
    const to = path.join(bucketDir, jobFileName(id));
    try {
      if (!this.knownBuckets.has(bucket)) {
        await this.fs.mkdir(bucketDir);
        await this.fs.fsyncDir(path.join(this.dir, ARCHIVE_DIR));
        await this.fs.fsyncDir(this.dir);
        this.knownBuckets.add(bucket);
      }
      await this.fs.rename(from, to);
      // rename(2) is atomic, so after a crash the job is in one place or the
      // other, never lost; the two fsyncs make the move itself durable.
      await this.fs.fsyncDir(bucketDir);
      await this.fs.fsyncDir(this.dir);
    } catch (err) {
      if (err instanceof AbsError) throw err;
      throw new JobsDirIoError(`cannot archive job ${id}: ${describeError(err)}`, from, err);
    }
  }
}
