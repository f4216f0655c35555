// What a running job is expected to come to: the newest earlier succeeded
// run of its definition on its slave, with the same method; from its last
// progress, else from its result data. Over an in-memory list of jobs.

import t from "tap";
import type { Job } from "../../src/jobsdir/job.js";
import { type JobQuery, selectJobs } from "../../src/jobsdir/job-query.js";
import { expectedTotals, totalsOf } from "../../src/master/progress-estimate.js";
import { sampleJob } from "../helpers/job.js";

/** A store of `jobs` (in id order), recording the queries it answers. */
function source(jobs: Job[]): { query(q: JobQuery): Job[]; queries: JobQuery[] } {
  const queries: JobQuery[] = [];
  return {
    queries,
    query(q) {
      queries.push(q);
      return selectJobs(jobs, q);
    },
  };
}

function succeeded(id: number, files: number, bytes: number, over: Partial<Job> = {}): Job {
  return sampleJob({
    id,
    state: "succeeded",
    progress: { files, bytes, path: "/home/last" },
    result: { message: "done", data: {} },
    ...over,
  });
}

const RUNNING = sampleJob({ id: 10, state: "running" });

t.test("the newest earlier succeeded run of the definition on the slave", (t) => {
  const jobs = source([
    succeeded(1, 100, 1000),
    succeeded(2, 200, 2000),
    sampleJob({ id: 3, state: "failed", progress: { files: 5, bytes: 5, path: null } }),
    succeeded(4, 300, 3000, { slave: "blue-sky" }),
    succeeded(5, 400, 4000, { definition: "attic" }),
    sampleJob({ id: 6, state: "canceled", progress: { files: 6, bytes: 6, path: null } }),
    RUNNING,
    succeeded(11, 900, 9000),
  ]);
  t.same(expectedTotals(jobs, RUNNING), { files: 200, bytes: 2000 });
  t.equal(jobs.queries.length, 1, "one query");
  t.end();
});

t.test("nothing to go by: null", (t) => {
  const cases: [string, Job[], Job][] = [
    ["no earlier run", [RUNNING], RUNNING],
    [
      "only failed and canceled runs",
      [sampleJob({ id: 1, state: "failed" }), sampleJob({ id: 2, state: "canceled" }), RUNNING],
      RUNNING,
    ],
    [
      "the newest earlier run used another method",
      [succeeded(1, 1, 1, { method: "command" })],
      RUNNING,
    ],
    [
      "the newest earlier run reported no counts",
      [succeeded(1, 100, 1000), succeeded(2, 0, 0, { progress: null })],
      RUNNING,
    ],
    ["the job has finished", [succeeded(1, 100, 1000)], succeeded(10, 5, 5)],
  ];
  for (const [name, list, job] of cases) t.equal(expectedTotals(source(list), job), null, name);
  t.end();
});

t.test("totalsOf: the last progress, else the counts of the result data", (t) => {
  const data = (d: Job["result"]): Job => sampleJob({ state: "succeeded", result: d });
  const cases: [string, Job, unknown][] = [
    ["progress", succeeded(1, 12, 34), { files: 12, bytes: 34 }],
    [
      "progress over result data",
      succeeded(1, 12, 34, { result: { message: "", data: { files: 1, bytes: 1 } } }),
      { files: 12, bytes: 34 },
    ],
    [
      "result data: files",
      data({ message: "", data: { files: 3, bytes: 9 } }),
      { files: 3, bytes: 9 },
    ],
    [
      "result data of tar: stored",
      data({ message: "", data: { level: "full", stored: 12034, bytes: 1_288_490_189 } }),
      { files: 12034, bytes: 1_288_490_189 },
    ],
    [
      "result data of verify and restore: entries",
      data({ message: "", data: { archives: ["a"], entries: 5, bytes: 50 } }),
      { files: 5, bytes: 50 },
    ],
    ["no result", data(null), null],
    ["no counts (command)", data({ message: "", data: { status: 0, lastLines: [] } }), null],
    ["bytes only", data({ message: "", data: { bytes: 9 } }), null],
    ["not numbers", data({ message: "", data: { files: "3", bytes: "9" } }), null],
    ["negative", data({ message: "", data: { files: -1, bytes: 9 } }), null],
    ["not whole", data({ message: "", data: { files: 1.5, bytes: 9 } }), null],
    ["too big to be exact", data({ message: "", data: { files: 2 ** 60, bytes: 9 } }), null],
  ];
  for (const [name, job, totals] of cases) t.same(totalsOf(job), totals, name);
  t.end();
});
