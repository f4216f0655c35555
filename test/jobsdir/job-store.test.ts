import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import t, { type Test } from "tap";
import { AbsError } from "../../src/errors.js";
import { type FsOps, realFsOps } from "../../src/storage/fs-ops.js";
import { recordProgress, transition } from "../../src/jobsdir/job-state.js";
import type { Job, NewJob } from "../../src/jobsdir/job.js";
import { serializeJob } from "../../src/jobsdir/job-file.js";
import { JobStore, type JobStoreOptions } from "../../src/jobsdir/job-store.js";
import type { ProcessProbe } from "../../src/storage/dir-lock.js";
import { heldWrites } from "../helpers/held-writes.js";
import { CollectingLogger } from "../helpers/log.js";
import { sampleJob } from "../helpers/job.js";
import { tempDir } from "../helpers/tmp.js";

const SPEC: NewJob = {
  definition: "home",
  slave: "green-acres",
  method: "tar",
  params: { sources: ["/home"] },
  priority: 0,
};
const DONE = { message: "ok", data: {} };

async function open(t: Test, dir: string, opts: Partial<JobStoreOptions> = {}): Promise<JobStore> {
  const store = await JobStore.open({ dir, ...opts });
  t.teardown(() => store.close());
  return store;
}

async function finish(store: JobStore, id: number, now = 0): Promise<void> {
  await store.transition(id, { to: "dispatched", now, message: "dispatched" });
  await store.transition(id, { to: "running", now, message: "started" });
  await store.transition(id, { to: "succeeded", now, message: "done", result: DONE });
}

t.test("a new directory is created with its version; jobs survive a restart", async (t) => {
  const dir = path.join(tempDir(t), "jobs");
  const store = await JobStore.open({ dir, clock: () => 5000 });
  t.equal(readFileSync(path.join(dir, "version"), "utf8"), "1\n");
  const a = await store.submit(SPEC);
  const b = await store.submit({ ...SPEC, definition: "etc", priority: 3 });
  t.equal(a.id, 1);
  t.equal(b.id, 2);
  t.equal(readFileSync(path.join(dir, "serial"), "utf8"), "2\n");
  t.same(JSON.parse(readFileSync(path.join(dir, "job-1.json"), "utf8")), a);
  await store.transition(1, { to: "dispatched", now: 6000, message: "sent to green-acres" });
  await store.close();

  const again = await open(t, dir);
  t.equal(again.size, 2);
  t.equal(again.get(1)?.state, "dispatched");
  t.equal(again.get(1)?.timestamps.dispatched, 6000);
  t.equal(again.get(2)?.priority, 3);
  t.equal((await again.submit(SPEC)).id, 3, "ids continue after the serial");
});

t.test("concurrent submissions get distinct ids and share fsyncs", async (t) => {
  const dir = tempDir(t);
  let dirSyncs = 0;
  const counting: FsOps = {
    ...realFsOps,
    fsyncDir: (d) => ((dirSyncs += 1), realFsOps.fsyncDir(d)),
  };
  const store = await open(t, dir, { fs: counting });
  dirSyncs = 0;
  const jobs = await Promise.all(
    Array.from({ length: 200 }, (_, i) => store.submit({ ...SPEC, definition: `d${i}` })),
  );
  t.same(
    jobs.map((j) => j.id).sort((a, b) => a - b),
    Array.from({ length: 200 }, (_, i) => i + 1),
  );
  t.ok(dirSyncs < 200, `200 submissions took ${dirSyncs} directory fsyncs`);
  t.equal(readdirSync(dir).filter((n) => n.startsWith("job-")).length, 200);
});

