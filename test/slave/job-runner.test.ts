// The job runner with a real state directory and methods the test controls:
// the order of record and message, repeats, refusals, cancel, max run time,
// acks, a stop, and recovery after a crash. Every wait is on an event.

import { readdirSync } from "node:fs";
import path from "node:path";
import t, { type Test } from "tap";
import { METHODS } from "../../src/config/job-definition.js";
import type { JsonObject } from "../../src/json-shape.js";
import { type LogMeta, silentLogger } from "../../src/log.js";
import type { DispatchMessage, SlaveToMasterMessage } from "../../src/protocol/slave-messages.js";
import { JobRunner, type RunnerPort } from "../../src/slave/job-runner.js";
import {
  type MethodContext,
  type MethodResult,
  canceledError,
} from "../../src/slave/methods/method-context.js";
import type { RunAllowlist } from "../../src/slave/methods/allowed-programs.js";
import { StateDir } from "../../src/slave/state-dir.js";
import type { FsOps } from "../../src/storage/fs-ops.js";
import { heldWrites } from "../helpers/held-writes.js";
import { CollectingLogger } from "../helpers/log.js";
import { tempDir } from "../helpers/tmp.js";

/** Keeps the runner's log lines, and wakes the harness at each (the runner logs "succeeded" once the result is on disk). */
class WakingLogger extends CollectingLogger {
  onLine: () => void = () => undefined;
  override info(message: string, meta?: LogMeta): void {
    super.info(message, meta);
    this.onLine();
  }
}

/** A method the test ends by hand; it stops when its signal is aborted. */
interface Held {
  ctx: MethodContext;
  finish(r: MethodResult): void;
}

class Harness {
  readonly sent: SlaveToMasterMessage[] = [];
  readonly held: Held[] = [];
  private waiters: (() => void)[] = [];
  readonly port: RunnerPort = {
    send: (m) => {
      this.sent.push(m);
      this.wake();
      return true;
    },
  };

  constructor(
    readonly runner: JobRunner,
    readonly dir: string,
    readonly log: WakingLogger,
  ) {
    log.onLine = () => this.wake();
  }

  wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when `pred` holds (checked after every message and method start). */
  async until(pred: () => boolean): Promise<void> {
    while (!pred()) await new Promise<void>((r) => this.waiters.push(r));
  }

  async message<T extends SlaveToMasterMessage["type"]>(
    type: T,
    jobId: number,
  ): Promise<Extract<SlaveToMasterMessage, { type: T }>> {
    const find = () => this.sent.find((m) => m.type === type && "jobId" in m && m.jobId === jobId);
    await this.until(() => find() !== undefined);
    return find() as Extract<SlaveToMasterMessage, { type: T }>;
  }

  records(): string[] {
    return readdirSync(this.dir)
      .filter((n) => /^(run|result)-/.test(n))
      .sort();
  }
}

/** Every method, and /bin/true, the program of dispatch(). */
const ALL_METHODS: RunAllowlist = {
  methods: METHODS,
  programs: ["/bin/true"],
  file: "slave.conf",
};

async function harness(
  t: Test,
  opts: {
    maxJobs?: number;
    allowed?: string[];
    allowedToRun?: RunAllowlist;
    whenIdle?: () => void;
    idleWithoutAcksMs?: number;
    fs?: FsOps;
  } = {},
): Promise<Harness> {
  const dir = path.join(tempDir(t), "state");
  const { stateDir } = await StateDir.open(dir, { logger: silentLogger, fs: opts.fs });
  t.teardown(() => stateDir.close());
  // The method reports to the harness made below, before any job runs.
  const box: { h?: Harness } = {};
  const run = (_m: string, _p: JsonObject, ctx: MethodContext): Promise<MethodResult> =>
    new Promise((resolve, reject) => {
      ctx.signal.addEventListener("abort", () => reject(canceledError(ctx.signal, "test method")));
      box.h?.held.push({ ctx, finish: resolve });
      box.h?.wake();
    });
  const log = new WakingLogger();
  const runner = new JobRunner({
    name: "green-acres",
    stateDir,
    logger: log,
    limits: {
      maxJobs: opts.maxJobs ?? 2,
      allowedPaths: opts.allowed ?? ["/"],
      allowedToRun: opts.allowedToRun ?? ALL_METHODS,
    },
    workDir: dir,
    run,
    whenIdle: opts.whenIdle,
    idleWithoutAcksMs: opts.idleWithoutAcksMs,
  });
  const h = new Harness(runner, dir, log);
  box.h = h;
  runner.attach(h.port);
  return h;
}

