// The tar stream of a backup: each entry's header (node-tar's Header, with
// a Pax extended header before it when a field does not fit ustar: long
// paths, big sizes...), a file's bytes, zero padding to 512, and two zero
// blocks at the end; a standard archive that GNU tar lists and extracts.
//
// Why not node-tar's Pack: for a tree of many small files its per-entry
// stream plumbing cost several times GNU tar's whole run. Here headers and
// file bytes go into large buffers, file bytes read straight into them (no
// copy), and a full buffer is handed to the output while the next fills:
// reading and hashing overlap the writes (see archive-output.ts). Memory:
// BUFFERS buffers, whatever the tree.

import { createHash } from "node:crypto";
import { Header, Pax } from "tar";
import type { ManifestEntry } from "../manifest.js";
import type { ArchiveOutput } from "./archive-output.js";
import { borrowSharedBuffer, returnSharedBuffer } from "./archive-writer-thread.js";
import { canceledError } from "./method-context.js";

/**
 * Bytes per buffer: the size of a write, and of a big file's read. A
 * multiple of 512, so entries start aligned in a buffer.
 */
const BATCH = 1 << 20;
/**
 * Buffers: one filling while the others are written. With two, this thread
 * waited after each buffer for the writer thread's answer to come back.
 */
const BUFFERS = 4;
const BLOCK = 512;

/**
 * Reads a file's bytes from `position` into `buf` (at most its length);
 * returns how many were read, 0 at the end of the file.
 */
export type ReadAt = (buf: Buffer, position: number) => number;

export class TarWriter {
  /**
   * The memory of the buffers, borrowed from a pool and given back at the
   * end: shared with the writer thread, which takes the buffers uncopied, and
   * aligned for direct writes (archive-writer-thread.ts says why it is one
   * piece).
   */
  private readonly memory = borrowSharedBuffer(BUFFERS * BATCH);
  private buf = this.memory.subarray(0, BATCH);
  /** Bytes of `buf` filled. */
  private fill = 0;
  /** Buffers not in use, to fill once `buf` is full. */
  private readonly free = Array.from({ length: BUFFERS - 1 }, (_, i) =>
    this.memory.subarray((i + 1) * BATCH, (i + 2) * BATCH),
  );
  /** Full buffers being written, oldest first; each is free again once its write ends. */
  private readonly writing: { buf: Buffer; written: Promise<void> }[] = [];
  /** Set once the memory is back in the pool. */
  private returned = false;
  private readonly headerBlock = Buffer.alloc(BLOCK);

  constructor(
    private readonly out: ArchiveOutput,
    private readonly signal: AbortSignal,
  ) {}

  /** Throws CANCELED once the job's signal is aborted. */
  check(): void {
    if (this.signal.aborted) throw canceledError(this.signal, "tar backup");
  }

  /** A directory or symlink: a header only. */
  async addHeaderOnly(e: ManifestEntry, uid: number, gid: number): Promise<void> {
    await this.header(e, 0, uid, gid);
  }

  /**
   * A file's header, then exactly `e.size` bytes from `read`, hashed as they
   * go in. A file that shrank since its fstat is padded with zeros so the
   * archive stays well formed (`short`); the hash is of what the archive holds.
   */
  async addFile(
    e: ManifestEntry,
    uid: number,
    gid: number,
    read: ReadAt,
    onBytes: (n: number) => void,
  ): Promise<{ sha256: string; short: boolean }> {
    await this.header(e, e.size, uid, gid);
    const hash = createHash("sha256");
    let done = 0;
    let short = false;
    while (done < e.size) {
      if (this.fill === BATCH) await this.flush();
      const region = this.buf.subarray(
        this.fill,
        this.fill + Math.min(e.size - done, BATCH - this.fill),
      );
      let got = short ? 0 : read(region, done);
      if (got === 0) {
        short = true;
        got = region.length;
        region.fill(0);
      }
      hash.update(region.subarray(0, got));
      this.fill += got;
      done += got;
      onBytes(got);
    }
    this.zeros((BLOCK - (this.fill % BLOCK)) % BLOCK);
    return { sha256: hash.digest("hex"), short };
  }

  /** The end of the archive, then everything flushed and fsynced. */
  async finish(): Promise<void> {
    this.check();
    await this.append(Buffer.alloc(2 * BLOCK));
    if (this.fill > 0) await this.flush();
    while (this.writing.length > 0) this.free.push(await this.oldestWritten());
    this.returnBuffers();
    await this.out.finish();
  }

  /** Stops writing and removes the partial archive; never throws. */
  async abort(): Promise<void> {
    // The writes under way use the file and the buffers: let them end first.
    await Promise.all(this.writing.map((w) => w.written.catch(() => undefined)));
    this.returnBuffers();
    await this.out.abort();
  }

  /** The memory back to the pool (once), when no write of it is under way. */
  private returnBuffers(): void {
    if (this.returned) return;
    this.returned = true;
    returnSharedBuffer(this.memory);
  }

  private async header(e: ManifestEntry, size: number, uid: number, gid: number): Promise<void> {
    this.check();
    const fields = {
      path: e.type === "directory" ? e.path + "/" : e.path,
      mode: e.mode,
      size,
      mtime: new Date(e.mtime),
      uid,
      gid,
      linkpath: e.target ?? undefined,
    };
    const type = e.type === "file" ? "File" : e.type === "directory" ? "Directory" : "SymbolicLink";
    // Encoded into one block used for every header (not one allocated for
    // each: 10,000 files made 20 MB of garbage, and the heap grew for it).
    // encode() says whether ustar fell short; a Pax header then goes first.
    this.headerBlock.fill(0);
    if (new Header({ ...fields, type }).encode(this.headerBlock, 0)) {
      await this.append(new Pax(fields).encode());
    }
    await this.append(this.headerBlock);
  }

  private async append(bytes: Buffer): Promise<void> {
    let off = 0;
    while (off < bytes.length) {
      if (this.fill === BATCH) await this.flush();
      const n = bytes.copy(this.buf, this.fill, off);
      this.fill += n;
      off += n;
    }
  }

  /** Zero padding after a file; it never crosses a buffer (entries start aligned). */
  private zeros(n: number): void {
    this.buf.fill(0, this.fill, this.fill + n);
    this.fill += n;
  }

  /**
   * Hands the full buffer to the output and takes a free one, waiting for
   * the oldest write when none is free.
   */
  private async flush(): Promise<void> {
    // The file reads between two flushes are synchronous: let timers and
    // sockets run here (heartbeats, a cancel from the master, progress).
    // Waiting for a write does not always: its answer from the writer
    // thread may be waiting already, and is then taken without a turn of
    // the event loop.
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.check();
    const written = this.out.write(this.buf.subarray(0, this.fill));
    // Awaited when the buffer is wanted again, in finish or in abort.
    written.catch(() => undefined);
    this.writing.push({ buf: this.buf, written });
    this.fill = 0;
    this.buf = this.free.pop() ?? (await this.oldestWritten());
  }

  /** The oldest buffer being written, once it is; throws what stopped the write. */
  private async oldestWritten(): Promise<Buffer> {
    const oldest = this.writing.shift();
    if (oldest === undefined) throw new Error("tar writer: no buffer being written");
    try {
      await oldest.written;
    } catch (err) {
      // The write has ended all the same: the buffer is free, and goes back to the pool.
      this.free.push(oldest.buf);
      throw err;
    }
    return oldest.buf;
  }
}
