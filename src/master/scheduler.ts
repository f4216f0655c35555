// Fires job definitions at their cron times, in their time zones, and
// applies the missed-run policy once after the master was down.
//
// Fire times come from CronTimes (one run per wall-clock time across DST
// changes); waiting goes through a Clock so tests move time by hand. After a
// run is handed to `fire` (which submits the job durably), the trigger time
// is saved; a crash between the two can only repeat that run once at the
// next start (with run-once), never lose it.
//
// States: `stopped` until start(), `running` until stop().

import type { Clock, Timer } from "../clock.js";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import { type CronFields, CronTimes } from "./cron-times.js";
import { type MissedRunPolicy, catchUp } from "./missed-runs.js";

export interface ScheduledDefinition {
  name: string;
  /** The parsed cron expression (config/cron.ts). */
  schedule: CronFields;
  timezone: string;
  missedRun: MissedRunPolicy;
}

export type FireReason = "schedule" | "missed-run";

export interface SchedulerDeps {
  clock: Clock;
  logger: Logger;
  /** Starts a run of `name` for the fire time `at`; resolves once the run is recorded. */
  fire(name: string, at: number, reason: FireReason): Promise<void>;
  /** Persists the last trigger of every definition (schedule-state.json). */
  saveTriggers(triggers: Record<string, number>): Promise<void>;
}

interface Armed {
  def: ScheduledDefinition;
  times: CronTimes;
  timer: Timer | null;
}

export class Scheduler {
  state: "stopped" | "running" = "stopped";
  private stopped = false;
  private readonly armed = new Map<string, Armed>();
  private readonly triggers: Record<string, number>;
  /** Runs fired and not yet recorded (and re-armed). */
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly deps: SchedulerDeps,
    lastTriggers: Readonly<Record<string, number>>,
  ) {
    this.triggers = { ...lastTriggers };
  }

  /**
   * Starts (or, when running, updates) the schedule of `defs`. A definition
   * seen for the first time since startup gets its missed-run decision; one
   * already armed keeps its place; one gone is disarmed.
   */
  async apply(defs: readonly ScheduledDefinition[]): Promise<void> {
    if (this.stopped) return; // stop() is final
    this.state = "running";
    const now = this.deps.clock.now();
    const wanted = new Map(defs.map((d) => [d.name, d]));
    for (const [name, a] of this.armed) {
      if (!wanted.has(name)) {
        a.timer?.cancel();
        this.armed.delete(name);
      }
    }
    for (const def of defs) {
      const current = this.armed.get(def.name);
      if (current !== undefined && sameSchedule(current.def, def)) {
        current.def = def;
        continue;
      }
      current?.timer?.cancel();
      const a: Armed = { def, times: new CronTimes(def.schedule, def.timezone), timer: null };
      this.armed.set(def.name, a);
      if (current === undefined) await this.catchUpOne(a, now);
      this.arm(a);
    }
  }

  stop(): void {
    this.stopped = true;
    this.state = "stopped";
    for (const a of this.armed.values()) a.timer?.cancel();
    this.armed.clear();
  }

  /** The next fire times of every definition up to `until`, for `abs show schedule`. */
  upcoming(until: number, perDefinition = 100): { name: string; times: number[] }[] {
    const now = this.deps.clock.now();
    return [...this.armed.values()].map((a) => ({
      name: a.def.name,
      times: a.times.next(now, { until, count: perDefinition }),
    }));
  }

  /** Resolves once every run fired so far is recorded and its next time armed. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  get lastTriggers(): Readonly<Record<string, number>> {
    return this.triggers;
  }

  private async catchUpOne(a: Armed, now: number): Promise<void> {
    const decision = catchUp(a.times, this.triggers[a.def.name] ?? null, now, a.def.missedRun);
    if (decision.missed === 0) {
      // First sight of a definition: nothing was missed; remember from now on.
      this.triggers[a.def.name] ??= now;
      return;
    }
    this.deps.logger.info(
      `${a.def.name}: ${decision.missed} run(s) missed while the master was down; missed_run=${a.def.missedRun}`,
      { definition: a.def.name },
    );
    if (decision.runFor !== null) await this.run(a, decision.runFor, "missed-run");
    else await this.record(a.def.name, now); // skipped: counted from now on
  }

  private arm(a: Armed): void {
    if (this.state !== "running") return;
    const now = this.deps.clock.now();
    const after = Math.max(now, this.triggers[a.def.name] ?? now);
    const [next] = a.times.next(after);
    if (next === undefined) return; // A schedule that never fires again.
    a.timer = this.deps.clock.setTimer(next - now, () => {
      a.timer = null;
      const run = this.run(a, next, "schedule").finally(() => {
        if (this.armed.get(a.def.name) === a) this.arm(a);
        this.inFlight.delete(run);
      });
      this.inFlight.add(run);
    });
  }

  private async run(a: Armed, at: number, reason: FireReason): Promise<void> {
    try {
      await this.deps.fire(a.def.name, at, reason);
    } catch (err) {
      this.deps.logger.error(
        `${a.def.name}: cannot start the run due at ${new Date(at).toISOString()}: ${describeError(err)}`,
        {
          definition: a.def.name,
        },
      );
    }
    await this.record(a.def.name, at);
  }

  private async record(name: string, at: number): Promise<void> {
    this.triggers[name] = at;
    try {
      await this.deps.saveTriggers({ ...this.triggers });
    } catch (err) {
      this.deps.logger.error(`cannot save the schedule state: ${describeError(err)}`);
    }
  }
}

function sameSchedule(a: ScheduledDefinition, b: ScheduledDefinition): boolean {
  return a.schedule.expression === b.schedule.expression && a.timezone === b.timezone;
}
