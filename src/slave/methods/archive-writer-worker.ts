// The thread that writes plain archives' bytes (archive-writer-thread.ts),
// synchronously, each buffer where it is asked to, in the order asked: in
// one call to a file opened for direct I/O (archive-output.ts), in pieces of
// WRITE_PIECE through the page cache.
//
// Why pieces through the page cache, and why a thread: a large write lets
// the kernel give the page cache large folios, and on a VM whose free memory
// the host takes back (virtio-balloon free page reporting) a large folio is
// fresh memory the host must fault in page by page, so the system time of
// large writes swings widely from run to run; pieces the size of GNU tar's
// writes keep it steady. Pieces that small are too many for one thread-pool
// round trip each, so they run here, one after another, while the main
// thread reads and hashes the next buffers. A direct write is the other way
// round: each call waits for the device, so fewer, larger calls are faster,
// and no page cache is filled; the thread waits for the disk, using no CPU,
// while the main thread reads. The measurements are in this file's history
// (git log).
//
// The buffers are shared memory (SharedArrayBuffer), each sent once with a
// slot number: after that, only the slot and where to write go between the
// threads.

import { writeSync } from "node:fs";
import { parentPort } from "node:worker_threads";

/** Bytes per write call (see above). */
const WRITE_PIECE = 16 << 10;

export interface WriteRequest {
  id: number;
  /** The archive's file descriptor, open for writing. */
  fd: number;
  /** `fd` was opened with O_DIRECT: one call for the whole buffer, which the device takes as it is. */
  direct: boolean;
  /** A number for `buffer`, so that it is sent once; -1 for a buffer used once. */
  slot: number;
  /** Sent with the slot's first use, and with every one-off buffer. */
  buffer?: SharedArrayBuffer;
  offset: number;
  length: number;
  /** Where in the file the bytes go. */
  position: number;
}

export interface WriteReply {
  id: number;
  /** null when every byte is written; else what fs threw. */
  error: {
    message: string;
    code: string | null;
    errno: number | null;
    syscall: string | null;
  } | null;
}

const slots = new Map<number, SharedArrayBuffer>();

function writeAll(r: WriteRequest): void {
  if (r.buffer !== undefined && r.slot >= 0) slots.set(r.slot, r.buffer);
  const buffer = r.slot >= 0 ? slots.get(r.slot) : r.buffer;
  if (buffer === undefined) throw new Error(`archive writer: no buffer in slot ${r.slot}`);
  const bytes = new Uint8Array(buffer, r.offset, r.length);
  const piece = r.direct ? r.length : WRITE_PIECE;
  let done = 0;
  while (done < r.length) {
    done += writeSync(r.fd, bytes, done, Math.min(piece, r.length - done), r.position + done);
  }
}

parentPort?.on("message", (r: WriteRequest) => {
  let error: WriteReply["error"] = null;
  try {
    writeAll(r);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    error = {
      message: e.message,
      code: typeof e.code === "string" ? e.code : null,
      errno: typeof e.errno === "number" ? e.errno : null,
      syscall: typeof e.syscall === "string" ? e.syscall : null,
    };
  }
  parentPort?.postMessage({ id: r.id, error } satisfies WriteReply);
});
