// The records of admin requests in the jobs directory: written with the jobs
// a request makes or changes, read back at startup, and the request's jobs
// written again from its record when the master died in between (a real
// SIGKILL of a child process at the chosen moment).

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import t, { type Test } from "tap";
import { AbsError } from "../../src/errors.js";
import type { Job, NewJob } from "../../src/jobsdir/job.js";
import { JobStore, type JobStoreOptions } from "../../src/jobsdir/job-store.js";
import { type RequestTag, requestDigest } from "../../src/jobsdir/request-records.js";
import { type FsOps, realFsOps } from "../../src/storage/fs-ops.js";
import { CollectingLogger } from "../helpers/log.js";
import { tempDir } from "../helpers/tmp.js";

const SLAVES = Array.from({ length: 25 }, (_, i) => `slave-${i + 1}`);

function specs(definition = "home"): NewJob[] {
  return SLAVES.map((slave) => ({
    definition,
    slave,
    method: "tar",
    params: { sources: ["/home"] },
    priority: 0,
  }));
}

function tag(id: string, args: Record<string, string> = { definition: "home" }): RequestTag {
  return { id, method: "run", digest: requestDigest("run", args) };
}

const runReply = (jobs: Job[]) => ({ jobs: jobs.map((j) => j.id) });

async function open(t: Test, dir: string, opts: Partial<JobStoreOptions> = {}): Promise<JobStore> {
  const store = await JobStore.open({ dir, ...opts });
  t.teardown(() => store.close());
  return store;
}

function stateOnDisk(dir: string, id: number): unknown {
  return (JSON.parse(readFileSync(path.join(dir, `job-${id}.json`), "utf8")) as Job).state;
}

