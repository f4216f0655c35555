import t from "tap";
import { AbsError, JobFileError } from "../../src/errors.js";
import type { Job } from "../../src/jobsdir/job.js";
import { parseJobFile, serializeJob } from "../../src/jobsdir/job-file.js";

const JOB: Job = {
  id: 12,
  definition: "home",
  slave: "green-acres",
  method: "tar",
  params: { sources: ["/home"], level: "full" },
  state: "succeeded",
  priority: 5,
  attempt: 2,
  timestamps: { received: 1000, dispatched: 1100, started: 1200, ended: 1300, notBefore: null },
  progress: { files: 3, bytes: 4096, path: null },
  result: { message: "3 files", data: { archive: "home-1.tar" } },
  policy: {
    maxRunTimeMs: 7_200_000,
    startBy: 4000,
    retries: 2,
    retryBackoffMs: 60_000,
    retryBackoffMaxMs: 3_600_000,
  },
  log: [
    { serial: 1, time: 1000, level: "info", message: "received" },
    { serial: 2, time: 1300, level: "info", message: "succeeded" },
  ],
  serial: 6,
};

t.test("a job survives a round trip", (t) => {
  const text = serializeJob(JOB);
  t.ok(text.endsWith("\n"));
  t.same(parseJobFile(text, "job-12.json", 12), JOB);
  t.end();
});

t.test("every truncation of a job file is refused with a JobFileError", (t) => {
  const text = serializeJob(JOB);
  for (let n = 0; n < text.length - 1; n++) {
    // The last character is the newline: without it the JSON is still whole.
    try {
      parseJobFile(text.slice(0, n), "job-12.json", 12);
      t.fail(`truncated at ${n} was accepted`);
    } catch (err) {
      if (!(err instanceof JobFileError)) {
        t.fail(`truncated at ${n}: ${String(err)}`);
        continue;
      }
      t.equal(err.code, "BAD_JOB_FILE");
      t.equal(err.context.file, "job-12.json");
    }
  }
  t.throws(() => parseJobFile("", "job-12.json", 12), {
    message: "job-12.json: the file is empty",
  });
  t.end();
});

t.test("content naming another id is refused", (t) => {
  t.throws(() => parseJobFile(serializeJob(JOB), "job-13.json", 13), {
    code: "BAD_JOB_FILE",
    message: "job-13.json: holds job 12, but its name says job 13",
  });
  t.end();
});

t.test("each field of the wrong type is named", (t) => {
  const cases: [string, (j: Record<string, unknown>) => void, string][] = [
    ["id", (j) => (j.id = "12"), 'id: expected an integer >= 1, got "12"'],
    ["id zero", (j) => (j.id = 0), "id: expected an integer >= 1, got 0"],
    ["definition", (j) => (j.definition = ""), 'definition: expected a non-empty string, got ""'],
    ["slave", (j) => delete j.slave, "slave: expected a string, got nothing"],
    ["params", (j) => (j.params = []), "params: expected an object, got []"],
    [
      "state",
      (j) => (j.state = "done"),
      'state: expected one of queued, dispatched, running, canceling, orphaned, succeeded, failed, canceled, got "done"',
    ],
    ["priority", (j) => (j.priority = 1.5), "priority: expected an integer, got 1.5"],
    ["attempt", (j) => (j.attempt = 0), "attempt: expected an integer >= 1, got 0"],
    ["timestamps", (j) => (j.timestamps = null), "timestamps: expected an object, got null"],
    [
      "timestamps.ended",
      (j) => ((j.timestamps as Record<string, unknown>).ended = "now"),
      'timestamps.ended: expected an integer >= 0, got "now"',
    ],
    [
      "progress.files",
      (j) => (j.progress = { files: -1, bytes: 0, path: null }),
      "progress.files: expected an integer >= 0, got -1",
    ],
    [
      "result.data",
      (j) => (j.result = { message: "x", data: "y" }),
      'result.data: expected an object, got "y"',
    ],
    ["log", (j) => (j.log = {}), "log: expected an array, got {}"],
    [
      "log[1].level",
      (j) => ((j.log as Record<string, unknown>[])[1].level = "fatal"),
      'log[1].level: expected one of info, warning, error, got "fatal"',
    ],
    ["serial", (j) => (j.serial = null), "serial: expected an integer >= 0, got null"],
    ["unknown field", (j) => (j.colour = "red"), "colour: unknown field"],
  ];
  for (const [name, spoil, why] of cases) {
    const value = JSON.parse(serializeJob(JOB)) as Record<string, unknown>;
    spoil(value);
    t.throws(
      () => parseJobFile(JSON.stringify(value), "job-12.json", 12),
      { name: "JobFileError", message: `job-12.json: ${why}` },
      name,
    );
  }
  t.end();
});

t.test("foreign JSON is refused, never thrown past the API", (t) => {
  for (const text of [
    "[]",
    "null",
    "42",
    '"job"',
    "{}",
    '{"id": 12}',
    "\u0000\u0001",
    "{".repeat(100000),
  ]) {
    try {
      parseJobFile(text, "job-12.json", 12);
      t.fail(`accepted ${text.slice(0, 20)}`);
    } catch (err) {
      t.ok(
        err instanceof AbsError && err.code === "BAD_JOB_FILE",
        `refused ${JSON.stringify(text.slice(0, 10))}`,
      );
    }
  }
  t.end();
});
