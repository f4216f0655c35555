import { readFileSync } from "node:fs";
import t from "tap";
import { MasterProcess } from "../helpers/master-process.js";

/** The threads of a running process, from /proc. */
function threadsOf(pid: number | undefined): number {
  const status = readFileSync(`/proc/${String(pid)}/status`, "utf8");
  return Number(/^Threads:\s+(\d+)$/m.exec(status)?.[1]);
}

// bin/abs-master.cts sets libuv's pool to 16 threads before the daemon's
// modules load; with Node's 4 the whole process has about 11 threads. The
// masters run without tap's NODE_OPTIONS: the ES modules it preloads
// (--import) would start the pool before any code of ours runs.
t.test(
  "abs-master runs with 16 I/O threads, unless its environment sets another number",
  async (t) => {
    const m = await MasterProcess.start(t, { withoutPreloads: true });
    const sixteen = threadsOf(m.pid);
    t.ok(sixteen > 16, `${sixteen} threads`);
    const four = await MasterProcess.start(t, {
      withoutPreloads: true,
      env: { UV_THREADPOOL_SIZE: "4" },
    });
    const fewer = threadsOf(four.pid);
    t.ok(fewer < 16, `${fewer} threads with UV_THREADPOOL_SIZE=4`);
    t.ok(sixteen - fewer >= 10, "the difference is about the pool's 12");
    const empty = await MasterProcess.start(t, {
      withoutPreloads: true,
      env: { UV_THREADPOOL_SIZE: "" },
    });
    t.ok(threadsOf(empty.pid) > 16, "an empty UV_THREADPOOL_SIZE counts as not set");
  },
);