t.test(
  "a group that publishes first keeps its serial: the earlier group's lower one is not put back",
  async (t) => {
    // Group 1 (job 1 and serial 1) is held in its temp writes; group 2 (job
    // 2 and serial 2) writes its own meanwhile and publishes first. Group
    // 1's serial must not then be renamed over serial 2, which would leave
    // job-2.json above the serial on disk.
    const dir = tempDir(t);
    const writes = heldWrites((file) => path.basename(file).startsWith(".tmp-job-1.json-"));
    const published: string[] = [];
    const fs: FsOps = {
      ...writes.fs,
      async rename(from, to) {
        await writes.fs.rename(from, to);
        const name = path.basename(to);
        if (name !== "serial" && !name.startsWith("job-")) return;
        const serial = readFileSync(path.join(dir, "serial"), "utf8").trim();
        published.push(`${name} (serial ${serial})`);
      },
    };
    const store = await open(t, dir, { fs });
    const first = store.submit({ ...SPEC, definition: "first" });
    await writes.held;
    const second = store.submit({ ...SPEC, definition: "second" });
    await writes.othersDone();
    writes.release();
    t.same(
      (await Promise.all([first, second])).map((j) => j.id),
      [1, 2],
    );
    t.same(
      published,
      ["serial (serial 2)", "job-2.json (serial 2)", "job-1.json (serial 2)"],
      "each job published after a serial that covers it, the serial never lowered",
    );
    t.equal(readFileSync(path.join(dir, "serial"), "utf8"), "2\n");
  },
);

t.test("an illegal transition is a typed error and changes nothing", async (t) => {
  const dir = tempDir(t);
  const store = await open(t, dir);
  const job = await store.submit(SPEC);
  const before = readFileSync(path.join(dir, "job-1.json"), "utf8");
  await t.rejects(store.transition(job.id, { to: "running", now: 1, message: "x" }), {
    code: "ILLEGAL_TRANSITION",
    message: "job 1: cannot move from queued to running",
  });
  t.equal(readFileSync(path.join(dir, "job-1.json"), "utf8"), before);
  t.equal(store.get(1)?.serial, 1);
  await t.rejects(store.transition(99, { to: "running", now: 1, message: "x" }), {
    code: "JOB_NOT_FOUND",
    message: "job 99 does not exist",
  });
});

t.test("the lock refuses a second master and names the holder", async (t) => {
  const dir = tempDir(t);
  await open(t, dir);
  await t.rejects(JobStore.open({ dir }), {
    code: "JOBSDIR_LOCKED",
    message: new RegExp(`^jobs directory ${dir} is locked by abs-master pid ${process.pid} on `),
  });
});

t.test("a lock left by a dead process is taken over", async (t) => {
  const dir = tempDir(t);
  const child = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], {
    encoding: "utf8",
  });
  const deadPid = Number(child.stdout.trim());
  const probe: ProcessProbe = {
    hostname: () => "here",
    bootId: () => "boot-1",
    startTimeOf: (pid) => (pid === process.pid ? "100" : null),
  };
  writeFileSync(
    path.join(dir, "lock"),
    JSON.stringify({ pid: deadPid, host: "here", bootId: "boot-1", startTime: "5", since: 1 }),
  );
  const log = new CollectingLogger();
  const store = await open(t, dir, { probe, logger: log });
  t.equal(store.loadReport.staleLock?.pid, deadPid);
  t.match(log.messages("warn"), [new RegExp(`stale lock of abs-master pid ${deadPid}`)]);
  const lock = JSON.parse(readFileSync(path.join(dir, "lock"), "utf8")) as { pid: number };
  t.equal(lock.pid, process.pid);
});

t.test("a lock whose pid was reused, or from before a reboot, is stale", async (t) => {
  for (const [name, holder] of [
    ["pid reused", { pid: 4242, host: "here", bootId: "boot-1", startTime: "5", since: 1 }],
    ["rebooted", { pid: 4242, host: "here", bootId: "boot-0", startTime: "77", since: 1 }],
  ] as const) {
    const dir = tempDir(t);
    writeFileSync(path.join(dir, "lock"), JSON.stringify(holder));
    const probe: ProcessProbe = {
      hostname: () => "here",
      bootId: () => "boot-1",
      startTimeOf: () => "77",
    };
    const store = await JobStore.open({ dir, probe });
    t.equal(store.loadReport.staleLock?.pid, 4242, name);
    await store.close();
  }
});

t.test("a lock from another host is never taken", async (t) => {
  const dir = tempDir(t);
  writeFileSync(
    path.join(dir, "lock"),
    JSON.stringify({ pid: 1, host: "elsewhere", bootId: null, startTime: null, since: 0 }),
  );
  await t.rejects(JobStore.open({ dir }), {
    code: "JOBSDIR_LOCKED",
    message: `jobs directory ${dir} is locked by abs-master pid 1 on elsewhere since 1970-01-01T00:00:00.000Z; if that abs-master is gone, remove ${dir}/lock`,
  });
  writeFileSync(path.join(dir, "lock"), "garbage");
  await t.rejects(JobStore.open({ dir }), {
    code: "JOBSDIR_LOCKED",
    message: /does not name a process/,
  });
});

