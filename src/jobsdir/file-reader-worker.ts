// The worker thread of file-reader.ts: reads the files it is given, in
// order, into one buffer, and sends it back (transferred, not copied) with
// each file's start offset. A file that cannot be read is reported by index
// with its error; the others are still read.

import { readFileSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";

export interface ReaderRequest {
  files: string[];
}

export interface ReaderReply {
  /** All the files' bytes, one after the other. */
  bytes: ArrayBuffer;
  /** offsets[i] to offsets[i + 1]: the bytes of files[i]. */
  offsets: Int32Array;
  errors: { index: number; message: string }[];
}

const { files } = workerData as ReaderRequest;
const chunks: Buffer[] = [];
const offsets = new Int32Array(files.length + 1);
const errors: ReaderReply["errors"] = [];
let total = 0;
files.forEach((file, i) => {
  offsets[i] = total;
  try {
    const b = readFileSync(file);
    chunks.push(b);
    total += b.length;
  } catch (err) {
    errors.push({ index: i, message: err instanceof Error ? err.message : String(err) });
  }
});
offsets[files.length] = total;
const all = Buffer.concat(chunks, total);
const bytes = all.buffer.slice(all.byteOffset, all.byteOffset + total);
const reply: ReaderReply = { bytes, offsets, errors };
parentPort?.postMessage(reply, [bytes, offsets.buffer]);
