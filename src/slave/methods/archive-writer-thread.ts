// The thread plain archives are written by (archive-writer-worker.ts says
// why). One for the whole process, started at the first archive and kept:
// a thread per archive cost 20-30 ms to start, and the memory of each dead
// thread stayed with the process (10 MB more resident after every backup of
// the benchmark's tree). Writes are made in the order asked, several may be
// under way, and a buffer must not change until the write that passed it
// resolves. The thread does not keep the process alive when it is idle.
//
// Shared buffers are sent to the thread once, with a slot number, and it
// keeps them; so they come from a pool here and go back to it when an
// archive is done, rather than being made for each archive.

import { Worker } from "node:worker_threads";
import type { WriteReply, WriteRequest } from "./archive-writer-worker.js";

type Pending = { resolve: () => void; reject: (e: Error) => void };

/** Shared buffers not in use, by size; at most as many as were ever in use at once. */
const pool = new Map<number, Buffer[]>();

/** A buffer in memory shared with the writer thread (written without a copy), from the pool. */
export function borrowSharedBuffer(size: number): Buffer {
  return pool.get(size)?.pop() ?? Buffer.from(new SharedArrayBuffer(size));
}

/** Gives back a buffer from borrowSharedBuffer, once no write of it is under way. */
export function returnSharedBuffer(buf: Buffer): void {
  const free = pool.get(buf.length) ?? [];
  free.push(buf);
  pool.set(buf.length, free);
}

let thread: ArchiveWriterThread | null = null;

/** The process's writer thread, started if there is none (or the last one died). */
export function archiveWriterThread(): ArchiveWriterThread {
  if (thread === null || thread.isGone()) thread = new ArchiveWriterThread();
  return thread;
}

export class ArchiveWriterThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  /** The shared buffers the thread has been sent, and their slots. */
  private readonly slots = new Map<SharedArrayBuffer, number>();
  private nextId = 0;
  /** Why the thread takes no more writes, once it does not. */
  private gone: Error | null = null;

  constructor() {
    // It allocates little (its messages): a small young generation keeps the
    // slave's resident memory down.
    this.worker = new Worker(new URL("./archive-writer-worker.js", import.meta.url), {
      resourceLimits: { maxYoungGenerationSizeMb: 2 },
    });
    this.worker.unref();
    this.worker.on("message", (reply: WriteReply) => this.settle(reply));
    this.worker.on("error", (err) => this.fail(err));
    this.worker.once("exit", () => this.fail(new Error("the archive writer thread stopped")));
  }

  isGone(): boolean {
    return this.gone !== null;
  }

  /**
   * Writes all of `buf` at `position` of `fd`. A buffer that is not shared
   * memory is copied into one first.
   */
  write(fd: number, buf: Buffer, position: number): Promise<void> {
    if (this.gone !== null) return Promise.reject(this.gone);
    const id = ++this.nextId;
    const request: WriteRequest = { id, fd, ...this.where(buf), position };
    // Held while a write is under way: the answer must be waited for.
    if (this.pending.size === 0) this.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(request);
    });
  }

  /** Stops the thread; writes not yet answered fail. Never throws. */
  async stop(): Promise<void> {
    this.fail(new Error("the archive writer thread was stopped"));
    await this.worker.terminate();
  }

  /** Where `buf` is, for the thread: a shared buffer by its slot, any other copied into a one-off. */
  private where(buf: Buffer): Pick<WriteRequest, "slot" | "buffer" | "offset" | "length"> {
    if (!(buf.buffer instanceof SharedArrayBuffer)) {
      const copy = new SharedArrayBuffer(buf.length);
      buf.copy(Buffer.from(copy));
      return { slot: -1, buffer: copy, offset: 0, length: buf.length };
    }
    const shared = buf.buffer;
    let slot = this.slots.get(shared);
    const first = slot === undefined;
    if (slot === undefined) {
      slot = this.slots.size;
      this.slots.set(shared, slot);
    }
    return {
      slot,
      buffer: first ? shared : undefined,
      offset: buf.byteOffset,
      length: buf.length,
    };
  }

  private settle(reply: WriteReply): void {
    const p = this.pending.get(reply.id);
    if (p === undefined) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker.unref();
    if (reply.error === null) {
      p.resolve();
      return;
    }
    // As fs would have thrown it, so ENOSPC and the others read as usual.
    const err: NodeJS.ErrnoException = new Error(reply.error.message);
    if (reply.error.code !== null) err.code = reply.error.code;
    p.reject(err);
  }

  private fail(why: Error): void {
    this.gone ??= why;
    for (const p of this.pending.values()) p.reject(this.gone);
    this.pending.clear();
    this.worker.unref();
  }
}