t.test("version: missing with jobs, newer, older, garbage", async (t) => {
  const cases: [string, string | null, RegExp][] = [
    ["newer", "2\n", /jobs directory format 2 is newer than this abs-master reads \(1\)/],
    ["older", "0\n", /jobs directory format 0 is older than this abs-master reads \(1\)/],
    ["garbage", "v1\n", /"v1" is not a format version/],
    ["missing", null, /has no version file: it is not an ABS jobs directory/],
  ];
  for (const [name, version, message] of cases) {
    const dir = tempDir(t);
    writeFileSync(path.join(dir, "job-1.json"), "{}");
    if (version !== null) writeFileSync(path.join(dir, "version"), version);
    await t.rejects(JobStore.open({ dir }), { code: "JOBSDIR_VERSION", message }, name);
    t.notOk(existsSync(path.join(dir, "lock")), `${name}: the lock is released`);
  }
});

t.test("corrupt and foreign files are quarantined; startup goes on", async (t) => {
  const dir = tempDir(t);
  let store = await JobStore.open({ dir });
  await store.submit(SPEC);
  await store.submit(SPEC);
  await store.close();
  const good = readFileSync(path.join(dir, "job-2.json"), "utf8");
  writeFileSync(path.join(dir, "job-1.json"), good.slice(0, 40)); // truncated
  writeFileSync(path.join(dir, "job-3.json"), good); // names job 2
  writeFileSync(path.join(dir, "notes.txt"), "hello");
  writeFileSync(path.join(dir, ".tmp-job-4.json-1-1"), "half a wri");
  const log = new CollectingLogger();
  store = await open(t, dir, { logger: log });
  t.equal(store.size, 1);
  t.ok(store.get(2));
  t.same(store.loadReport.quarantined.map((q) => q.file).sort(), [
    "job-1.json",
    "job-3.json",
    "notes.txt",
  ]);
  const reasons = Object.fromEntries(store.loadReport.quarantined.map((q) => [q.file, q.reason]));
  t.match(reasons["job-1.json"], /^not valid JSON/);
  t.equal(reasons["job-3.json"], "holds job 2, but its name says job 3");
  t.equal(reasons["notes.txt"], "not a file of a jobs directory");
  t.equal(store.loadReport.tempFilesRemoved, 1);
  t.notOk(existsSync(path.join(dir, ".tmp-job-4.json-1-1")));
  const moved = readdirSync(path.join(dir, "quarantine"));
  t.equal(moved.filter((n) => n.endsWith(".reason")).length, 3);
  t.equal(moved.length, 6);
  t.equal(log.messages("warn").filter((m) => m.startsWith("quarantined ")).length, 3);
  t.equal(
    (await store.submit(SPEC)).id,
    4,
    "ids stay above every id seen, even quarantined ones' serial",
  );
});

t.test("drain refuses submissions and survives a restart", async (t) => {
  const dir = tempDir(t);
  let store = await JobStore.open({ dir });
  await store.setDrain(true);
  await t.rejects(store.submit(SPEC), { code: "DRAINED", message: /drained/ });
  await store.close();
  store = await JobStore.open({ dir });
  t.ok(store.drained);
  await t.rejects(store.submit(SPEC), { code: "DRAINED" });
  await store.setDrain(false);
  t.equal((await store.submit(SPEC)).id, 1);
  await store.close();
  store = await open(t, dir);
  t.notOk(store.drained);
});

t.test("the queue limit refuses with QUEUE_FULL, archiving makes room", async (t) => {
  const store = await open(t, tempDir(t), { maxJobs: 3 });
  for (let i = 0; i < 3; i++) await store.submit(SPEC);
  await t.rejects(store.submit(SPEC), {
    code: "QUEUE_FULL",
    message: /3 unarchived jobs \(the limit\)/,
  });
  // Concurrent submissions racing for the last place: exactly the limit get in.
  await finish(store, 1);
  await store.archive([1]);
  const results = await Promise.allSettled([store.submit(SPEC), store.submit(SPEC)]);
  t.same(
    results.map((r) => r.status),
    ["fulfilled", "rejected"],
  );
  t.equal(store.size, 3);
});