function dispatch(jobId: number, extra: Partial<DispatchMessage> = {}): DispatchMessage {
  return {
    type: "dispatch",
    jobId,
    attempt: 1,
    definition: "nightly",
    method: "command",
    params: { program: "/bin/true" },
    maxRunTimeMs: null,
    ...extra,
  };
}

t.test(
  "a job is recorded before `started`; its result is sent as it is written, and kept until the ack",
  async (t) => {
    const h = await harness(t);
    h.runner.dispatch(dispatch(1));
    await h.message("started", 1);
    t.same(h.records(), ["run-1-1.json"], "recorded before started was sent");
    t.same(h.runner.reports().running, [
      { jobId: 1, attempt: 1, state: "running", progress: null },
    ]);
    await h.until(() => h.held.length === 1);
    h.held[0]?.ctx.onProgress({ files: 3, bytes: 4096, path: "/home/a" });
    const progress = await h.message("progress", 1);
    t.same(progress, {
      type: "progress",
      jobId: 1,
      attempt: 1,
      files: 3,
      bytes: 4096,
      path: "/home/a",
    });

    h.held[0]?.finish({ message: "done", data: { n: 1 } });
    const result = await h.message("result", 1);
    t.same(result, {
      type: "result",
      jobId: 1,
      attempt: 1,
      outcome: "succeeded",
      message: "done",
      data: { n: 1 },
    });
    // Logged once the result is on disk.
    await h.until(() => h.log.messages("info").includes("job 1: succeeded: done"));
    t.same(h.records(), ["result-1-1.json"], "the result is on disk, the run record gone");
    t.same(h.runner.reports(), {
      running: [],
      results: [{ jobId: 1, attempt: 1, outcome: "succeeded", message: "done", data: { n: 1 } }],
    });
    await h.runner.ack({ jobId: 1, attempt: 1 });
    t.same(h.records(), [], "forgotten once acknowledged");
    await h.runner.ack({ jobId: 1, attempt: 1 }); // a repeat changes nothing
    t.same(h.runner.reports(), { running: [], results: [] });
  },
);

t.test(
  "repeats: a dispatch of a running attempt, of a finished one, a cancel of a finished one",
  async (t) => {
    const h = await harness(t);
    h.runner.dispatch(dispatch(1));
    await h.until(() => h.held.length === 1);
    h.runner.dispatch(dispatch(1));
    await h.until(() => h.sent.filter((m) => m.type === "started").length === 2);
    t.equal(h.held.length, 1, "the method runs once");
    h.held[0]?.finish({ message: "done", data: {} });
    await h.message("result", 1);
    h.runner.dispatch(dispatch(1));
    await h.until(() => h.sent.filter((m) => m.type === "result").length === 2);
    h.runner.cancel({ type: "cancel", jobId: 1, attempt: 1 });
    await h.until(() => h.sent.filter((m) => m.type === "result").length === 3);
    t.same(
      h.sent.filter((m) => m.type === "result").map((m) => m.type === "result" && m.outcome),
      ["succeeded", "succeeded", "succeeded"],
      "the same result each time",
    );
    t.equal(h.held.length, 1, "never run again");
  },
);

