// The threads plain archives are written by (archive-writer-worker.ts says
// why). An archive leases one for itself alone, so a destination that hangs
// (a hard-mounted NFS server gone, a dying USB disk) holds up no other
// archive's writes, and gives it back when done; a thread is kept for the
// next archive rather than stopped: starting one cost 20-30 ms, and the
// memory of each dead thread stayed with the process (10 MB more resident
// after every backup of the benchmark's tree). So there are as many threads
// as archives were ever written at once. Writes are made in the order
// asked, several may be under way, and a buffer must not change until the
// write that passed it resolves. A thread does not keep the process alive
// when it is idle.
//
// Shared buffers are sent to a thread once, with a slot number, and it keeps
// them; so they come from a pool here and go back to it when an archive is
// done, rather than being made for each archive. They start on a page
// boundary, as the archive's direct writes need (archive-output.ts).

import { Worker } from "node:worker_threads";
import type { WriteReply, WriteRequest } from "./archive-writer-worker.js";

type Pending = { resolve: () => void; reject: (e: Error) => void };

/** Shared buffers not in use, by size; at most as many as were ever in use at once. */
const pool = new Map<number, Buffer[]>();

/**
 * A buffer in memory shared with the writer thread (written without a
 * copy), from the pool. A size that is a multiple of 64 KiB starts on a
 * page boundary, where WebAssembly is available (alignedSharedMemory).
 */
export function borrowSharedBuffer(size: number): Buffer {
  const free = pool.get(size)?.pop();
  if (free !== undefined) return free;
  const aligned = size % WASM_PAGE === 0 ? alignedSharedMemory(size) : null;
  return Buffer.from(aligned ?? new SharedArrayBuffer(size));
}

/** Gives back a buffer from borrowSharedBuffer, once no write of it is under way. */
export function returnSharedBuffer(buf: Buffer): void {
  const free = pool.get(buf.length) ?? [];
  free.push(buf);
  pool.set(buf.length, free);
}

/** The global `WebAssembly`, as far as it is used here (lib ES2023 does not declare it). */
interface WasmGlobal {
  Memory: new (size: { initial: number; maximum: number; shared: true }) => {
    buffer: SharedArrayBuffer;
  };
}

const WASM_PAGE = 64 << 10;

/**
 * `size` bytes (a multiple of 64 KiB) of shared memory that starts on a page
 * boundary, or null. A SharedArrayBuffer is malloc'd, 16 bytes past a page,
 * and direct I/O refuses it (EINVAL); a WebAssembly memory is mapped at a
 * page, the one aligned allocation Node offers. V8 reserves about 10 GB of
 * address space around each (guard pages: no memory, but the process's
 * VSZ shows them): an archive's buffers are one allocation (tar-writer.ts),
 * kept in the pool above for the next archive. Null where WebAssembly is not available (node --jitless) or
 * the reservation is refused (a ulimit -v): the buffer is then not aligned,
 * and the archive is written through the page cache.
 */
function alignedSharedMemory(size: number): SharedArrayBuffer | null {
  const wasm = (globalThis as { WebAssembly?: WasmGlobal }).WebAssembly;
  if (wasm === undefined) return null;
  const pages = size / WASM_PAGE;
  try {
    return new wasm.Memory({ initial: pages, maximum: pages, shared: true }).buffer;
  } catch {
    return null;
  }
}

/** Threads no archive is using. */
const idle: ArchiveWriterThread[] = [];

/** A writer thread for one archive, for it alone until given back: an idle one, or a new one. */
export function leaseWriterThread(): ArchiveWriterThread {
  for (let t = idle.pop(); t !== undefined; t = idle.pop()) {
    if (!t.isGone()) return t;
  }
  return new ArchiveWriterThread();
}

/** Gives back a thread from leaseWriterThread, once no write of the archive is under way. */
export function returnWriterThread(t: ArchiveWriterThread): void {
  if (!t.isGone() && !idle.includes(t)) idle.push(t);
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
    this.worker.on("message", (reply: WriteReply) => this.settle(reply));
    this.worker.on("error", (err) => this.fail(err));
    this.worker.once("exit", () => this.fail(new Error("the archive writer thread stopped")));
    // After the listeners: adding a 'message' listener holds the process again.
    this.worker.unref();
  }

  isGone(): boolean {
    return this.gone !== null;
  }

  /**
   * Writes all of `buf` at `position` of `fd`; `direct` says that `fd` was
   * opened with O_DIRECT (the bytes then go in one call). A buffer that is
   * not shared memory is copied into one first.
   */
  write(fd: number, buf: Buffer, position: number, direct = false): Promise<void> {
    if (this.gone !== null) return Promise.reject(this.gone);
    const id = ++this.nextId;
    const request: WriteRequest = { id, fd, direct, ...this.where(buf), position };
    // Held while a write is under way: the answer must be waited for.
    if (this.pending.size === 0) this.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(request);
    });
  }

  /**
   * Stops the thread; writes not yet answered fail, once it has stopped (so
   * none is still being made when the caller closes the file). Never throws.
   */
  async stop(): Promise<void> {
    const why = new Error("the archive writer thread was stopped");
    this.gone ??= why;
    await this.worker.terminate();
    this.fail(why);
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
    const { message, code, errno, syscall } = reply.error;
    const err: NodeJS.ErrnoException = new Error(message);
    if (code !== null) err.code = code;
    if (errno !== null) err.errno = errno;
    if (syscall !== null) err.syscall = syscall;
    p.reject(err);
  }

  private fail(why: Error): void {
    this.gone ??= why;
    for (const p of this.pending.values()) p.reject(this.gone);
    this.pending.clear();
    this.worker.unref();
  }
}