t.test("archive: finished jobs only, into archive/<id/10000>/", async (t) => {
  const dir = tempDir(t);
  const store = await open(t, dir);
  await store.submit(SPEC);
  await store.submit(SPEC);
  await finish(store, 1);
  await t.rejects(store.archive([2]), {
    code: "JOB_NOT_FINISHED",
    message: "job 2 is queued; only finished jobs can be archived",
  });
  t.equal(await store.archive([1]), 1);
  t.ok(existsSync(path.join(dir, "archive", "0", "job-1.json")));
  t.notOk(existsSync(path.join(dir, "job-1.json")));
  t.equal(store.get(1), undefined);
  t.equal((await store.readArchived(1)).state, "succeeded");
  await t.rejects(store.readArchived(2), { code: "JOB_NOT_FOUND" });
  t.same(
    store.query().map((j) => j.id),
    [2],
  );
});

t.test("autoarchive by age, in batches, counting what remains", async (t) => {
  let now = 1_000_000;
  const store = await open(t, tempDir(t), { clock: () => now });
  for (let i = 0; i < 5; i++) await store.submit(SPEC);
  for (const id of [1, 2, 3]) await finish(store, id, 100);
  await store.transition(4, { to: "canceled", now: 900_000, message: "canceled", result: DONE });
  now = 1_000_000;
  t.same(await store.autoarchive(500_000, 2), { archived: 2, remaining: 1 });
  t.same(await store.autoarchive(500_000, 2), { archived: 1, remaining: 0 });
  t.same(
    await store.autoarchive(50_000, 10),
    { archived: 1, remaining: 0 },
    "job 4 by its end time",
  );
  t.same(
    store.query().map((j) => j.id),
    [5],
    "the queued job stays",
  );
});

t.test("queries by state, slave, definition, id range, limit", async (t) => {
  const store = await open(t, tempDir(t));
  for (let i = 1; i <= 10; i++) {
    await store.submit({
      ...SPEC,
      slave: i % 2 === 0 ? "even" : "odd",
      definition: i <= 5 ? "low" : "high",
    });
  }
  await finish(store, 3);
  const ids = (q: Parameters<JobStore["query"]>[0]): number[] => store.query(q).map((j) => j.id);
  t.same(ids({ slave: "even" }), [2, 4, 6, 8, 10]);
  t.same(ids({ definition: "high", slave: "odd" }), [7, 9]);
  t.same(ids({ states: ["succeeded"] }), [3]);
  t.same(ids({ states: ["queued"], fromId: 3, toId: 6 }), [4, 5, 6]);
  t.same(ids({ limit: 2 }), [1, 2]);
  t.same(ids({ limit: 2, newest: true }), [9, 10]);
  t.throws(() => store.query({ limit: -1 }), {
    code: "BAD_ARGUMENT",
    message: "limit must be a whole number >= 0, got -1",
  });
});

t.test("wait for change: at once, on change, when finished, or nochange", async (t) => {
  const store = await open(t, tempDir(t));
  const job = await store.submit(SPEC);
  t.equal(
    await store.waitForChange(job.id, 0, 10),
    store.get(1),
    "changed since serial 0: at once",
  );
  t.equal(await store.waitForChange(job.id, 1, 20), "nochange");
  const waiting = store.waitForChange(job.id, 1, 10_000);
  await store.transition(1, { to: "dispatched", now: 1, message: "sent" });
  const changed = await waiting;
  t.equal(changed !== "nochange" && changed.state, "dispatched");
  await store.transition(1, { to: "canceled", now: 2, message: "canceled", result: DONE });
  const finished = await store.waitForChange(job.id, 999, 10_000);
  t.equal(finished !== "nochange" && finished.state, "canceled", "a finished job returns at once");
  await t.rejects(store.waitForChange(42, 0, 10), { code: "JOB_NOT_FOUND" });
});

/** Real file operations, but writes fail with `code` while `failing` says so. */
function failingFs(code: string, failing: (file: string) => boolean): FsOps {
  return {
    ...realFsOps,
    async writeSynced(file, data) {
      if (failing(file)) {
        throw Object.assign(new Error(`${code}: simulated, write '${file}'`), { code });
      }
      return realFsOps.writeSynced(file, data);
    },
  };
}

