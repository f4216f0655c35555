#!/usr/bin/env node
// abs-master's executable. It sets the size of libuv's thread pool, then
// runs the daemon (bin/abs-master-main.ts).
//
// Why a CommonJS file: libuv reads UV_THREADPOOL_SIZE once, when its pool
// first runs, and Node's loader of ES modules reads the first module's
// files on that pool, before any of their code runs. A CommonJS file is
// read without it, so what it sets here is still in time (unless
// NODE_OPTIONS preloads ES modules with --import: those start the pool
// first).
//
// Why 16 threads: every change to the jobs directory is a temp file written
// and fsynced, a group of changes in parallel (src/jobsdir/durable-files.ts),
// each fsync holding a pool thread: with libuv's 4, 4 are in flight at most.
// On a journaled file system (ext4, xfs) fsyncs in flight together are made
// durable by one journal commit, so more threads mean fewer commits for the
// same files. `npm run bench -- dispatch` with the jobs directory on a
// journaled ext4: 1,390-1,885 jobs/s with 4 threads, 2,315-2,826 with 16 to
// 64. Idle threads cost no CPU and no measurable memory.
//
// A UV_THREADPOOL_SIZE in abs-master's environment is kept as it is; an
// empty one counts as not set (libuv would read it as 1 thread).

import { MASTER_IO_THREADS } from "../src/master/io-threads.cjs";

process.env.UV_THREADPOOL_SIZE ||= String(MASTER_IO_THREADS);

import("./abs-master-main.js").catch((err: unknown) => {
  // The daemon reports its own failures; this is a module that did not load.
  console.error(err);
  process.exit(1);
});
