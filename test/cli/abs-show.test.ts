// `abs status` and `abs show ...` as processes, against a scripted admin
// server: the arguments sent, the tables printed, --json, the exit statuses.

import t from "tap";
import { ShapeError } from "../../src/json-shape.js";
import { JobNotFoundError } from "../../src/errors.js";
import {
  parseIdArgs,
  parseNoArgs,
  parseShowJobsArgs,
  parseShowScheduleArgs,
} from "../../src/protocol/admin-api.js";
import { runAbs, STACK_FRAME, scriptedMaster } from "../helpers/abs-cli.js";
import {
  HOUR,
  MINUTE,
  jobDetail,
  jobView,
  scheduleView,
  slaveView,
  statusResult,
} from "../helpers/admin-views.js";

// Each test takes its own `now`: the fixtures' times are 20 s or more
// from a unit boundary, which must hold from there to the last run.

t.test("abs status", async (t) => {
  const now = Date.now();
  const master = await scriptedMaster(t, {
    status: (args) => (parseNoArgs(args), statusResult(now)),
  });
  const run = await runAbs(["-s", master.socketPath, "status"]);
  t.equal(run.code, 0);
  t.equal(run.stderr, "");
  t.match(run.stdout, /^master: {3}backup\.example\.com \(pid 4242\)\n/);
  t.match(run.stdout, /\nstarted: {2}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 \(3h ago\)\n/);
  t.match(
    run.stdout,
    /\nrealm: {4}EXAMPLE\.COM\nauth: {5}kerberos, service principal abs\/backup\.example\.com@EXAMPLE\.COM\n/,
  );
  t.match(run.stdout, /\ndrained: {2}no\nslaves: {3}3 slaves connected\n$/);
  t.same(master.calls, [{ method: "status", args: {} }]);

  const json = await runAbs(["status", "--json", "--socket", master.socketPath]);
  t.equal(json.code, 0);
  t.same(JSON.parse(json.stdout), statusResult(now), "--json prints the result");
});

t.test("abs status of a realm-key master: no service principal", async (t) => {
  const now = Date.now();
  const master = await scriptedMaster(t, {
    status: (args) => (
      parseNoArgs(args),
      statusResult(now, { auth: "realm-key", servicePrincipal: null })
    ),
  });
  const run = await runAbs(["-s", master.socketPath, "status"]);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /\nauth: {5}realm-key\n/);
});

t.test("abs show jobs: the table, one INFO per kind of state", async (t) => {
  const now = Date.now();
  const jobs = [
    jobView(now, { id: 11, state: "succeeded", progress: null, result: "12034 files, 1.2 GiB" }),
    jobView(now, { id: 12 }),
    jobView(now, {
      id: 13,
      slave: "blue-sky",
      state: "queued",
      started: null,
      progress: null,
      waitReason: "slave blue-sky is not connected",
    }),
    jobView(now, {
      id: 1014,
      definition: "db",
      state: "queued",
      attempt: 2,
      started: null,
      progress: null,
      notBefore: now + 15 * MINUTE + 40_000,
    }),
  ];
  const master = await scriptedMaster(t, {
    "show-jobs": (args) => (parseShowJobsArgs(args), { jobs }),
  });
  const run = await runAbs(["-s", master.socketPath, "show", "jobs"]);
  t.equal(run.code, 0);
  t.equal(run.stderr, "");
  t.equal(
    run.stdout,
    [
      "  ID  DEFINITION  SLAVE        STATE      ATTEMPT  RECEIVED  STARTED  INFO",
      "  11  home        green-acres  succeeded        1  15m ago   12m ago  12034 files, 1.2 GiB",
      "  12  home        green-acres  running          1  15m ago   12m ago  1204 files, 1.2 GiB, /home/alice/Mail",
      "  13  home        blue-sky     queued           1  15m ago   -        slave blue-sky is not connected",
      "1014  db          green-acres  queued           2  15m ago   -        retry in 15m",
      "",
    ].join("\n"),
  );
  t.same(master.calls, [{ method: "show-jobs", args: {} }], "no filter: nothing but {}");
});

