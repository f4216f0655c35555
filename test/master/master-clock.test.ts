// The whole master (jobs directory, slave link, dispatcher, scheduler, admin
// socket) in this process on a fake clock: across the DST changes of
// Europe/Paris and across master downtime with both missed-run policies.
// The jobs it submits are read back from the jobs directory.

import path from "node:path";
import t, { type Test } from "tap";
import { generateRealmKey } from "../../src/auth/realm-key.js";
import type { Job } from "../../src/jobsdir/job.js";
import { Master } from "../../src/master/master.js";
import { FakeClock, settle } from "../helpers/fake-clock.js";
import { inProcessConfig, startInProcess } from "../helpers/master-in-process.js";
import { tempDir } from "../helpers/tmp.js";

function nightly(missedRun: "run-once" | "skip"): string {
  return [
    "[job nightly]",
    "slave = green-acres",
    "schedule = 30 2 * * *",
    "timezone = Europe/Paris",
    `missed_run = ${missedRun}`,
    // No slave connects here: each run stays queued, and must not stop the next one.
    "overlap = allow",
    "method = command",
    "command.program = /bin/true",
  ].join("\n");
}

async function start(t: Test, dir: string, clock: FakeClock, jobs: string): Promise<Master> {
  // Heartbeats every day: the fake clock crosses days in a few steps.
  const config = inProcessConfig(dir, ["heartbeat_interval = 1d"], jobs);
  return (await startInProcess(t, dir, config, { clock })).master;
}

/** Moves the clock to `to`, letting each scheduled run be written and the next armed. */
async function advance(clock: FakeClock, master: Master, to: number): Promise<void> {
  for (;;) {
    const next = clock.nextAt();
    if (next === undefined || next > to) break;
    await clock.advanceTo(next);
    await master.scheduler.idle();
    await settle();
  }
  await clock.advanceTo(to);
}

function runs(master: Master): string[] {
  return master.store
    .query({ definition: "nightly" })
    .map(
      (j: Job) =>
        /(scheduled for|run due) (\S+?)\)?$/.exec(j.log[0].message)?.[2] ?? j.log[0].message,
    );
}

t.test(
  "spring forward: 02:30 does not exist on the night of the change, and runs once",
  async (t) => {
    const dir = tempDir(t);
    await generateRealmKey(path.join(dir, "realm.key"));
    const clock = new FakeClock(Date.parse("2026-03-28T12:00:00Z"));
    const master = await start(t, dir, clock, nightly("run-once"));
    await advance(clock, master, Date.parse("2026-03-31T12:00:00Z"));
    t.same(runs(master), [
      // 02:30 CET on the 28th was before the start; the 29th has no 02:30 (02:00
      // jumps to 03:00 CEST): it runs at the end of the gap, 03:00 CEST.
      "2026-03-29T01:00:00.000Z",
      "2026-03-30T00:30:00.000Z",
      "2026-03-31T00:30:00.000Z",
    ]);
  },
);

t.test("fall back: 02:30 happens twice on the night of the change, and runs once", async (t) => {
  const dir = tempDir(t);
  await generateRealmKey(path.join(dir, "realm.key"));
  const clock = new FakeClock(Date.parse("2026-10-24T12:00:00Z"));
  const master = await start(t, dir, clock, nightly("run-once"));
  await advance(clock, master, Date.parse("2026-10-27T12:00:00Z"));
  t.same(runs(master), [
    "2026-10-25T00:30:00.000Z", // 02:30 CEST, the first of the two
    "2026-10-26T01:30:00.000Z", // 02:30 CET
    "2026-10-27T01:30:00.000Z",
  ]);
});

for (const policy of ["run-once", "skip"] as const) {
  t.test(`three nights of master downtime with missed_run = ${policy}`, async (t) => {
    const dir = tempDir(t);
    await generateRealmKey(path.join(dir, "realm.key"));
    const clock = new FakeClock(Date.parse("2026-06-01T12:00:00Z"));
    let master = await start(t, dir, clock, nightly(policy));
    await advance(clock, master, Date.parse("2026-06-02T12:00:00Z"));
    t.same(runs(master), ["2026-06-02T00:30:00.000Z"], "one run before the downtime");
    await master.stop();

    // Down from June 2nd noon to June 5th noon: the runs of the 3rd, 4th and 5th are missed.
    await clock.advanceTo(Date.parse("2026-06-05T12:00:00Z"));
    master = await start(t, dir, clock, nightly(policy));
    const expected =
      policy === "run-once"
        ? ["2026-06-02T00:30:00.000Z", "2026-06-05T00:30:00.000Z"] // the last missed run, once
        : ["2026-06-02T00:30:00.000Z"];
    t.same(runs(master), expected, "the policy applied once at startup");
    if (policy === "run-once") {
      const missed = master.store.query({ definition: "nightly" })[1];
      t.match(
        missed.log[0].message,
        /missed while the master was down \(run due 2026-06-05T00:30:00\.000Z\)$/,
      );
    }
    // And the schedule goes on from there.
    await advance(clock, master, Date.parse("2026-06-06T12:00:00Z"));
    t.same(runs(master), [...expected, "2026-06-06T00:30:00.000Z"]);
  });
}

t.test(
  "overlap policies: forbid skips a run while the last is unfinished, replace cancels it",
  async (t) => {
    const dir = tempDir(t);
    await generateRealmKey(path.join(dir, "realm.key"));
    const clock = new FakeClock(Date.parse("2026-06-01T00:00:30Z"));
    const hourly = (name: string, overlap: string): string =>
      [
        `[job ${name}]`,
        "slave = green-acres",
        "schedule = 0 * * * *",
        `overlap = ${overlap}`,
        "method = command",
        "command.program = /bin/true",
        "",
      ].join("\n");
    const master = await start(
      t,
      dir,
      clock,
      [hourly("a", "allow"), hourly("f", "forbid"), hourly("r", "replace")].join("\n"),
    );
    await advance(clock, master, Date.parse("2026-06-01T03:00:30Z"));
    const states = (definition: string): string[] =>
      master.store.query({ definition }).map((j) => j.state);
    t.same(states("a"), ["queued", "queued", "queued"], "allow: every run");
    t.same(states("f"), ["queued"], "forbid: the later runs skipped");
    t.same(
      states("r"),
      ["canceled", "canceled", "queued"],
      "replace: each run cancels the one before",
    );
    const replaced = master.store.query({ definition: "r" })[0];
    t.equal(replaced.result?.message, "replaced by a new run (overlap = replace)");
  },
);
