// The worker thread of file-reader.ts: waits for a list of files, reads
// them in order, and sends them back in batches, each batch one buffer (transferred,
// not copied) with each file's start offset, so that the caller parses one
// batch while the next is read. A file that cannot be read is reported by
// index with its error; the others are still read. A last message says the
// worker is done.

import { parentPort } from "node:worker_threads";
import { readSmallFile } from "./read-small-file.js";

export interface ReaderRequest {
  files: string[];
}

export interface ReaderBatch {
  done: false;
  /** The index in `files` of this batch's first file. */
  first: number;
  /** The batch's files' bytes, one after the other, in bytes[0, offsets[count]). */
  bytes: ArrayBuffer;
  /** offsets[i] to offsets[i + 1]: the bytes of file first + i; offsets.length is count + 1. */
  offsets: Int32Array;
  errors: { index: number; message: string }[];
}

export type ReaderReply = ReaderBatch | { done: true };

/** A batch is sent once it holds this many files or bytes. */
const BATCH_FILES = 1024;
const BATCH_BYTES = 4 << 20;

function readAll(files: string[]): void {
  const scratch = Buffer.allocUnsafe(1 << 20);
  // The batch's bytes gather here; each batch sends a copy of what it used.
  let arena = Buffer.allocUnsafeSlow(BATCH_BYTES + scratch.length);
  let first = 0;
  while (first < files.length) {
    const count = Math.min(BATCH_FILES, files.length - first);
    const offsets = new Int32Array(count + 1);
    const errors: ReaderBatch["errors"] = [];
    let used = 0;
    let k = 0;
    for (; k < count && used < BATCH_BYTES; k++) {
      offsets[k] = used;
      try {
        const b = readSmallFile(files[first + k], scratch);
        if (used + b.length > arena.length) {
          const larger = Buffer.allocUnsafeSlow(used + b.length);
          arena.copy(larger, 0, 0, used);
          arena = larger;
        }
        b.copy(arena, used);
        used += b.length;
      } catch (err) {
        errors.push({
          index: first + k,
          message: err instanceof Error ? err.message : String(err),
        });
      }
    }
    offsets[k] = used;
    const batch: ReaderBatch = {
      done: false,
      first,
      bytes: arena.buffer.slice(0, used),
      offsets: offsets.slice(0, k + 1),
      errors,
    };
    parentPort?.postMessage(batch, [batch.bytes, batch.offsets.buffer as ArrayBuffer]);
    first += k;
  }
  parentPort?.postMessage({ done: true } satisfies ReaderReply);
}

parentPort?.once("message", (request: ReaderRequest) => readAll(request.files));
