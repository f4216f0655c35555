// A job record for unit tests: queued, attempt 1, no policy; override what matters.
import { type Job, NO_POLICY } from "../../src/jobsdir/job.js";

export function sampleJob(extra: Partial<Job> = {}): Job {
  return {
    id: 7,
    definition: "home",
    slave: "green-acres",
    method: "tar",
    params: {},
    state: "queued",
    priority: 0,
    attempt: 1,
    timestamps: { received: 1000, dispatched: null, started: null, ended: null, notBefore: null },
    progress: null,
    result: null,
    policy: NO_POLICY,
    log: [{ serial: 1, time: 1000, level: "info", message: "received" }],
    serial: 1,
    ...extra,
  };
}
