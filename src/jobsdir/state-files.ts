// The master's small state files beside the jobs, parsed here (pure):
//   schedule-state.json   last trigger time per job definition
//   slaves.json           the slaves that have registered, for `abs show slaves`
//   disaster-imports.json the job each imported attempt the master did not
//                         know was recorded as (abs import-disaster-log), so
//                         that importing again finds it even once archived
// They live in the jobs directory so that copying it moves them with the
// jobs. Each is rewritten whole, atomically, by the store.

import { Fields, ShapeError, isPlainObject } from "../json-shape.js";

export type ScheduleState = Record<string, number>;

/** One slave as the master last saw it. */
export interface SlaveRecord {
  name: string;
  /** Who it authenticated as: its Kerberos principal, or "realm-key:<name>". */
  identity: string;
  /** Address it last connected from. */
  address: string;
  /** When it was last heard from, ms since the epoch. */
  lastSeen: number;
  /** Jobs it said it runs at once. */
  maxJobs: number;
}

/** Throws ShapeError naming what is wrong. */
export function parseScheduleState(text: string): ScheduleState {
  const value: unknown = JSON.parse(text);
  if (!isPlainObject(value)) throw new ShapeError("(top level)", "expected an object");
  const state: ScheduleState = {};
  for (const [name, time] of Object.entries(value)) {
    if (typeof time !== "number" || !Number.isSafeInteger(time)) {
      throw new ShapeError(name, "expected a time in ms since the epoch");
    }
    state[name] = time;
  }
  return state;
}

/** Throws ShapeError naming what is wrong. */
export function parseSlaveRegistry(text: string): SlaveRecord[] {
  const value: unknown = JSON.parse(text);
  return new Fields({ slaves: value }).objects("slaves", (f) => ({
    name: f.string("name", { nonEmpty: true }),
    identity: f.string("identity"),
    address: f.string("address"),
    lastSeen: f.int("lastSeen", { min: 0 }),
    maxJobs: f.int("maxJobs", { min: 0 }),
  }));
}

/** An attempt a slave reported to a fake master, and the job that records it here. */
export interface ImportedAttempt {
  slave: string;
  jobId: number;
  attempt: number;
  /** The job of this jobs directory that records it. */
  recordedAs: number;
}

/** Throws ShapeError naming what is wrong. */
export function parseDisasterImports(text: string): ImportedAttempt[] {
  const value: unknown = JSON.parse(text);
  return new Fields({ imports: value }).objects("imports", (f) => ({
    slave: f.string("slave", { nonEmpty: true }),
    jobId: f.int("jobId", { min: 1 }),
    attempt: f.int("attempt", { min: 1 }),
    recordedAs: f.int("recordedAs", { min: 1 }),
  }));
}