t.test("abs show jobs: filters are sent as the contract names them", async (t) => {
  const master = await scriptedMaster(t, {
    "show-jobs": (args) => (parseShowJobsArgs(args), { jobs: [] }),
  });
  const run = await runAbs([
    "show",
    "jobs",
    "--all",
    "--state",
    "queued,running",
    "--state",
    "failed",
    "--slave",
    "green-acres",
    "--definition",
    "home",
    "--limit",
    "20",
    "-s",
    master.socketPath,
  ]);
  t.equal(run.code, 0);
  t.equal(run.stdout, "no jobs match\n", "an empty list is a line and success");
  t.same(master.calls, [
    {
      method: "show-jobs",
      args: {
        all: true,
        states: ["queued", "running", "failed"],
        slave: "green-acres",
        definition: "home",
        limit: 20,
      },
    },
  ]);

  const none = await runAbs(["-s", master.socketPath, "show", "jobs"]);
  t.equal(none.stdout, "no unfinished or recently ended jobs (--all lists every job)\n");
  const all = await runAbs(["-s", master.socketPath, "show", "jobs", "--all"]);
  t.equal(all.stdout, "no jobs\n");
});

t.test("abs show jobs --json: the result, compact, on one line", async (t) => {
  const now = Date.now();
  const jobs = Array.from({ length: 3000 }, (_, i) => jobView(now, { id: i + 1 }));
  const master = await scriptedMaster(t, { "show-jobs": () => ({ jobs }) });
  const run = await runAbs(["-s", master.socketPath, "show", "jobs", "--all", "--json"]);
  t.equal(run.code, 0);
  t.equal(run.stdout.indexOf("\n"), run.stdout.length - 1, "one line");
  t.same(JSON.parse(run.stdout), { jobs });
});

t.test("abs show jobs: bad values are refused by name before any call", async (t) => {
  const master = await scriptedMaster(t, { "show-jobs": () => ({ jobs: [] }) });
  const cases: [string[], string][] = [
    [
      ["--state", "runing"],
      `error: option '--state <states>' argument 'runing' is invalid. unknown state "runing" (did you mean "running"?); the states are queued, dispatched, running, canceling, orphaned, succeeded, failed, canceled\n`,
    ],
    [
      ["--limit", "x"],
      "error: option '--limit <n>' argument 'x' is invalid. expected a whole number >= 1\n",
    ],
    [
      ["--slave", ""],
      "error: option '--slave <name>' argument '' is invalid. expected a name, got an empty string\n",
    ],
    [["--frobnicate"], "error: unknown option '--frobnicate'\n"],
    [["extra"], "error: too many arguments for 'jobs'. Expected 0 arguments but got 1.\n"],
  ];
  for (const [args, stderr] of cases) {
    const run = await runAbs(["-s", master.socketPath, "show", "jobs", ...args]);
    t.equal(run.code, 2, args.join(" "));
    t.equal(run.stderr, stderr);
    t.equal(run.stdout, "");
  }
  t.same(master.calls, [], "nothing reached the master");
});

t.test("abs show job ID: fields, times, log; not found is 4", async (t) => {
  const now = Date.now();
  const job = jobDetail(now, {
    state: "failed",
    attempt: 3,
    ended: now - 11 * MINUTE - 20_000,
    progress: null,
    result: "exit status 2",
    resultData: { exitStatus: 2 },
  });
  const master = await scriptedMaster(t, {
    "show-job": (args) => {
      const { id } = parseIdArgs(args);
      if (id !== 12) throw new JobNotFoundError(id);
      return { job };
    },
  });
  const run = await runAbs(["-s", master.socketPath, "show", "job", "12"]);
  t.equal(run.code, 0);
  t.equal(run.stderr, "");
  const iso = (ms: number): string => new Date(ms).toISOString().slice(0, 19) + "+00:00";
  t.equal(
    run.stdout,
    [
      "job:          12",
      "definition:   home",
      "slave:        green-acres",
      "method:       tar",
      'params:       {"sources":["/home"],"level":"full"}',
      "state:        failed",
      "attempt:      3 of 3",
      "priority:     0",
      "max run time: 4h",
      "start by:     no deadline",
      "retries:      2 (backoff 1m, doubling up to 1h)",
      `received:     ${iso(job.received)} (15m ago)`,
      `dispatched:   ${iso(job.dispatched ?? 0)} (12m ago)`,
      `started:      ${iso(job.started ?? 0)} (12m ago)`,
      `ended:        ${iso(job.ended ?? 0)} (11m ago)`,
      "result:       exit status 2",
      'result data:  {"exitStatus":2}',
      "",
      "log:",
      `${iso(job.received)}  info     received: home on green-acres`,
      `${iso(job.received + 1000)}  info     dispatched to green-acres`,
      "",
    ].join("\n"),
  );
  t.same(master.calls, [{ method: "show-job", args: { id: 12 } }]);

  const json = await runAbs(["-s", master.socketPath, "show", "job", "12", "--json"]);
  t.same(JSON.parse(json.stdout), { job });

  const missing = await runAbs(["-s", master.socketPath, "show", "job", "99"]);
  t.equal(missing.code, 4);
  t.equal(missing.stderr, "abs: job 99 does not exist\n");
  t.equal(missing.stdout, "");

  const bad = await runAbs(["-s", master.socketPath, "show", "job", "twelve"]);
  t.equal(bad.code, 2);
  t.equal(
    bad.stderr,
    "error: command-argument value 'twelve' is invalid for argument 'id'. expected a job id (a whole number >= 1)\n",
  );
});