t.test("a write error fails that change only; nothing is silently dropped", async (t) => {
  const dir = tempDir(t);
  let fail = false;
  const log = new CollectingLogger();
  const store = await open(t, dir, {
    fs: failingFs("EIO", (f) => fail && f.includes("job-1.json")),
    logger: log,
  });
  await store.submit(SPEC);
  await store.submit(SPEC);
  fail = true;
  const [one, two] = await Promise.allSettled([
    store.transition(1, { to: "dispatched", now: 1, message: "x" }),
    store.transition(2, { to: "dispatched", now: 1, message: "x" }),
  ]);
  t.equal(one.status, "rejected");
  t.match(one.status === "rejected" && (one.reason as AbsError), {
    code: "JOBSDIR_IO",
    message: /cannot write .*job-1\.json: EIO/,
  });
  t.equal(two.status, "fulfilled", "the other job of the same group is written");
  t.equal(store.get(1)?.state, "queued", "memory still matches the disk");
  t.match(log.messages("error"), [/job 1: cannot write/]);
  t.notOk(
    readdirSync(dir).some((n) => n.startsWith(".tmp-")),
    "no temp file left behind",
  );
  fail = false;
  t.equal(
    (await store.transition(1, { to: "dispatched", now: 1, message: "x" })).state,
    "dispatched",
    "the store keeps serving",
  );
});

t.test(
  "a serial that cannot be written refuses the submission and burns no id twice",
  async (t) => {
    const dir = tempDir(t);
    let fail = true;
    const store = await open(t, dir, {
      fs: failingFs("ENOSPC", (f) => fail && f.includes("serial")),
    });
    await t.rejects(store.submit(SPEC), { code: "JOBSDIR_IO", message: /serial.*ENOSPC/ });
    t.equal(store.size, 0);
    t.notOk(existsSync(path.join(dir, "job-1.json")));
    fail = false;
    const job = await store.submit(SPEC);
    t.equal(job.id, 2, "the id of the failed submission is not handed out again");
  },
);

/** Whether this process may mount a tmpfs (root on Linux): then the full-disk test is real. */
function tmpfsMountable(): boolean {
  const probe = mkdtempSync(path.join(os.tmpdir(), "abs-mount-"));
  const ok = spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe]).status === 0;
  if (ok) spawnSync("umount", [probe]);
  rmSync(probe, { recursive: true, force: true });
  return ok;
}

t.test(
  "a full disk (a tiny tmpfs) gives clear errors and loses nothing written",
  {
    skip: tmpfsMountable()
      ? false
      : "cannot mount a tmpfs here (needs root); the injected write-error tests cover the code path",
  },
  async (t) => {
    const dir = tempDir(t);
    t.equal(
      spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir]).status,
      0,
      "tmpfs mounted",
    );
    t.teardown(() => {
      spawnSync("umount", [dir]);
    });
    const store = await JobStore.open({ dir });
    const big = { ...SPEC, params: { note: "x".repeat(3000) } };
    const written: number[] = [];
    let error: unknown = null;
    for (let i = 0; i < 200 && error === null; i++) {
      try {
        written.push((await store.submit(big)).id);
      } catch (err) {
        error = err;
      }
    }
    t.match(
      error,
      { code: "JOBSDIR_IO", message: /ENOSPC/ },
      "the disk filled up with a clear error",
    );
    t.ok(written.length > 3, `${written.length} jobs written before the disk filled`);
    await t.rejects(store.submit(big), { code: "JOBSDIR_IO" }, "still refused, not crashed");
    await store.close();
    const again = await JobStore.open({ dir });
    t.same(
      again.query().map((j) => j.id),
      written,
      "every acknowledged job is there after a restart",
    );
    t.same(again.loadReport.quarantined, [], "no partial job file");
    await again.close();
  },
);