function jobFiles(dir: string): number[] {
  return readdirSync(dir)
    .map((n) => /^job-(\d+)\.json$/.exec(n)?.[1])
    .filter((m): m is string => m !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

t.test(
  "a run's jobs and its record are written together; a reopen answers the repeat",
  async (t) => {
    const dir = tempDir(t);
    const store = await JobStore.open({ dir, clock: () => 7000 });
    const jobs = await store.submitAll(specs(), { tag: tag("req-00000001"), reply: runReply });
    t.same(
      jobs.map((j) => j.id),
      SLAVES.map((_, i) => i + 1),
    );
    t.same(
      jobFiles(dir),
      jobs.map((j) => j.id),
      "every job file is there",
    );
    t.same(store.lookupRequest(tag("req-00000001")).kind, "repeat");
    await store.close();

    const again = await open(t, dir);
    const seen = again.lookupRequest(tag("req-00000001"));
    t.same(seen, {
      kind: "repeat",
      record: { ...tag("req-00000001"), at: 7000, reply: runReply(jobs) },
    });
    t.equal(again.lookupRequest(tag("req-00000001", { definition: "etc" })).kind, "reused");
    t.equal(again.loadReport.restoredFromRequests, 0, "nothing to write again");
    t.notMatch(
      readFileSync(path.join(dir, "requests"), "utf8"),
      /"jobs":\[\{/,
      "the load rewrote the file without the jobs' texts",
    );
  },
);

t.test("a run is all or nothing: refused whole when drained or when not all fit", async (t) => {
  const dir = tempDir(t);
  const store = await open(t, dir, { maxJobs: 30 });
  await store.submitAll(specs().slice(0, 10), { tag: tag("req-00000001"), reply: runReply });
  const full = await store
    .submitAll(specs(), { tag: tag("req-00000002"), reply: runReply })
    .catch((e: unknown) => e);
  t.match(full, { code: "QUEUE_FULL" });
  t.equal(store.size, 10, "none of the 25 was made");
  t.equal(store.lookupRequest(tag("req-00000002")).kind, "new", "and nothing recorded");
  await store.setDrain(true);
  const drained = await store
    .submitAll(specs().slice(0, 5), { tag: tag("req-00000003"), reply: runReply })
    .catch((e: unknown) => e);
  t.match(drained, { code: "DRAINED" });
  t.equal(store.size, 10);
  t.same(jobFiles(dir).length, 10);
});

/**
 * Runs a child process that opens `dir` and does `mode`, killed with
 * SIGKILL by its own file operations at `killAt`: just before or just after
 * the request's record is appended to the requests file.
 */
function crashChild(
  dir: string,
  mode: "run" | "cancel",
  killAt: "before-record" | "after-record" | "mid-renames",
): void {
  const store = new URL("../../src/jobsdir/job-store.js", import.meta.url).href;
  const fsOps = new URL("../../src/storage/fs-ops.js", import.meta.url).href;
  const script = `
    const { JobStore } = await import(${JSON.stringify(store)});
    const { realFsOps } = await import(${JSON.stringify(fsOps)});
    const killAt = ${JSON.stringify(killAt)};
    const fs = {
      ...realFsOps,
      async appendSynced(file, data) {
        if (killAt === "before-record") process.kill(process.pid, "SIGKILL");
        await realFsOps.appendSynced(file, data);
        if (killAt === "after-record") process.kill(process.pid, "SIGKILL");
      },
      firstTwo: [],
      async rename(from, to) {
        if (killAt !== "mid-renames" || !/job-\\d+\\.json$/.test(to)) return realFsOps.rename(from, to);
        // The run's first two job files go in place; at the third, the kill.
        if (fs.firstTwo.length < 2) {
          const done = realFsOps.rename(from, to);
          fs.firstTwo.push(done);
          return done;
        }
        await Promise.all(fs.firstTwo);
        process.kill(process.pid, "SIGKILL");
      },
    };
    const store = await JobStore.open({ dir: ${JSON.stringify(dir)}, fs });
    const specs = ${JSON.stringify(specs("later"))};
    const tag = (id) => ({ id, method: "run", digest: "d-" + id });
    if (${JSON.stringify(mode)} === "run") {
      await store.submitAll(specs, { tag: tag("req-crashed"), reply: (jobs) => ({ jobs: jobs.map((j) => j.id) }) });
    } else {
      await store.update(1, (j) => ({
        ...j, state: "canceled", serial: j.serial + 1,
        timestamps: { ...j.timestamps, ended: 9 },
        result: { message: "canceled by an administrator", data: {} },
        log: [...j.log, { serial: j.serial + 1, time: 9, level: "info", message: "canceled by an administrator" }],
      }), { request: { tag: tag("req-crashed"), reply: (j) => ({ job: j.id }) } });
    }
    process.stdout.write("not killed\\n");
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 60_000,
  });
  if (r.signal !== "SIGKILL") {
    throw new Error(`the child was not killed: ${r.status} ${r.stdout} ${r.stderr}`);
  }
}

/** A directory with one run of 25 jobs already in it, its requests file made. */
async function seeded(t: Test): Promise<string> {
  const dir = tempDir(t);
  const store = await JobStore.open({ dir });
  await store.submitAll(specs(), { tag: tag("req-seeded1"), reply: runReply });
  await store.close();
  return dir;
}

t.test(
  "SIGKILL after a run's record and before its job files: a restart writes them",
  async (t) => {
    const dir = await seeded(t);
    crashChild(dir, "run", "after-record");
    t.same(
      jobFiles(dir),
      SLAVES.map((_, i) => i + 1),
      "the crashed run's job files are not there",
    );
    const logger = new CollectingLogger();
    const store = await open(t, dir, { logger });
    t.equal(store.loadReport.restoredFromRequests, 25);
    t.same(
      jobFiles(dir),
      Array.from({ length: 50 }, (_, i) => i + 1),
      "all 25 written again",
    );
    t.same(
      store.query({ definition: "later" }).map((j) => [j.id, j.slave, j.state]),
      SLAVES.map((s, i) => [26 + i, s, "queued"]),
    );
    t.ok(Number(readFileSync(path.join(dir, "serial"), "utf8")) >= 50, "the serial covers them");
    const seen = store.lookupRequest({ id: "req-crashed", method: "run", digest: "d-req-crashed" });
    t.same(seen.kind === "repeat" ? seen.record.reply : null, {
      jobs: Array.from({ length: 25 }, (_, i) => 26 + i),
    });
    t.match(
      logger.lines.map((l) => l.message).join("\n"),
      /job 26: written again from the record of admin request req-crashed \(run\)/,
    );
    t.equal((await store.submit(specs()[0])).id, 51, "ids go on after them");
  },
);

t.test("SIGKILL in the middle of a run's job renames: a restart has all 25", async (t) => {
  const dir = await seeded(t);
  crashChild(dir, "run", "mid-renames");
  t.equal(jobFiles(dir).length, 27, "the crash left 2 of the 25");
  const store = await open(t, dir);
  t.equal(store.loadReport.restoredFromRequests, 23);
  t.equal(store.query({ definition: "later" }).length, 25);
});

t.test("SIGKILL before a run's record: none of its jobs, no record", async (t) => {
  const dir = await seeded(t);
  crashChild(dir, "run", "before-record");
  const store = await open(t, dir);
  t.equal(store.size, 25, "only the seeded run");
  t.equal(store.loadReport.restoredFromRequests, 0);
  t.equal(
    store.lookupRequest({ id: "req-crashed", method: "run", digest: "d-req-crashed" }).kind,
    "new",
    "a retry does the run",
  );
  t.same(
    jobFiles(dir),
    SLAVES.map((_, i) => i + 1),
  );
});

t.test("SIGKILL after a cancel's record and before its job file: the cancel stands", async (t) => {
  const dir = await seeded(t);
  crashChild(dir, "cancel", "after-record");
  t.equal(stateOnDisk(dir, 1), "queued");
  const store = await open(t, dir);
  t.equal(store.get(1)?.state, "canceled", "written again in its canceled version");
  t.equal(store.loadReport.restoredFromRequests, 1);
  t.equal(stateOnDisk(dir, 1), "canceled");
});

t.test("a job changed after its request was recorded is not rolled back", async (t) => {
  const dir = tempDir(t);
  // Keep the job texts in the file: no rewrite at the second write.
  const store = await JobStore.open({ dir });
  const [job] = await store.submitAll(specs().slice(0, 1), {
    tag: tag("req-00000001"),
    reply: runReply,
  });
  await store.transition(job.id, { to: "dispatched", now: 5, message: "sent" });
  await store.close();
  t.match(readFileSync(path.join(dir, "requests"), "utf8"), /"jobs":\[\{/, "the record carries it");
  const again = await open(t, dir);
  t.equal(again.get(job.id)?.state, "dispatched", "the newer job file wins");
  t.equal(again.loadReport.restoredFromRequests, 0);
});

function failingAppend(how: "enospc" | "half"): FsOps & { fail: boolean } {
  const fs = {
    ...realFsOps,
    fail: true,
    async appendSynced(file: string, data: string) {
      if (fs.fail) {
        fs.fail = false;
        if (how === "half") {
          await realFsOps.appendSynced(file, data.slice(0, data.length >> 1));
        }
        throw Object.assign(new Error("ENOSPC: no space left on device, write"), {
          code: "ENOSPC",
        });
      }
      return realFsOps.appendSynced(file, data);
    },
  };
  return fs;
}

t.test("a record that cannot be written fails its request, which makes no job", async (t) => {
  for (const how of ["enospc", "half"] as const) {
    const dir = await seeded(t);
    const fs = failingAppend(how);
    const logger = new CollectingLogger();
    const store = await JobStore.open({ dir, fs, logger });
    const err = await store
      .submitAll(specs("second"), { tag: tag("req-00000002"), reply: runReply })
      .catch((e: unknown) => e);
    t.ok(err instanceof AbsError && err.code === "JOBSDIR_IO", `${how}: JOBSDIR_IO`);
    t.match((err as Error).message, /cannot record the admin request in .*requests: ENOSPC/);
    t.equal(store.size, 25, `${how}: no job of it in memory`);
    t.same(jobFiles(dir).length, 25, `${how}: no job file of it`);
    t.equal(store.lookupRequest(tag("req-00000002")).kind, "new");
    // The retry works, and its line is not glued to what the failed append left.
    const retried = await store.submitAll(specs("second"), {
      tag: tag("req-00000002"),
      reply: runReply,
    });
    t.equal(retried.length, 25);
    await store.close();
    const again = await open(t, dir, { logger });
    t.equal(again.lookupRequest(tag("req-00000002")).kind, "repeat", `${how}: the retry's record`);
    t.equal(again.size, 50);
    if (how === "half") {
      t.match(
        logger.lines.map((l) => l.message).join("\n"),
        /requests:\d+: unusable/,
        "the torn line is reported",
      );
    }
  }
});

t.test("the requests file is rewritten without job texts once enough was appended", async (t) => {
  const dir = tempDir(t);
  const store = await open(t, dir, { requestsRewriteBytes: 20_000 });
  const file = path.join(dir, "requests");
  let rewrites = 0;
  let previous = 0;
  for (let i = 0; i < 12; i++) {
    await store.submitAll(specs(), {
      tag: tag(`req-${String(i).padStart(8, "0")}`),
      reply: runReply,
    });
    const size = readFileSync(file).length;
    if (size < previous) rewrites += 1;
    previous = size;
  }
  t.ok(rewrites >= 2, `rewritten ${rewrites} times`);
  const text = readFileSync(file, "utf8");
  t.ok(text.length < 20_000 * 3, `the file stays small: ${text.length} bytes`);
  for (let i = 0; i < 12; i++) {
    t.equal(store.lookupRequest(tag(`req-${String(i).padStart(8, "0")}`)).kind, "repeat");
  }
});

t.test(
  "a request recorded alone survives a restart; a hand-damaged file does not stop it",
  async (t) => {
    const dir = tempDir(t);
    const store = await JobStore.open({ dir, clock: () => 42 });
    const drain: RequestTag = { id: "drain-0001", method: "drain", digest: "x" };
    await store.recordRequest(drain, { drained: true });
    await store.recordRequest({ ...drain, id: "drain-0002" }, { drained: false });
    await store.close();
    writeFileSync(
      path.join(dir, "requests"),
      readFileSync(path.join(dir, "requests"), "utf8") + "garbage\n",
    );
    const logger = new CollectingLogger();
    const again = await open(t, dir, { logger });
    t.same(again.lookupRequest(drain), {
      kind: "repeat",
      record: { ...drain, at: 42, reply: { drained: true } },
    });
    t.equal(again.lookupRequest({ ...drain, id: "drain-0002" }).kind, "repeat");
    t.match(logger.lines.map((l) => l.message).join("\n"), /requests:3: unusable \(not valid JSON/);
    t.ok(existsSync(path.join(dir, "requests")));
  },
);
