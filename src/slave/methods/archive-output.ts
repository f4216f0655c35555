// Where the tar writer's bytes go: the partial archive file, written by
// position from a writer thread leased for it, or a gzip stream into it. Either way
// the bytes are on disk (fsync) when `finish` returns, and `abort` removes
// the file.
//
// A buffer passed to `write` may be reused once the returned promise
// resolves; the tar writer keeps writes in flight while it fills the next
// buffer, so reading and hashing overlap the copy into the page cache (in
// the writer thread, see archive-writer-worker.ts) and, with gzip, the
// compression.

import { close, createWriteStream, fdatasync, fsync, openSync } from "node:fs";
import { promisify } from "node:util";
import { createGzip } from "node:zlib";
import {
  type ArchiveWriterThread,
  leaseWriterThread,
  returnWriterThread,
} from "./archive-writer-thread.js";
import { removeQuietly } from "./durable.js";

const fdatasyncP = promisify(fdatasync);
const fsyncP = promisify(fsync);
const closeP = promisify(close);

export interface ArchiveOutput {
  /**
   * Appends `buf`; resolves when it is taken (the buffer may then be
   * reused). A buffer from `borrowSharedBuffer` (archive-writer-thread.ts) is not
   * copied on the way. Several writes may be under way; they are made in order.
   */
  write(buf: Buffer): Promise<void>;
  /** Flushes, fsyncs and closes the file. */
  finish(): Promise<void>;
  /** Stops and removes the file; never throws. */
  abort(): Promise<void>;
}

/** Opens `file` (which must not exist) for an archive, gzip-compressed or not. */
export function openArchiveOutput(file: string, gzip: boolean): ArchiveOutput {
  return gzip ? new GzipOutput(file) : new FileOutput(file);
}

/**
 * Bytes written between two background fdatasyncs. Without them the kernel
 * starts writing the archive back only when the final fsync asks (or when
 * dirty pages pass a share of memory), and the backup then waits for all of
 * it at the end; syncing as it goes overlaps the disk with the reading.
 */
const SYNC_EVERY = 32 << 20;

/**
 * Plain tar: positioned writes on the file descriptor, made by a writer
 * thread leased for this archive; fsyncs from here (the thread pool), so the
 * background fdatasync runs beside the writes.
 */
class FileOutput implements ArchiveOutput {
  private readonly fd: number;
  /** Leased at the first write, given back when the writes have ended. */
  private writer: ArchiveWriterThread | null = null;
  private position = 0;
  private unsynced = 0;
  /** Settles (never rejects) when the writes under way have ended (the thread makes them in order). */
  private writesEnded: Promise<void> = Promise.resolve();
  /** The background fdatasync under way, if any; it never rejects (see `syncError`). */
  private syncing: Promise<void> | null = null;
  /** The first failure of a background fdatasync: the archive is then not durable. */
  private syncError: Error | null = null;
  /** Set by finish and abort: no more writes. */
  private ending = false;
  private closed = false;

  constructor(private readonly file: string) {
    this.fd = openSync(file, "wx", 0o600);
  }

  async write(buf: Buffer): Promise<void> {
    if (this.ending) throw new Error(`${this.file}: the archive is finished`);
    this.throwSyncError();
    this.writer ??= leaseWriterThread();
    const written = this.writer.write(this.fd, buf, this.position);
    this.position += buf.length;
    this.writesEnded = written.catch(() => undefined);
    await written;
    this.unsynced += buf.length;
    if (this.unsynced >= SYNC_EVERY && this.syncing === null) {
      this.unsynced = 0;
      this.syncing = fdatasyncP(this.fd).then(
        () => {
          this.syncing = null;
        },
        (err: unknown) => {
          this.syncError ??= err as Error;
          this.syncing = null;
        },
      );
    }
  }

  async finish(): Promise<void> {
    await this.endWrites();
    this.throwSyncError();
    await fsyncP(this.fd);
    this.closed = true;
    await closeP(this.fd);
  }

  async abort(): Promise<void> {
    await this.endWrites();
    if (!this.closed) {
      this.closed = true;
      await closeP(this.fd).catch(() => undefined);
    }
    await removeQuietly(this.file);
  }

  /**
   * Takes no more writes, and waits for those and the fdatasync under way
   * (they use the fd); the writer thread is then given back.
   */
  private async endWrites(): Promise<void> {
    this.ending = true;
    await this.writesEnded;
    await this.syncing;
    if (this.writer !== null) returnWriterThread(this.writer);
    this.writer = null;
  }

  private throwSyncError(): void {
    if (this.syncError !== null) throw this.syncError;
  }
}

/** Gzip: a zlib stream piped into a file stream that fsyncs before it closes. */
class GzipOutput implements ArchiveOutput {
  private readonly gzip = createGzip();
  private readonly out;
  private readonly failed: Promise<never>;
  private readonly closed: Promise<void>;

  constructor(private readonly file: string) {
    const fd = openSync(file, "wx", 0o600);
    // flush: fsync before close, so the rename after `finish` publishes durable bytes.
    this.out = createWriteStream(file, { fd, flush: true, highWaterMark: 1 << 20 });
    let fail: (e: Error) => void = () => undefined;
    this.failed = new Promise<never>((_, reject) => {
      fail = reject;
    });
    this.failed.catch(() => undefined);
    this.gzip.on("error", fail);
    this.out.on("error", fail);
    this.closed = new Promise<void>((resolve) => this.out.once("close", resolve));
    this.gzip.pipe(this.out);
  }

  async write(buf: Buffer): Promise<void> {
    // zlib calls back once it has compressed the whole chunk, and holds the
    // call back while its output waits for the file: the buffer is then free
    // and memory stays bounded.
    const taken = new Promise<void>((resolve, reject) =>
      this.gzip.write(buf, (err) => (err ? reject(err) : resolve())),
    );
    taken.catch(() => undefined);
    await Promise.race([taken, this.failed]);
  }

  async finish(): Promise<void> {
    this.gzip.end();
    await Promise.race([this.closed, this.failed]);
  }

  async abort(): Promise<void> {
    this.gzip.unpipe(this.out);
    this.gzip.destroy();
    this.out.destroy();
    await this.closed;
    await removeQuietly(this.file);
  }
}
