// Answers shaped as src/protocol/admin-api.ts says, for tests of `abs`.
// Fixed data, no master logic: what `abs` prints is tested against these,
// not against a real master.

import type {
  JobDetail,
  JobView,
  ScheduleView,
  SlaveView,
  StatusResult,
} from "../../src/protocol/admin-api.js";

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;

/**
 * A running job received 15 minutes and started 12 minutes before `now`;
 * `over` changes any field. The 20 s past each mark keep "15m ago" and
 * "12m ago" true while a test runs.
 */
export function jobView(now: number, over: Partial<JobView> = {}): JobView {
  return {
    id: 12,
    definition: "home",
    slave: "green-acres",
    method: "tar",
    state: "running",
    priority: 0,
    attempt: 1,
    received: now - 15 * MINUTE - 20_000,
    dispatched: now - 12 * MINUTE - 20_000,
    started: now - 12 * MINUTE - 20_000,
    ended: null,
    notBefore: null,
    progress: { files: 1204, bytes: 1_288_490_189, path: "/home/alice/Mail" }, // 1.2 GiB
    result: null,
    waitReason: null,
    serial: 5,
    ...over,
  };
}

export function jobDetail(now: number, over: Partial<JobDetail> = {}): JobDetail {
  const view = jobView(now, over);
  return {
    ...view,
    params: { sources: ["/home"], level: "full" },
    resultData: null,
    policy: {
      maxRunTimeMs: 4 * HOUR,
      startBy: null,
      retries: 2,
      retryBackoffMs: MINUTE,
      retryBackoffMaxMs: HOUR,
    },
    log: [
      { serial: 1, time: view.received, level: "info", message: "received: home on green-acres" },
      {
        serial: 2,
        time: view.received + 1000,
        level: "info",
        message: "dispatched to green-acres",
      },
    ],
    archived: false,
    ...over,
  };
}

export function slaveView(now: number, over: Partial<SlaveView> = {}): SlaveView {
  return {
    name: "green-acres",
    identity: "green-acres",
    address: "192.0.2.7:50312",
    connected: true,
    registeredAt: now - 2 * HOUR,
    lastSeen: now,
    maxJobs: 2,
    active: 1,
    ...over,
  };
}

export function scheduleView(over: Partial<ScheduleView> = {}): ScheduleView {
  return {
    definition: "home",
    slaves: ["green-acres", "blue-sky"],
    schedule: "0 2 * * *",
    timezone: "UTC",
    enabled: true,
    lastTrigger: null,
    next: [],
    ...over,
  };
}

export function statusResult(now: number, over: Partial<StatusResult> = {}): StatusResult {
  return {
    master: "backup.example.com",
    realm: "EXAMPLE.COM",
    mode: "real",
    pid: 4242,
    startedAt: now - 3 * HOUR - 30_000,
    listen: "0.0.0.0:7370",
    auth: "kerberos",
    servicePrincipal: "abs/backup.example.com@EXAMPLE.COM",
    jobsDir: "/var/lib/abs/jobs",
    jobs: 12,
    drained: false,
    slavesConnected: 3,
    ...over,
  };
}