t.test("abs show slaves", async (t) => {
  const now = Date.now();
  const slaves = [
    slaveView(now),
    slaveView(now, {
      name: "blue-sky",
      identity: "host/blue-sky.example.com@EXAMPLE.COM",
      address: "[2001:db8::7]:40022",
      connected: false,
      lastSeen: now - 2 * HOUR - 30_000,
      active: 0,
      maxJobs: 10,
    }),
  ];
  const master = await scriptedMaster(t, {
    "show-slaves": (args) => (parseNoArgs(args), { slaves }),
  });
  const run = await runAbs(["-s", master.socketPath, "show", "slaves"]);
  t.equal(run.code, 0);
  t.equal(
    run.stdout,
    [
      "NAME         CONNECTED  ACTIVE/MAX  ADDRESS              IDENTITY                               LAST SEEN",
      "green-acres  yes               1/2  192.0.2.7:50312      green-acres                            now",
      "blue-sky     no               0/10  [2001:db8::7]:40022  host/blue-sky.example.com@EXAMPLE.COM  2h ago",
      "",
    ].join("\n"),
  );
  const json = await runAbs(["-s", master.socketPath, "show", "slaves", "--json"]);
  t.same(JSON.parse(json.stdout), { slaves });
});

t.test("abs show schedule", async (t) => {
  const now = Date.now();
  // Whole hours ahead, 30 s past, so "in 3h" holds while the test runs.
  const at = (h: number): number => now + h * HOUR + 30_000;
  const local = (ms: number): string => new Date(ms).toISOString().slice(0, 16).replace("T", " ");
  const definitions = [
    scheduleView({ next: [at(3), at(27), at(51), at(75), at(99)] }),
    scheduleView({ definition: "db", slaves: ["db1"], schedule: "*/5 * * * *", enabled: false }),
    scheduleView({ definition: "restore-test", slaves: ["lab"], schedule: null }),
    scheduleView({ definition: "monthly", slaves: ["lab"], schedule: "0 3 1 * *" }),
  ];
  const master = await scriptedMaster(t, {
    "show-schedule": (args) => (parseShowScheduleArgs(args), { definitions }),
  });
  const run = await runAbs(["-s", master.socketPath, "show", "schedule", "--days", "7"]);
  t.equal(run.code, 0);
  const lines = run.stdout.split("\n");
  t.equal(lines[0], "DEFINITION    SLAVES                SCHEDULE     TIMEZONE  NEXT RUNS");
  t.equal(
    lines[1],
    `home          green-acres,blue-sky  0 2 * * *    UTC       ${local(at(3))} (in 3h), ${local(at(27))} (in 1d3h), ${local(at(51))} (in 2d3h), +2 more`,
  );
  t.equal(lines[2], "db            db1                   */5 * * * *  UTC       disabled");
  t.equal(
    lines[3],
    "restore-test  lab                   -            UTC       runs only by abs run",
  );
  t.equal(
    lines[4],
    "monthly       lab                   0 3 1 * *    UTC       none within 7 days",
  );
  t.same(master.calls, [{ method: "show-schedule", args: { days: 7 } }]);

  const bad = await runAbs(["-s", master.socketPath, "show", "schedule", "--days", "400"]);
  t.equal(bad.code, 2);
  t.match(
    bad.stderr,
    /--days <n>' argument '400' is invalid\. expected a whole number of days from 1 to 366/,
  );
});

t.test("an argument the master refuses is bad usage (2), without a stack", async (t) => {
  const master = await scriptedMaster(t, {
    "show-jobs": () => {
      throw new ShapeError("args.slave", "no such thing");
    },
  });
  const run = await runAbs(["-s", master.socketPath, "show", "jobs"]);
  t.equal(run.code, 2);
  t.equal(run.stderr, "abs: show-jobs: args.slave: no such thing\n");
  t.notMatch(run.stderr, STACK_FRAME);
});
