// Reading many small files on two cores: a worker thread reads one part of
// them while the caller reads and parses the other. At startup the master
// reads every job file (100,000 of them is some 1.5 s here, half of it in
// read syscalls), and a single thread leaves the second core idle.
//
// Only the reading moves: parsing stays on the caller's thread, because
// sending parsed objects between threads costs as much as parsing them.

import { Worker } from "node:worker_threads";
import type { ReaderReply, ReaderRequest } from "./file-reader-worker.js";

/** Files read by a worker: the text of each, or the error reading it gave. */
export interface ReadBatch {
  /** The text of file `i` (UTF-8, as readFileSync(file, "utf8") gives it), or an Error. */
  text(i: number): string | Error;
}

/** Reads `files` in a worker thread; rejects only if the worker itself fails. */
export function readFilesInWorker(files: string[]): Promise<ReadBatch> {
  const request: ReaderRequest = { files };
  const worker = new Worker(new URL("./file-reader-worker.js", import.meta.url), {
    workerData: request,
  });
  return new Promise((resolve, reject) => {
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`file reader exited with status ${code}`)));
    worker.once("message", (reply: ReaderReply) => {
      const bytes = Buffer.from(reply.bytes);
      const failed = new Map(reply.errors.map((e) => [e.index, e.message]));
      resolve({
        text(i) {
          const why = failed.get(i);
          if (why !== undefined) return new Error(why);
          return bytes.toString("utf8", reply.offsets[i], reply.offsets[i + 1]);
        },
      });
    });
  });
}
