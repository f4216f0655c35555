// `abs run`, `cancel`, `watch`, `archive`, `autoarchive`, `drain` and
// `reload` as processes, against a scripted admin server.

import t from "tap";
import { AbsError, DrainedError, JobNotFinishedError } from "../../src/errors.js";
import { configErrorFromIssues, makeIssue } from "../../src/config/issues.js";
import type { JsonObject } from "../../src/json-shape.js";
import type { JobDetail, WatchResult } from "../../src/protocol/admin-api.js";
import {
  parseArchiveArgs,
  parseAutoarchiveArgs,
  parseDrainArgs,
  parseIdArgs,
  parseNoArgs,
  parseRunArgs,
  parseWatchArgs,
} from "../../src/protocol/admin-api.js";
import { runAbs, STACK_FRAME, scriptedMaster } from "../helpers/abs-cli.js";
import { jobDetail, jobView } from "../helpers/admin-views.js";

const DAY = 24 * 3600 * 1000;

t.test("abs run: the jobs made, with their slaves", async (t) => {
  const now = Date.now();
  const master = await scriptedMaster(t, {
    run: (args) => {
      const a = parseRunArgs(args);
      if (a.definition === "nosuch") {
        throw new AbsError("DEFINITION_NOT_FOUND", 'no job definition "nosuch" (defined: home)');
      }
      if (a.definition === "late") throw new DrainedError();
      if (a.definition === "urgent") return { jobs: [15] };
      return { jobs: a.slave === null ? [12, 13] : [14] };
    },
    "show-jobs": () => ({
      jobs: [
        jobView(now, { id: 11, slave: "old" }),
        jobView(now, { id: 12, slave: "green-acres", state: "queued" }),
        jobView(now, { id: 13, slave: "blue-sky", state: "queued" }),
        // A job the fake master of disaster mode sent at once.
        jobView(now, { id: 15, slave: "lab", state: "dispatched" }),
      ],
    }),
  });
  const run = await runAbs(["-s", master.socketPath, "run", "home"]);
  t.equal(run.code, 0);
  t.equal(run.stdout, "job 12 queued: home on green-acres\njob 13 queued: home on blue-sky\n");
  t.same(master.calls, [
    { method: "run", args: { definition: "home" } },
    { method: "show-jobs", args: { definition: "home" } },
  ]);

  master.calls.length = 0;
  const one = await runAbs(["-s", master.socketPath, "run", "home", "--slave", "lab"]);
  t.equal(one.stdout, "job 14 queued: home on lab\n");
  t.same(master.calls, [
    { method: "run", args: { definition: "home", slave: "lab" } },
    { method: "show-jobs", args: { definition: "home" } },
  ]);
  const urgent = await runAbs(["-s", master.socketPath, "run", "urgent"]);
  t.equal(urgent.stdout, "job 15 dispatched: urgent on lab\n");

  const json = await runAbs(["-s", master.socketPath, "run", "home", "--json"]);
  t.same(JSON.parse(json.stdout), { jobs: [12, 13] });

  const missing = await runAbs(["-s", master.socketPath, "run", "nosuch"]);
  t.equal(missing.code, 4, "an unknown definition is not found");
  t.equal(missing.stderr, 'abs: no job definition "nosuch" (defined: home)\n');

  const drained = await runAbs(["-s", master.socketPath, "run", "late"]);
  t.equal(drained.code, 5, "refused while drained");
  t.equal(
    drained.stderr,
    "abs: job queue is drained: new jobs are refused until `abs drain off`\n",
  );
});

t.test("abs cancel", async (t) => {
  const now = Date.now();
  const master = await scriptedMaster(t, {
    cancel: (args) => {
      const { id } = parseIdArgs(args);
      if (id === 11) {
        throw new AbsError("ILLEGAL_TRANSITION", "job 11 is already succeeded", {
          context: { jobId: 11 },
        });
      }
      return { job: jobView(now, { id, state: id === 12 ? "canceling" : "canceled" }) };
    },
  });
  const running = await runAbs(["-s", master.socketPath, "cancel", "12"]);
  t.equal(running.code, 0);
  t.equal(
    running.stdout,
    "job 12 canceling: green-acres is asked to stop it (abs watch 12 follows it)\n",
  );
  const queued = await runAbs(["-s", master.socketPath, "cancel", "13"]);
  t.equal(queued.stdout, "job 13 canceled\n");
  const done = await runAbs(["-s", master.socketPath, "cancel", "11"]);
  t.equal(done.code, 5);
  t.equal(done.stderr, "abs: job 11 is already succeeded\n");
  t.same(
    master.calls.map((c) => c.args),
    [{ id: 12 }, { id: 13 }, { id: 11 }],
  );
});