t.test("refusals: the limit, an unknown method, bad parameters, a path outside", async (t) => {
  const data = tempDir(t);
  const h = await harness(t, { maxJobs: 1, allowed: [data] });
  h.runner.dispatch(dispatch(1));
  await h.until(() => h.held.length === 1);
  h.runner.dispatch(dispatch(2));
  t.same(await h.message("reject", 2), {
    type: "reject",
    jobId: 2,
    attempt: 1,
    reason: "green-acres is at its limit 1/1",
  });
  h.held[0]?.finish({ message: "done", data: {} });
  await h.message("result", 1);
  h.runner.dispatch(dispatch(3, { method: "ftp" }));
  t.equal(
    (await h.message("reject", 3)).reason,
    'unknown method "ftp"; this slave runs tar, restore, verify, command',
  );
  h.runner.dispatch(dispatch(4, { method: "tar", params: { sources: "/x" } }));
  t.equal(
    (await h.message("reject", 4)).reason,
    'tar: params.sources: expected an array, got "/x"',
  );
  h.runner.dispatch(
    dispatch(5, { method: "tar", params: { sources: ["/etc"], destination: `${data}/b` } }),
  );
  t.equal(
    (await h.message("reject", 5)).reason,
    `tar.sources "/etc" is outside the slave's allowed paths: ${data}`,
  );
  t.notOk(
    h.sent.some((m) => m.type === "started" && m.jobId > 1),
    "none of them started",
  );
  t.same(h.records(), ["result-1-1.json"], "and none was recorded");
});

t.test("refusals: a method or a program the slave does not allow", async (t) => {
  const h = await harness(t, {
    allowedToRun: {
      methods: ["tar", "command"],
      programs: ["/bin/true"],
      file: "/etc/abs/slave.conf",
    },
  });
  h.runner.dispatch(dispatch(1, { method: "restore", params: { source: "/a", target: "/b" } }));
  t.equal(
    (await h.message("reject", 1)).reason,
    'method "restore" is not in allowed_methods of /etc/abs/slave.conf: tar, command',
  );
  h.runner.dispatch(dispatch(2, { params: { program: "/bin/sh", args: ["-c", "id"] } }));
  t.equal(
    (await h.message("reject", 2)).reason,
    'command.program "/bin/sh" is not in allowed_programs of /etc/abs/slave.conf: /bin/true',
  );
  h.runner.dispatch(
    dispatch(3, { params: { program: "/bin/true", env: { LD_PRELOAD: "/tmp/x.so" } } }),
  );
  t.equal(
    (await h.message("reject", 3)).reason,
    "command.env.LD_PRELOAD is refused: it would make the program load or run other code",
  );
  t.equal(h.held.length, 0, "the method never ran");
  t.same(h.records(), [], "none was recorded");

  // A reload that takes command away applies to the next dispatch.
  h.runner.setLimits({
    maxJobs: 2,
    allowedPaths: ["/"],
    allowedToRun: { methods: ["tar"], programs: [], file: "/etc/abs/slave.conf" },
  });
  h.runner.dispatch(dispatch(4));
  t.match((await h.message("reject", 4)).reason, /^method "command" is not in allowed_methods/);
});

t.test("cancel, a cancel of what does not run here, the max run time", async (t) => {
  const h = await harness(t);
  h.runner.dispatch(dispatch(1));
  await h.until(() => h.held.length === 1);
  h.runner.cancel({ type: "cancel", jobId: 1, attempt: 1 });
  t.same(
    h.runner.reports().running.map((r) => r.state),
    ["canceling"],
  );
  const canceled = await h.message("result", 1);
  t.equal(canceled.outcome, "canceled");
  t.equal(canceled.message, "test method canceled: canceled by the master");

  h.runner.cancel({ type: "cancel", jobId: 7, attempt: 3 });
  const unknown = await h.message("result", 7);
  t.same(
    [unknown.outcome, unknown.message],
    ["canceled", "canceled: green-acres does not run job 7 attempt 3"],
  );

  h.runner.dispatch(dispatch(2, { maxRunTimeMs: 50 }));
  const timedOut = await h.message("result", 2);
  t.equal(timedOut.outcome, "canceled", "the same outcome as the master's own max-run-time cancel");
  t.equal(timedOut.message, "test method canceled: stopped at its max run time of 50ms");
});

