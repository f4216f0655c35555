// What the slave does when it has nothing left to do (job-runner.ts says
// when that is): V8's full collection, when the process runs with
// --expose-gc (abs-slave's first line asks for it), if enough garbage has
// piled up to be worth it.
//
// Why collect by hand at all: a backup leaves its dead objects in the old
// generation, which V8 collects only once it would grow further; the
// slave's resident set climbed from backup to backup (93 to 160 MB over ten
// fulls of the benchmark's tree) and stayed there. Collected after each, it
// stays at 93-111 MB.
//
// Why not after every job: a collection takes 6-9 ms of the slave's CPU,
// and a job that comes right behind waits for it (an incremental of the
// benchmark's unchanged tree: 5-10 ms more). So the heap is collected once
// its garbage is at least as big as what lived after the last collection
// (the heap has doubled): after every full backup of the benchmark's tree
// (14 MB of garbage over 11 MB live), after every other incremental (7 MB).
// What is left is at most the live size plus one job's garbage, whatever
// the trees.

import v8 from "node:v8";

export interface IdleCollectorOptions {
  /** The full collection; default the global gc of --expose-gc, if any. */
  gc?: (() => void) | undefined;
  /** Bytes of the JavaScript heap in use; default V8's figure. */
  heapUsed?: () => number;
}

/** A function to call when idle: collects if the heap has doubled since its last collection. */
export function idleCollector(opts: IdleCollectorOptions = {}): () => void {
  const gc = "gc" in opts ? opts.gc : (globalThis as { gc?: () => void }).gc;
  const heapUsed = opts.heapUsed ?? (() => v8.getHeapStatistics().used_heap_size);
  // In use after the last collection: what lived then. None yet: the first call collects.
  let live = 0;
  return () => {
    if (gc === undefined) return;
    if (heapUsed() - live < live) return;
    gc();
    live = heapUsed();
  };
}