t.test("an unwritable directory is a clear error", async (t) => {
  const dir = path.join(tempDir(t), "ro");
  const store = await JobStore.open({ dir });
  await store.close();
  chmodSync(dir, 0o555);
  if (process.getuid?.() === 0) {
    // Root ignores permissions: open the store as nobody in a child process.
    chownSync(path.dirname(dir), 0, 0);
    chmodSync(path.dirname(dir), 0o755);
    const script = `
      const { JobStore } = await import(${JSON.stringify(new URL("../../src/jobsdir/job-store.js", import.meta.url).href)});
      try { await JobStore.open({ dir: ${JSON.stringify(dir)} }); console.log("opened"); }
      catch (err) { console.log(err.code + " " + err.message); }`;
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      uid: 65534,
      gid: 65534,
      encoding: "utf8",
    });
    t.match(child.stdout, /^JOBSDIR_IO cannot create a lock in .*\/ro: EACCES/);
  } else {
    await t.rejects(JobStore.open({ dir }), {
      code: "JOBSDIR_IO",
      message: /cannot create a lock in .*EACCES/,
    });
  }
  chmodSync(dir, 0o755);
});

t.test("closing finishes writes under way and refuses new ones", async (t) => {
  const store = await JobStore.open({ dir: tempDir(t) });
  const pending = Array.from({ length: 20 }, () => store.submit(SPEC));
  const closing = store.close();
  const all = await Promise.allSettled(pending);
  await closing;
  t.ok(all.every((r) => r.status === "fulfilled"));
  t.equal(store.state, "closed");
  await t.rejects(store.submit(SPEC), { code: "JOBSDIR_CLOSED" });
});

t.test("a job file written by hand with the right content loads", async (t) => {
  const dir = tempDir(t);
  let store = await JobStore.open({ dir });
  const job = await store.submit(SPEC);
  await store.close();
  writeFileSync(path.join(dir, "job-1.json"), serializeJob({ ...job, priority: 9 }));
  store = await open(t, dir);
  t.equal(store.get(1)?.priority, 9);
});

t.test("schedule state survives a restart; a damaged one is logged and emptied", async (t) => {
  const dir = tempDir(t);
  let store = await JobStore.open({ dir });
  t.same(store.scheduleState, {});
  await store.saveScheduleState({ home: 1000, etc: 2000 });
  await store.close();
  store = await JobStore.open({ dir });
  t.same(store.scheduleState, { home: 1000, etc: 2000 });
  await store.close();
  writeFileSync(path.join(dir, "schedule-state.json"), '{"home": "yesterday"}');
  const log = new CollectingLogger();
  store = await open(t, dir, { logger: log });
  t.same(store.scheduleState, {});
  t.match(log.messages("warn"), [
    /schedule-state\.json: unusable \(home: expected a time in ms since the epoch\); missed runs are not caught up this time/,
  ]);
});

t.test(
  "callers that submit again as soon as they are answered are never left waiting",
  async (t) => {
    // Regression: a change queued by a caller woken by the last group, after
    // the flush loop had seen an empty queue, waited for some later change.
    const store = await open(t, tempDir(t));
    let done = 0;
    const lane = async (): Promise<void> => {
      for (let i = 0; i < 40; i++) {
        const job = await store.submit(SPEC);
        await store.transition(job.id, { to: "dispatched", now: 1, message: "sent" });
        done += 1;
      }
    };
    await Promise.all(Array.from({ length: 8 }, lane));
    t.equal(done, 320);
    t.equal(store.size, 320);
  },
);

t.test(
  "the registry of slaves survives a restart; a damaged one is logged and emptied",
  async (t) => {
    const dir = tempDir(t);
    const record = {
      name: "green-acres",
      identity: "realm-key:green-acres",
      address: "127.0.0.1",
      lastSeen: 5,
      maxJobs: 2,
    };
    let store = await JobStore.open({ dir });
    t.same(store.slaves, []);
    await store.saveSlaves([record]);
    await store.close();
    store = await JobStore.open({ dir });
    t.same(store.slaves, [record]);
    await store.close();
    writeFileSync(path.join(dir, "slaves.json"), '[{"name": "x"}]');
    const log = new CollectingLogger();
    store = await open(t, dir, { logger: log });
    t.same(store.slaves, []);
    t.match(log.messages("warn"), [
      /slaves\.json: unusable \(slaves\[0\]\.identity: expected a string, got nothing\)/,
    ]);
    t.same(store.loadReport.quarantined, [], "a known file is not quarantined");
  },
);