t.test("stopAll fails running jobs with the reason and refuses new ones", async (t) => {
  const h = await harness(t);
  h.runner.dispatch(dispatch(1));
  h.runner.dispatch(dispatch(2));
  await h.until(() => h.held.length === 2);
  await h.runner.stopAll("slave stopped (SIGTERM)");
  // Written in parallel: in any order.
  const results = h.sent
    .filter((m) => m.type === "result")
    .sort((a, b) => (a.type === "result" && b.type === "result" ? a.jobId - b.jobId : 0));
  t.same(
    results.map((m) => m.type === "result" && [m.jobId, m.outcome, m.message]),
    [
      [1, "failed", "test method canceled: slave stopped (SIGTERM)"],
      [2, "failed", "test method canceled: slave stopped (SIGTERM)"],
    ],
  );
  t.same(h.records(), ["result-1-1.json", "result-2-1.json"]);
  h.runner.dispatch(dispatch(3));
  t.equal((await h.message("reject", 3)).reason, "the slave is stopping");
});

t.test(
  "recover: jobs that died with the previous process fail; unacknowledged results stay",
  async (t) => {
    const dir = path.join(tempDir(t), "state");
    const first = await StateDir.open(dir, { logger: silentLogger });
    await first.stateDir.writeRun({
      jobId: 5,
      attempt: 1,
      definition: "nightly",
      method: "command",
      params: {},
      maxRunTimeMs: null,
      startedAt: Date.UTC(2026, 10, 23, 2, 0),
      pid: 777,
    });
    await first.stateDir.writeResult({
      jobId: 6,
      attempt: 2,
      outcome: "succeeded",
      message: "ok",
      data: {},
    });
    await first.stateDir.close();

    const { stateDir, contents } = await StateDir.open(dir, { logger: silentLogger });
    t.teardown(() => stateDir.close());
    const runner = new JobRunner({
      name: "green-acres",
      stateDir,
      logger: silentLogger,
      limits: { maxJobs: 2, allowedPaths: ["/"], allowedToRun: ALL_METHODS },
      workDir: dir,
    });
    await runner.recover(contents);
    t.same(runner.reports(), {
      running: [],
      results: [
        { jobId: 6, attempt: 2, outcome: "succeeded", message: "ok", data: {} },
        {
          jobId: 5,
          attempt: 1,
          outcome: "failed",
          message:
            "slave restarted: the job was running when abs-slave pid 777 stopped (started 2026-11-23T02:00:00.000Z)",
          data: { code: "SLAVE_RESTARTED" },
        },
      ],
    });
    t.same(
      readdirSync(dir)
        .filter((n) => /^(run|result)-/.test(n))
        .sort(),
      ["result-5-1.json", "result-6-2.json"],
    );
  },
);

/**
 * A harness whose idle calls record the state directory's records at that
 * moment (`atIdle`; `nextIdle` resolves at the next one), with jobs 1 and 2
 * running, started one after the other so that held[0] is job 1.
 */
async function twoJobsWatchedForIdle(
  t: Test,
): Promise<{ h: Harness; atIdle: string[][]; nextIdle: () => Promise<void> }> {
  const atIdle: string[][] = [];
  let wake: () => void = () => undefined;
  const h = await harness(t, {
    whenIdle: () => {
      atIdle.push(h.records());
      wake();
    },
  });
  h.runner.dispatch(dispatch(1));
  await h.until(() => h.held.length === 1);
  h.runner.dispatch(dispatch(2));
  await h.until(() => h.held.length === 2);
  const nextIdle = () => new Promise<void>((resolve) => (wake = resolve));
  return { h, atIdle, nextIdle };
}

