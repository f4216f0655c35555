// The commit queue on its own, through the file operations interface and a
// scripted monotonic clock: merging, order across groups, deferral, a failed
// write, and the serial as the gate of new jobs.

import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import t, { type Test } from "tap";
import { AbsError } from "../../src/errors.js";
import { CommitQueue } from "../../src/jobsdir/commit-queue.js";
import type { Job } from "../../src/jobsdir/job.js";
import { RequestFile } from "../../src/jobsdir/request-file.js";
import { RequestRecords } from "../../src/jobsdir/request-records.js";
import { type FsOps, realFsOps } from "../../src/storage/fs-ops.js";
import { sampleJob } from "../helpers/job.js";
import { CollectingLogger } from "../helpers/log.js";
import { tempDir } from "../helpers/tmp.js";

interface Harness {
  dir: string;
  queue: CommitQueue;
  durable: Job[];
  failed: number[];
  /** Temp files written, by the name they were written for. */
  writes: string[];
  clock: { now: number };
}

function harness(t: Test, fail: (file: string) => boolean = () => false, lastId = 0): Harness {
  const dir = tempDir(t);
  const writes: string[] = [];
  const fs: FsOps = {
    ...realFsOps,
    async writeSynced(file, data) {
      const name = path.basename(file).replace(/^\.tmp-(.*)-\d+-\d+$/, "$1");
      writes.push(name);
      if (fail(name)) {
        throw Object.assign(new Error(`EIO: simulated write of ${name}`), { code: "EIO" });
      }
      return realFsOps.writeSynced(file, data);
    },
  };
  const logger = new CollectingLogger();
  const clock = { now: 0 };
  const durable: Job[] = [];
  const failed: number[] = [];
  const requests = new RequestFile({
    dir,
    fs,
    logger,
    clock: () => 0,
    records: new RequestRecords(),
    exists: false,
  });
  const queue = new CommitQueue({
    dir,
    fs,
    logger,
    monotonic: () => clock.now,
    lastId,
    requests,
    durable: (job) => durable.push(job),
    failed: (id) => failed.push(id),
  });
  t.teardown(() => queue.close());
  return { dir, queue, durable, failed, writes, clock };
}

const onDisk = (dir: string, id: number): Job =>
  JSON.parse(readFileSync(path.join(dir, `job-${id}.json`), "utf8")) as Job;

t.test("writes of one job queued before a flush are merged into one", async (t) => {
  const h = harness(t);
  const v1 = sampleJob({ id: 1, serial: 1 });
  const v2 = sampleJob({ id: 1, serial: 2, state: "dispatched" });
  const a = h.queue.write(v1, true, { flush: false });
  const b = h.queue.write(v2, false, { flush: false });
  h.queue.flush();
  await Promise.all([a, b]);
  t.same(
    h.writes.filter((w) => w === "job-1.json"),
    ["job-1.json"],
    "one file write for both",
  );
  t.same(
    h.durable.map((j) => j.serial),
    [2],
    "the newest version is what became durable",
  );
  t.equal(onDisk(h.dir, 1).serial, 2);
  t.equal(readFileSync(path.join(h.dir, "serial"), "utf8"), "1\n", "the serial gated the new id");
});

t.test("a job's next write waits for its write under way: order across groups", async (t) => {
  const h = harness(t);
  const first = h.queue.write(sampleJob({ id: 1, serial: 1 }), true);
  // The first group is under way: this one cannot join it, nor overtake it.
  const second = h.queue.write(sampleJob({ id: 1, serial: 2 }), false);
  const other = h.queue.write(sampleJob({ id: 2, serial: 1 }), true);
  await Promise.all([first, second, other]);
  t.same(
    h.durable.filter((j) => j.id === 1).map((j) => j.serial),
    [1, 2],
    "job 1's versions became durable in order",
  );
  t.equal(onDisk(h.dir, 1).serial, 2);
  t.equal(readFileSync(path.join(h.dir, "serial"), "utf8"), "2\n", "the serial only grows");
});

t.test(
  "a deferred write waits for the clock, merges with a later change, and close writes it",
  async (t) => {
    const h = harness(t);
    await h.queue.write(sampleJob({ id: 1, serial: 1 }), true);
    const deferred = h.queue.write(sampleJob({ id: 1, serial: 2 }), false, { deferMs: 60_000 });
    let settled = false;
    void deferred.then(() => (settled = true));
    // Another job's write goes out and comes back without taking the deferred one.
    await h.queue.write(sampleJob({ id: 2, serial: 1 }), true);
    t.notOk(settled, "not written with the next group: not due yet");
    t.equal(onDisk(h.dir, 1).serial, 1);
    // A change that may not wait takes the deferred one with it.
    const urgent = h.queue.write(sampleJob({ id: 1, serial: 3 }), false);
    await Promise.all([deferred, urgent]);
    t.equal(onDisk(h.dir, 1).serial, 3);
    t.equal(h.writes.filter((w) => w === "job-1.json").length, 2, "one write for both changes");

    const last = h.queue.write(sampleJob({ id: 1, serial: 4 }), false, { deferMs: 60_000 });
    await h.queue.close();
    await last;
    t.equal(onDisk(h.dir, 1).serial, 4, "close wrote the deferred change at once");
  },
);

t.test("a deferred write is written once its time has come", async (t) => {
  const h = harness(t);
  await h.queue.write(sampleJob({ id: 1, serial: 1 }), true);
  const deferred = h.queue.write(sampleJob({ id: 1, serial: 2 }), false, { deferMs: 5 });
  h.clock.now = 5; // the timer, when it fires, finds it due
  await deferred;
  t.equal(onDisk(h.dir, 1).serial, 2);
});

t.test(
  "a failed write fails its callers and the writes queued on top of it, not others",
  async (t) => {
    let failing = true;
    const h = harness(t, (name) => failing && name === "job-2.json", 2);
    const ok = h.queue.write(sampleJob({ id: 1, serial: 1 }), false);
    const bad = h.queue.write(sampleJob({ id: 2, serial: 1 }), false);
    const onTop = h.queue.write(sampleJob({ id: 2, serial: 2 }), false);
    const outcomes = await Promise.allSettled([ok, bad, onTop]);
    t.equal(outcomes[0].status, "fulfilled");
    for (const o of outcomes.slice(1)) {
      t.ok(
        o.status === "rejected" && o.reason instanceof AbsError && o.reason.code === "JOBSDIR_IO",
        "JOBSDIR_IO",
      );
    }
    t.same(h.failed, [2], "the store is told, once");
    t.notOk(existsSync(path.join(h.dir, "job-2.json")));
    failing = false;
    await h.queue.write(sampleJob({ id: 2, serial: 1 }), false);
    t.equal(onDisk(h.dir, 2).serial, 1, "the next write starts again and succeeds");
  },
);

t.test("a new job whose serial cannot be written is not written either", async (t) => {
  let failing = true;
  const h = harness(t, (name) => failing && name === "serial");
  const err = await h.queue.write(sampleJob({ id: 1 }), true).catch((e: unknown) => e);
  t.match(err, { code: "JOBSDIR_IO" });
  t.notOk(existsSync(path.join(h.dir, "job-1.json")), "no job file above the serial");
  t.same(h.durable, []);
  failing = false;
  // The next new id writes the serial that covers it.
  await h.queue.write(sampleJob({ id: 2 }), true);
  t.equal(readFileSync(path.join(h.dir, "serial"), "utf8"), "2\n");
});
