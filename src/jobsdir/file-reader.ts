// Reading many small files on two cores: a worker thread reads them while
// the caller parses. At startup the master reads every job file (100,000
// of them: about 0.65 s of open, read and close here, and 0.9 s of parsing
// and checking), and a single thread would do one after the other.
//
// Only the reading moves: parsing stays on the caller's thread, because
// sending parsed objects between threads costs as much as parsing them. The
// worker sends its files in batches, in order, so parsing starts with the
// first batch rather than after the last file. And it is started before the
// caller lists the directory, since starting a thread takes about as long
// here (0.1 s) as listing 100,000 names.

import { stat } from "node:fs/promises";
import { Worker } from "node:worker_threads";
import type { ReaderReply, ReaderRequest } from "./file-reader-worker.js";

/**
 * Called with each file's text (UTF-8, as readFileSync(file, "utf8") gives
 * it) or the Error reading it gave, in the order of `files`.
 */
export type FileTextHandler = (index: number, text: string | Error) => void;

/** About 1,000 to 2,000 entries; below WORKER_READ_MIN_FILES of job-store.ts, so a directory past it has a worker. */
const LARGE_DIR_BYTES = 32 * 1024;

/**
 * Whether `dir` looks large enough (a thousand entries or more) to read with
 * a worker. Only a guess from its size, which on the usual filesystems
 * (ext4, xfs, btrfs, tmpfs) grows by some 16 to 30 bytes an entry; a wrong
 * guess costs a thread started for nothing, or one not started.
 */
export async function looksLarge(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).size >= LARGE_DIR_BYTES;
  } catch {
    return false;
  }
}

/** A worker thread, started at once, that reads one list of files when asked. */
export class FileReaderThread {
  private readonly worker: Worker | null;
  private failed = false;

  constructor() {
    let worker: Worker | null = null;
    try {
      worker = new Worker(new URL("./file-reader-worker.js", import.meta.url));
      // Until read() listens: a worker that cannot start must not be an
      // uncaught 'error' event. read() then finds it failed.
      worker.on("error", () => (this.failed = true));
      worker.once("exit", () => (this.failed = true));
    } catch {
      this.failed = true;
    }
    this.worker = worker;
  }

  /**
   * Reads `files`, calling `onFile` for each in order. Resolves with how
   * many files were handed to `onFile`: all of them, or fewer if the worker
   * could not start or died, in which case the caller reads the rest
   * itself. Rejects only with what `onFile` throws. Stops the worker.
   */
  read(files: string[], onFile: FileTextHandler): Promise<number> {
    const worker = this.worker;
    if (worker === null || this.failed) {
      this.stop();
      return Promise.resolve(0);
    }
    return new Promise((resolve, reject) => {
      let delivered = 0;
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        this.stop();
        fn();
      };
      worker.on("error", () => settle(() => resolve(delivered)));
      worker.once("exit", () => settle(() => resolve(delivered)));
      worker.on("message", (reply: ReaderReply) => {
        if (settled) return;
        if (reply.done) {
          settle(() => resolve(delivered));
          return;
        }
        const bytes = Buffer.from(reply.bytes);
        const failed = new Map(reply.errors.map((e) => [e.index, e.message]));
        try {
          for (let k = 0; k + 1 < reply.offsets.length; k++) {
            const i = reply.first + k;
            const why = failed.get(i);
            onFile(
              i,
              why !== undefined
                ? new Error(why)
                : bytes.toString("utf8", reply.offsets[k], reply.offsets[k + 1]),
            );
            delivered = i + 1;
          }
        } catch (err) {
          settle(() => reject(err instanceof Error ? err : new Error(String(err))));
        }
      });
      const request: ReaderRequest = { files };
      worker.postMessage(request);
    });
  }

  /** Stops the worker (when it is not needed after all, or is done). */
  stop(): void {
    void this.worker?.terminate();
  }
}