/** A watch script answering `answers` in turn, one per call. */
function sequence(answers: WatchResult[]): (args: JsonObject) => WatchResult {
  let next = 0;
  return (args) => {
    parseWatchArgs(args);
    const answer = answers[Math.min(next++, answers.length - 1)];
    if (answer === undefined) throw new Error("no answers");
    return answer;
  };
}

function finished(now: number, state: JobDetail["state"], result: string): JobDetail {
  const job = jobDetail(now, { state, progress: null, result, ended: now, serial: 7 });
  job.log.push({ serial: 3, time: now, level: "info", message: `${state}: ${result}` });
  return job;
}

t.test("abs watch: log lines and progress until the job finishes; exit 0", async (t) => {
  const now = Date.now();
  const running = jobDetail(now);
  const done = finished(now, "succeeded", "12034 files, 1.2 GiB");
  const master = await scriptedMaster(t, {
    watch: sequence([
      { changed: true, job: running },
      { changed: false, job: running },
      { changed: true, job: done },
    ]),
  });
  const run = await runAbs(["-s", master.socketPath, "watch", "12"]);
  t.equal(run.code, 0);
  t.equal(run.stderr, "");
  const iso = (ms: number): string => new Date(ms).toISOString().slice(0, 19) + "+00:00";
  t.equal(
    run.stdout,
    [
      "job 12: home on green-acres",
      `${iso(running.received)}  info     received: home on green-acres`,
      `${iso(running.received + 1000)}  info     dispatched to green-acres`,
      "progress: 1204 files, 1.2 GiB, /home/alice/Mail",
      `${iso(now)}  info     succeeded: 12034 files, 1.2 GiB`,
      "job 12 succeeded: 12034 files, 1.2 GiB",
      "",
    ].join("\n"),
  );
  t.same(
    master.calls.map((c) => c.args),
    [
      { id: 12, serial: 0, timeoutMs: 30000 },
      { id: 12, serial: 5, timeoutMs: 30000 },
      { id: 12, serial: 5, timeoutMs: 30000 },
    ],
    "each call passes the last serial seen",
  );
});

t.test("abs watch: the outcome is the exit status", async (t) => {
  const now = Date.now();
  const cases: [JobDetail["state"], string, number][] = [
    ["succeeded", "ok", 0],
    ["failed", "exit status 2", 10],
    ["canceled", "canceled by an administrator", 11],
  ];
  for (const [state, result, code] of cases) {
    const master = await scriptedMaster(t, {
      watch: sequence([{ changed: true, job: finished(now, state, result) }]),
    });
    const run = await runAbs(["-s", master.socketPath, "watch", "12"]);
    t.equal(run.code, code, state);
    t.match(run.stdout, new RegExp(`\\njob 12 ${state}: ${result}\\n$`));
    t.equal(master.calls.length, 1, "a finished job needs one call");
  }
});

t.test("abs watch --json: one object per change", async (t) => {
  const now = Date.now();
  const running = jobDetail(now);
  const done = finished(now, "failed", "exit status 2");
  const master = await scriptedMaster(t, {
    watch: sequence([
      { changed: true, job: running },
      { changed: false, job: running },
      { changed: true, job: done },
    ]),
  });
  const run = await runAbs(["-s", master.socketPath, "watch", "12", "--json"]);
  t.equal(run.code, 10);
  const lines = run.stdout.trimEnd().split("\n");
  t.same(
    lines.map((l) => JSON.parse(l) as unknown),
    [running, done],
    "the unchanged answer prints nothing",
  );
});

t.test("abs watch: a job that does not exist", async (t) => {
  const master = await scriptedMaster(t, {
    watch: (args) => {
      throw new AbsError("JOB_NOT_FOUND", `job ${parseWatchArgs(args).id} does not exist`);
    },
  });
  const run = await runAbs(["-s", master.socketPath, "watch", "99"]);
  t.equal(run.code, 4);
  t.equal(run.stderr, "abs: job 99 does not exist\n");
});