t.test(
  "once an ack leaves no job running and no result unacknowledged, the runner says it is idle (the slave collects garbage then)",
  async (t) => {
    const { h, atIdle, nextIdle } = await twoJobsWatchedForIdle(t);
    h.held[0]?.finish({ message: "one", data: {} });
    await h.message("result", 1);
    // The ack resolves once the result's write is done and its record removed.
    await h.runner.ack({ jobId: 1, attempt: 1 });
    t.same(atIdle, [], "not while another job runs");
    const idle = nextIdle();
    h.held[1]?.finish({ message: "two", data: {} });
    await h.message("result", 2);
    await h.runner.ack({ jobId: 2, attempt: 1 });
    await idle;
    // Not as the result was written: the master was storing it then.
    t.same(atIdle, [[]], "once, when the last result's ack had removed its record");
  },
);

t.test("no idle call while a result waits for its ack, even with no job running", async (t) => {
  const { h, atIdle, nextIdle } = await twoJobsWatchedForIdle(t);
  h.held[0]?.finish({ message: "one", data: {} });
  h.held[1]?.finish({ message: "two", data: {} });
  await h.message("result", 1);
  await h.message("result", 2);
  await h.runner.ack({ jobId: 1, attempt: 1 });
  t.same(atIdle, [], "job 2's result is not acknowledged yet");
  const idle = nextIdle();
  await h.runner.ack({ jobId: 2, attempt: 1 });
  await idle;
  t.same(atIdle, [[]], "idle at the second ack, once");
});

t.test(
  "with results never acknowledged (a master that cannot store them), idle all the same once no job has run for a while",
  async (t) => {
    // The idle timer does not hold the process: this does, meanwhile.
    const alive = setInterval(() => undefined, 1000);
    t.teardown(() => clearInterval(alive));
    let idleAt = 0;
    let wake: () => void = () => undefined;
    const idle = new Promise<void>((resolve) => (wake = resolve));
    const h = await harness(t, {
      idleWithoutAcksMs: 200,
      whenIdle: () => {
        idleAt = performance.now();
        wake();
      },
    });
    h.runner.dispatch(dispatch(1));
    await h.until(() => h.held.length === 1);
    h.held[0]?.finish({ message: "one", data: {} });
    await h.message("result", 1);
    const sentAt = performance.now();
    await idle;
    t.ok(idleAt - sentAt >= 100, `idle ${Math.round(idleAt - sentAt)} ms after the result, no ack`);
    t.same(h.runner.reports().results.length, 1, "the result is still kept for the master");
  },
);

t.test(
  "a result is sent while its write is held; the ack and stopAll wait for the write, and a stopping runner is never called idle",
  async (t) => {
    const writes = heldWrites((file) => path.basename(file).includes("result-"));
    let idle = 0;
    const h = await harness(t, { fs: writes.fs, whenIdle: () => idle++ });
    h.runner.dispatch(dispatch(1));
    await h.until(() => h.held.length === 1);
    h.held[0]?.finish({ message: "done", data: {} });
    await h.message("result", 1);
    await writes.held;
    t.same(h.records(), ["run-1-1.json"], "sent, not yet written");
    let acked = false;
    const ack = h.runner.ack({ jobId: 1, attempt: 1 }).then(() => (acked = true));
    let stopped = false;
    const stop = h.runner.stopAll("slave stopped (test)").then(() => (stopped = true));
    await new Promise<void>((resolve) => setImmediate(resolve));
    t.same([acked, stopped, idle], [false, false, 0], "all wait for the write");
    writes.release();
    await Promise.all([ack, stop]);
    t.same(h.records(), [], "written, then removed for the ack: nothing left");
    t.equal(idle, 0, "no idle call for a runner that is stopping");
  },
);
