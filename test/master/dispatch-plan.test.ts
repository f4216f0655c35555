import t from "tap";
import type { Job } from "../../src/jobsdir/job.js";
import { sampleJob } from "../helpers/job.js";
import { type SlaveLoad, planDispatch } from "../../src/master/dispatch-plan.js";

function job(id: number, slave: string, priority = 0): Job {
  return sampleJob({ id, definition: `d${id}`, slave, priority, log: [] });
}

function slaves(...loads: SlaveLoad[]): Map<string, SlaveLoad> {
  return new Map(loads.map((l) => [l.name, l]));
}

t.test("higher priority first, then first in first out", (t) => {
  const plan = planDispatch({
    queued: [job(1, "a"), job(2, "a", 5), job(3, "a"), job(4, "a", 5)],
    slaves: slaves({ name: "a", connected: true, maxJobs: 3, active: 0 }),
    globalMax: 100,
    globalActive: 0,
  });
  t.same(
    plan.dispatch.map((d) => d.job.id),
    [2, 4, 1],
  );
  t.same([...plan.waits], [[3, "slave a at its limit 3/3"]]);
  t.end();
});

t.test("each waiting job says why", (t) => {
  const plan = planDispatch({
    queued: [job(1, "green-acres"), job(2, "busy"), job(3, "free"), job(4, "free")],
    slaves: slaves(
      { name: "green-acres", connected: false, maxJobs: 2, active: 0 },
      { name: "busy", connected: true, maxJobs: 2, active: 2 },
      { name: "free", connected: true, maxJobs: 5, active: 0 },
    ),
    globalMax: 3,
    globalActive: 2,
  });
  t.same(
    plan.dispatch.map((d) => [d.job.id, d.slave]),
    [[3, "free"]],
  );
  t.same(Object.fromEntries(plan.waits), {
    1: "waiting for slave green-acres to connect",
    2: "slave busy at its limit 2/2",
    4: "master at its limit of 3 running jobs",
  });
  t.end();
});

t.test(
  "an unknown slave waits like a disconnected one; a blocked job does not block others",
  (t) => {
    const plan = planDispatch({
      queued: [job(1, "nobody", 9), job(2, "a")],
      slaves: slaves({ name: "a", connected: true, maxJobs: 1, active: 0 }),
      globalMax: 10,
      globalActive: 0,
    });
    t.same(
      plan.dispatch.map((d) => d.job.id),
      [2],
    );
    t.equal(plan.waits.get(1), "waiting for slave nobody to connect");
    t.end();
  },
);