t.test(
  "changes to a job while its write is under way are merged into one next write",
  async (t) => {
    const dir = tempDir(t);
    const writes: string[] = [];
    const store = await open(t, dir, {
      fs: {
        ...realFsOps,
        writeSynced: (file, data) => {
          if (file.includes("job-1.json")) writes.push(file);
          return realFsOps.writeSynced(file, data);
        },
      },
    });
    await store.submit(SPEC);
    writes.length = 0;
    // One write starts at once; the rest queue behind it and merge.
    const changes = [
      store.transition(1, { to: "dispatched", now: 1, message: "dispatched" }),
      store.transition(1, { to: "running", now: 2, message: "started" }),
      ...[1, 2, 3, 4, 5].map((n) =>
        store.update(1, (j) => recordProgress(j, { files: n, bytes: n, path: null })),
      ),
      store.transition(1, { to: "succeeded", now: 3, message: "done", result: DONE }),
    ];
    const results = await Promise.all(changes);
    t.same(
      results.map((j) => j.state),
      ["dispatched", "running", "running", "running", "running", "running", "running", "succeeded"],
      "each caller gets the version its change made",
    );
    t.equal(writes.length, 2, "8 changes, 2 writes");
    t.equal(store.get(1)?.state, "succeeded");
    t.equal(store.get(1)?.serial, 1 + 8);
    await store.close();
    const reopened = await JobStore.open({ dir });
    t.teardown(() => reopened.close());
    t.same(
      reopened.get(1)?.progress,
      { files: 5, bytes: 5, path: null },
      "the last version is on disk",
    );
    t.equal(reopened.get(1)?.state, "succeeded");
  },
);

t.test("a failed write fails the changes merged after it; the job stays as on disk", async (t) => {
  const dir = tempDir(t);
  let fail = false;
  const store = await open(t, dir, {
    fs: failingFs("EIO", (f) => fail && f.includes("job-1.json")),
  });
  await store.submit(SPEC);
  fail = true;
  const first = store.transition(1, { to: "dispatched", now: 1, message: "dispatched" });
  const second = store.transition(1, { to: "running", now: 2, message: "started" });
  await t.rejects(first, { code: "JOBSDIR_IO" });
  await t.rejects(second, { code: "JOBSDIR_IO" }, "built on the failed change: fails with it");
  t.equal(store.get(1)?.state, "queued");
  fail = false;
  const retried = await store.transition(1, { to: "dispatched", now: 3, message: "dispatched" });
  t.equal(retried.serial, 2, "the next change starts from the job on disk");
});

t.test("a large directory is read on two threads, with the same checks", async (t) => {
  // Past 2000 job files a worker thread reads them (file-reader.ts).
  const dir = tempDir(t);
  const count = 3000;
  writeFileSync(path.join(dir, "version"), "1\n");
  writeFileSync(path.join(dir, "serial"), `${count}\n`);
  for (let id = 1; id <= count; id++) {
    const job = sampleJob({ id, definition: `d${id}`, log: [] });
    writeFileSync(path.join(dir, `job-${id}.json`), serializeJob(job));
  }
  // Bad files among them: early, late, in the worker's batches.
  writeFileSync(path.join(dir, "job-10.json"), "{ truncated");
  writeFileSync(path.join(dir, "job-2990.json"), serializeJob(sampleJob({ id: 7 })));
  const log = new CollectingLogger();
  const store = await open(t, dir, { logger: log });
  t.equal(store.size, count - 2);
  t.equal(store.get(2500)?.definition, "d2500");
  t.equal(store.get(1500)?.definition, "d1500");
  t.same(
    store.loadReport.quarantined.map((q) => q.file),
    ["job-10.json", "job-2990.json"],
  );
  t.match(store.loadReport.quarantined[1].reason, "holds job 7, but its name says job 2990");
});

