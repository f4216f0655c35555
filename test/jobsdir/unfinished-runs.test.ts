import t from "tap";
import type { Job, JobState } from "../../src/jobsdir/job.js";
import { UnfinishedRuns } from "../../src/jobsdir/unfinished-runs.js";
import { sampleJob } from "../helpers/job.js";

const job = (id: number, state: JobState, definition = "home", slave = "green-acres"): Job =>
  sampleJob({ id, state, definition, slave });

/** The ids `runs` answers for `definition` on `slave`. */
const ids = (runs: UnfinishedRuns, definition: string, slave: string): number[] =>
  runs.of(definition, slave).map((j) => j.id);

t.test("keeps the unfinished jobs of each definition on each slave, in id order", (t) => {
  const runs = new UnfinishedRuns();
  runs.put(job(7, "running"));
  runs.put(job(3, "queued"));
  runs.put(job(4, "queued", "home", "other-slave"));
  runs.put(job(5, "queued", "db"));
  runs.put(job(6, "succeeded"));
  t.same(ids(runs, "home", "green-acres"), [3, 7]);
  t.same(ids(runs, "home", "other-slave"), [4]);
  t.same(ids(runs, "db", "green-acres"), [5]);
  t.same(runs.of("nothing", "green-acres"), []);
  t.end();
});

t.test("a new version replaces the old; a finished one leaves", (t) => {
  const runs = new UnfinishedRuns();
  runs.put(job(1, "queued"));
  runs.put(job(1, "dispatched"));
  t.same(
    runs.of("home", "green-acres").map((j) => j.state),
    ["dispatched"],
    "the newest version is the one answered",
  );
  for (const state of ["succeeded", "failed", "canceled"] as const) {
    runs.put(job(1, "running"));
    runs.put(job(1, state));
    t.same(runs.of("home", "green-acres"), [], `${state} is finished`);
  }
  for (const state of ["queued", "dispatched", "running", "canceling", "orphaned"] as const) {
    runs.put(job(2, state));
    t.equal(runs.of("home", "green-acres").length, 1, `${state} is unfinished`);
  }
  t.end();
});

t.test("names that share a prefix or hold odd characters are not mixed up", (t) => {
  const runs = new UnfinishedRuns();
  runs.put(job(1, "queued", "a b", "c"));
  runs.put(job(2, "queued", "a", "b c"));
  runs.put(job(3, "queued", "a:b", "c"));
  t.same(ids(runs, "a b", "c"), [1]);
  t.same(ids(runs, "a", "b c"), [2]);
  t.same(ids(runs, "a:b", "c"), [3]);
  t.end();
});
