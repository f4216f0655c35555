import t from "tap";
import { schedule } from "../helpers/cron.js";
import {
  type FireReason,
  type ScheduledDefinition,
  Scheduler,
} from "../../src/master/scheduler.js";
import { FakeClock } from "../helpers/fake-clock.js";
import { CollectingLogger } from "../helpers/log.js";

const at = (text: string): number => Date.parse(text);
const iso = (ms: number): string => new Date(ms).toISOString().replace(".000", "");

function setup(start: string, lastTriggers: Record<string, number> = {}) {
  const clock = new FakeClock(at(start));
  const fired: { name: string; at: string; reason: FireReason; clock: string }[] = [];
  const saved: Record<string, number>[] = [];
  const log = new CollectingLogger();
  const scheduler = new Scheduler(
    {
      clock,
      logger: log,
      fire: (name, when, reason) => {
        fired.push({ name, at: iso(when), reason, clock: iso(clock.now()) });
        return Promise.resolve();
      },
      saveTriggers: (triggers) => {
        saved.push(triggers);
        return Promise.resolve();
      },
    },
    lastTriggers,
  );
  return { clock, fired, saved, log, scheduler };
}

const nightlyParis: ScheduledDefinition = {
  name: "home",
  schedule: schedule("30 2 * * *"),
  timezone: "Europe/Paris",
  missedRun: "run-once",
};

t.test(
  "fires at its time in its zone; the spring DST change neither skips nor doubles",
  async (t) => {
    const { clock, fired, saved, scheduler } = setup("2026-03-27T00:00:00Z");
    await scheduler.apply([nightlyParis]);
    await clock.advanceTo(at("2026-03-31T00:00:00Z"));
    t.same(
      fired.map((f) => f.at),
      [
        "2026-03-27T01:30:00Z",
        "2026-03-28T01:30:00Z",
        "2026-03-29T01:00:00Z",
        "2026-03-30T00:30:00Z",
      ],
    );
    t.ok(
      fired.every((f) => f.at === f.clock && f.reason === "schedule"),
      "each at the moment it was due",
    );
    t.same(saved.at(-1), { home: at("2026-03-30T00:30:00Z") }, "the last trigger is saved");
    scheduler.stop();
  },
);

t.test("the autumn DST change does not run the repeated 02:30 twice", async (t) => {
  const { clock, fired, scheduler } = setup("2026-10-24T00:00:00Z");
  await scheduler.apply([nightlyParis]);
  await clock.advanceTo(at("2026-10-26T12:00:00Z"));
  t.same(
    fired.map((f) => f.at),
    ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
  );
  scheduler.stop();
});

t.test("after downtime, run-once runs once at startup and the schedule goes on", async (t) => {
  const { clock, fired, log, scheduler } = setup("2026-05-04T09:00:00Z", {
    home: at("2026-05-01T00:30:00Z"),
  });
  await scheduler.apply([nightlyParis]);
  t.same(fired, [
    {
      name: "home",
      at: "2026-05-04T00:30:00Z",
      reason: "missed-run",
      clock: "2026-05-04T09:00:00Z",
    },
  ]);
  t.match(log.messages("info"), [
    /home: 3 run\(s\) missed while the master was down; missed_run=run-once/,
  ]);
  await clock.advanceTo(at("2026-05-05T12:00:00Z"));
  t.same(
    fired.map((f) => [f.at, f.reason]),
    [
      ["2026-05-04T00:30:00Z", "missed-run"],
      ["2026-05-05T00:30:00Z", "schedule"],
    ],
  );
  scheduler.stop();
});

t.test("after downtime, skip runs nothing until the next time", async (t) => {
  const { clock, fired, scheduler } = setup("2026-05-04T09:00:00Z", {
    home: at("2026-05-01T00:30:00Z"),
  });
  await scheduler.apply([{ ...nightlyParis, missedRun: "skip" }]);
  t.same(fired, []);
  await clock.advanceTo(at("2026-05-05T12:00:00Z"));
  t.same(
    fired.map((f) => [f.at, f.reason]),
    [["2026-05-05T00:30:00Z", "schedule"]],
  );
  scheduler.stop();
});

t.test("a short restart misses nothing and runs nothing extra", async (t) => {
  const { clock, fired, scheduler } = setup("2026-05-04T01:00:00Z", {
    home: at("2026-05-04T00:30:00Z"),
  });
  await scheduler.apply([nightlyParis]);
  await clock.advanceTo(at("2026-05-04T23:00:00Z"));
  t.same(fired, []);
  scheduler.stop();
});

t.test("reload: a changed schedule re-arms, a removed definition stops", async (t) => {
  const { clock, fired, scheduler } = setup("2026-05-04T00:00:00Z");
  await scheduler.apply([
    { name: "a", schedule: schedule("0 * * * *"), timezone: "UTC", missedRun: "skip" },
    { name: "b", schedule: schedule("0 * * * *"), timezone: "UTC", missedRun: "skip" },
  ]);
  t.equal(clock.armed, 2);
  await scheduler.apply([
    { name: "a", schedule: schedule("30 * * * *"), timezone: "UTC", missedRun: "skip" },
  ]);
  t.equal(clock.armed, 1);
  await clock.advanceTo(at("2026-05-04T01:45:00Z"));
  t.same(
    fired.map((f) => `${f.name}@${f.at}`),
    ["a@2026-05-04T00:30:00Z", "a@2026-05-04T01:30:00Z"],
  );
  t.same(
    scheduler.upcoming(at("2026-05-04T04:00:00Z")).map((u) => [u.name, u.times.map(iso)]),
    [["a", ["2026-05-04T02:30:00Z", "2026-05-04T03:30:00Z"]]],
  );
  scheduler.stop();
  t.equal(clock.armed, 0);
});

t.test("a run that cannot start is logged and the schedule goes on", async (t) => {
  const clock = new FakeClock(at("2026-05-04T00:00:00Z"));
  const log = new CollectingLogger();
  let calls = 0;
  const scheduler = new Scheduler(
    {
      clock,
      logger: log,
      fire: () => {
        calls += 1;
        return Promise.reject(new Error("job queue is drained"));
      },
      saveTriggers: () => Promise.resolve(),
    },
    {},
  );
  await scheduler.apply([
    { name: "a", schedule: schedule("0 * * * *"), timezone: "UTC", missedRun: "skip" },
  ]);
  await clock.advanceTo(at("2026-05-04T02:30:00Z"));
  t.equal(calls, 2);
  t.match(log.messages("error"), [
    /a: cannot start the run due at 2026-05-04T01:00:00.000Z: job queue is drained/,
    /02:00/,
  ]);
  scheduler.stop();
});