t.test("a deferred change waits to merge with the next one, and is written anyway", async (t) => {
  const dir = tempDir(t);
  const writes: string[] = [];
  const store = await open(t, dir, {
    fs: {
      ...realFsOps,
      writeSynced: (file, data) => {
        if (file.includes("job-1.json")) writes.push((JSON.parse(data) as { state: string }).state);
        return realFsOps.writeSynced(file, data);
      },
    },
  });
  await store.submit(SPEC);
  await store.transition(1, { to: "dispatched", now: 1, message: "dispatched" });
  writes.length = 0;
  // Deferred by a minute, then a change that may not wait: one write of both.
  const started = store.update(
    1,
    (j) => transition(j, { to: "running", now: 2, message: "started" }),
    { deferMs: 60_000 },
  );
  const done = store.transition(1, { to: "succeeded", now: 3, message: "done", result: DONE });
  t.equal((await started).state, "running");
  t.equal((await done).state, "succeeded");
  t.same(writes, ["succeeded"], "one write held both changes");

  // Deferred and alone: written once its time has come.
  await store.submit(SPEC);
  const progress = await store.update(
    2,
    (j) => transition(j, { to: "dispatched", now: 4, message: "dispatched" }),
    { deferMs: 50 },
  );
  t.equal(progress.state, "dispatched");
  t.equal(store.get(2)?.state, "dispatched", "durable once resolved");

  // Deferred when the store closes: written by close().
  const late = store.update(
    2,
    (j) => transition(j, { to: "running", now: 5, message: "started" }),
    { deferMs: 3_600_000 },
  );
  await new Promise<void>((resolve) => setImmediate(resolve)); // applied in memory, not written
  await store.close();
  t.equal((await late).state, "running");
  const reopened = await JobStore.open({ dir });
  t.teardown(() => reopened.close());
  t.equal(reopened.get(2)?.state, "running", "on disk");
});

t.test("recordFinished writes a job only in its finished state, even when drained", async (t) => {
  const dir = tempDir(t);
  const store = await open(t, dir);
  await store.submit(SPEC);
  await store.setDrain(true);
  await t.rejects(store.submit(SPEC), { code: "DRAINED" });
  const seen: string[] = [];
  store.onChange((j) => seen.push(`${j.id}:${j.state}`));
  const finishIt = (q: Job): Job =>
    transition(transition(q, { to: "dispatched", now: 1, message: "d" }), {
      to: "failed",
      now: 2,
      message: "f",
      result: DONE,
    });
  const job = await store.recordFinished(SPEC, finishIt);
  t.equal(job.id, 2);
  t.same(seen, ["2:failed"], "never seen queued");
  t.equal((JSON.parse(readFileSync(path.join(dir, "job-2.json"), "utf8")) as Job).state, "failed");
  await t.rejects(
    store.recordFinished(SPEC, (q) => q),
    { code: "INTERNAL", message: "job 3: a recorded job must be finished" },
  );
  await t.rejects(
    store.recordFinished(SPEC, () => {
      throw new Error("bad shape");
    }),
    /bad shape/,
  );
  await store.setDrain(false);
  t.equal((await store.submit(SPEC)).id, 3, "a refused record used no id");
});

t.test("the attempts recorded by disaster-log imports survive a restart", async (t) => {
  const dir = tempDir(t);
  const store = await JobStore.open({ dir });
  t.same(store.importedAttempts, []);
  const saved = [{ slave: "green-acres", jobId: 4711, attempt: 1, recordedAs: 3 }];
  await store.saveImportedAttempts(saved);
  await store.close();
  const again = await open(t, dir);
  t.same(again.importedAttempts, saved);
  t.same(again.loadReport.quarantined, [], "a file of the jobs directory, not a stray");
});

t.test("a deferred write that falls due while its timer runs is still written", async (t) => {
  // A timer can fire a little before the due time by the store's own clock,
  // and that clock can pass the due time while the timer's work runs. The
  // store's clock is scripted: 0 while the write is deferred by 20 ms, then
  // 19.5 (not due yet) at the first reading after, then 20.5 from then on.
  const script: number[] = [];
  let after = 0;
  const monotonic = (): number => script.shift() ?? after;
  const store = await open(t, tempDir(t), { monotonic });
  const job = await store.submit(SPEC);
  const written = store.update(
    job.id,
    (j) => transition(j, { to: "dispatched", now: 1, message: "d" }),
    { deferMs: 20 },
  );
  await new Promise((resolve) => setImmediate(resolve)); // the write is queued, its timer armed
  script.push(19.5);
  after = 20.5;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    written.then(() => "written"),
    new Promise((resolve) => (timer = setTimeout(() => resolve("still waiting after 2 s"), 2000))),
  ]);
  clearTimeout(timer);
  t.equal(outcome, "written");
  t.equal(store.get(job.id)?.state, "dispatched");
});