t.test("abs archive and abs autoarchive", async (t) => {
  let batches = [
    { archived: 500, remaining: 120 },
    { archived: 120, remaining: 0 },
  ];
  const master = await scriptedMaster(t, {
    archive: (args) => {
      const { ids } = parseArchiveArgs(args);
      if (ids.includes(13)) throw new JobNotFinishedError(13, "running");
      return { archived: ids.length };
    },
    autoarchive: (args) => {
      parseAutoarchiveArgs(args);
      const [batch, ...rest] = batches;
      batches = rest;
      return batch ?? { archived: 0, remaining: 0 };
    },
  });
  const some = await runAbs(["-s", master.socketPath, "archive", "10", "11", "12"]);
  t.equal(some.code, 0);
  t.equal(some.stdout, "archived 3 jobs\n");
  const running = await runAbs(["-s", master.socketPath, "archive", "13"]);
  t.equal(running.code, 5);
  t.equal(running.stderr, "abs: job 13 is running; only finished jobs can be archived\n");
  const none = await runAbs(["-s", master.socketPath, "archive"]);
  t.equal(none.code, 2);
  t.equal(none.stderr, "error: missing required argument 'id'\n");

  const auto = await runAbs(["-s", master.socketPath, "autoarchive", "30d"]);
  t.equal(auto.code, 0);
  t.equal(auto.stdout, "archived 620 jobs that ended more than 30d ago\n");
  t.same(
    master.calls.map((c) => [c.method, c.args]),
    [
      ["archive", { ids: [10, 11, 12] }],
      ["archive", { ids: [13] }],
      ["autoarchive", { ageMs: 30 * DAY }],
      ["autoarchive", { ageMs: 30 * DAY }],
    ],
    "autoarchive calls again while jobs remain",
  );

  batches = [{ archived: 0, remaining: 7 }];
  const stuck = await runAbs(["-s", master.socketPath, "autoarchive", "12h"]);
  t.equal(stuck.code, 0);
  t.equal(
    stuck.stdout,
    "archived 0 jobs that ended more than 12h ago; 7 more could not be archived now\n",
  );

  const bad = await runAbs(["-s", master.socketPath, "autoarchive", "5x"]);
  t.equal(bad.code, 2);
  t.equal(
    bad.stderr,
    "error: command-argument value '5x' is invalid for argument 'age'. expected a duration such as 90s, 15m, 2h, 1d or 1h30m\n",
  );
});

t.test("abs drain on|off", async (t) => {
  const master = await scriptedMaster(t, {
    drain: (args) => ({ drained: parseDrainArgs(args).on }),
  });
  const on = await runAbs(["-s", master.socketPath, "drain", "on"]);
  t.equal(on.stdout, "drained: new jobs are refused until abs drain off\n");
  const off = await runAbs(["-s", master.socketPath, "drain", "off"]);
  t.equal(off.stdout, "not drained: new jobs are accepted\n");
  t.same(
    master.calls.map((c) => c.args),
    [{ on: true }, { on: false }],
  );
  const bad = await runAbs(["-s", master.socketPath, "drain", "maybe"]);
  t.equal(bad.code, 2);
  t.equal(
    bad.stderr,
    `error: command-argument value 'maybe' is invalid for argument 'on|off'. expected "on" or "off"\n`,
  );
});

t.test("abs reload: the summary, or every issue of a bad config (6)", async (t) => {
  let good = true;
  const master = await scriptedMaster(t, {
    reload: (args) => {
      parseNoArgs(args);
      if (good) return { summary: "reloaded /etc/abs/master.conf: 3 job definitions" };
      throw configErrorFromIssues([
        makeIssue(
          "/etc/abs/jobs.d/home.conf",
          7,
          "schedule",
          "0 25 * * *",
          "hour 25 is out of range 0-23",
        ),
        makeIssue("/etc/abs/jobs.d/db.conf", 2, "slaves", "", "expected at least one slave"),
      ]);
    },
  });
  const ok = await runAbs(["-s", master.socketPath, "reload"]);
  t.equal(ok.code, 0);
  t.equal(ok.stdout, "reloaded /etc/abs/master.conf: 3 job definitions\n");
  good = false;
  const bad = await runAbs(["-s", master.socketPath, "reload"]);
  t.equal(bad.code, 6);
  t.equal(
    bad.stderr,
    'abs: /etc/abs/jobs.d/home.conf:7: schedule "0 25 * * *": hour 25 is out of range 0-23\n' +
      '/etc/abs/jobs.d/db.conf:2: slaves "": expected at least one slave\n',
  );
  t.notMatch(bad.stderr, STACK_FRAME);
});
