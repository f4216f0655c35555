// The thread a plain archive is written by (archive-writer-worker.ts says
// why): one per archive, started when the archive is opened and stopped when
// it is finished or abandoned. Writes are made in the order they are asked
// for, several may be under way, and a buffer must not change until the
// write that passed it resolves.

import { Worker } from "node:worker_threads";
import type { WriteReply, WriteRequest, WriterData } from "./archive-writer-worker.js";

/** A buffer in memory shared with the writer thread, so it is written without a copy. */
export function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}

type Pending = { resolve: () => void; reject: (e: Error) => void };

export class ArchiveWriterThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  /** The shared buffers the thread has been sent, and their slots. */
  private readonly slots = new Map<SharedArrayBuffer, number>();
  private nextId = 0;
  /** Why the thread takes no more writes, once it does not. */
  private gone: Error | null = null;

  /** Starts a thread writing to `fd`. */
  constructor(fd: number) {
    const data: WriterData = { fd };
    this.worker = new Worker(new URL("./archive-writer-worker.js", import.meta.url), {
      workerData: data,
    });
    this.worker.on("message", (reply: WriteReply) => this.settle(reply));
    this.worker.on("error", (err) => this.fail(err));
    this.worker.once("exit", () => this.fail(new Error("the archive writer thread stopped")));
  }

  /**
   * Writes all of `buf` at `position`. A buffer that is not shared memory
   * is copied into one first.
   */
  write(buf: Buffer, position: number): Promise<void> {
    if (this.gone !== null) return Promise.reject(this.gone);
    const id = ++this.nextId;
    const request: WriteRequest = { id, ...this.where(buf), position };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(request);
    });
  }

  /** Where `buf` is, for the thread: a shared buffer by its slot, any other copied into a one-off. */
  private where(buf: Buffer): Pick<WriteRequest, "slot" | "buffer" | "offset" | "length"> {
    if (!(buf.buffer instanceof SharedArrayBuffer)) {
      const copy = sharedBuffer(buf.length);
      buf.copy(copy);
      return { slot: -1, buffer: copy.buffer as SharedArrayBuffer, offset: 0, length: buf.length };
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

  /** Stops the thread; writes not yet answered fail with `why`. Never throws. */
  async stop(why: string): Promise<void> {
    this.fail(new Error(why));
    await this.worker.terminate();
  }

  private settle(reply: WriteReply): void {
    const p = this.pending.get(reply.id);
    if (p === undefined) return;
    this.pending.delete(reply.id);
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
  }
}
