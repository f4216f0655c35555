// The admin methods of the real master (src/protocol/admin-api.ts has the
// contract): each checks its arguments, asks the master's parts, and
// answers plain JSON.

import { AbsError, JobNotFoundError } from "../errors.js";
import { isFinished, type Job } from "../jobsdir/job.js";
import type { JobQuery } from "../jobsdir/job-query.js";
import type { JsonObject, JsonValue } from "../json-shape.js";
import {
  MAX_SCHEDULE_RUNS,
  type AdminMethodName,
  type CancelResult,
  type RunResult,
  type JobDetail,
  type JobView,
  type ScheduleView,
  type SlaveView,
  type StatusResult,
  parseArchiveArgs,
  parseAutoarchiveArgs,
  parseDrainArgs,
  parseIdArgs,
  parseImportDisasterLogArgs,
  parseNoArgs,
  parseRunArgs,
  parseShowJobsArgs,
  parseShowScheduleArgs,
  parseWatchArgs,
} from "../protocol/admin-api.js";
import type { AdminMethod } from "./admin-server.js";
import type { RequestTag } from "../jobsdir/request-records.js";
import type { Master } from "./master.js";
import { slavesToRun } from "./job-policy.js";
import { expectedTotals } from "./progress-estimate.js";
import { servicePrincipalOf } from "./slave-listener.js";

/** Without --all, `show jobs` lists finished jobs that ended this recently. */
export const RECENT_MS = 24 * 3600 * 1000;

// The results are typed views; the admin server sends them as JSON.
// `request` is the request's tag for the changing methods (admin-requests.ts).
type Handler = (args: JsonObject, request: RequestTag | null) => unknown;

export function adminMethods(master: Master): ReadonlyMap<string, AdminMethod> {
  const view = (job: Job): JobView => jobView(job, master.dispatcher.waitReasonOf(job));

  const handlers: Record<AdminMethodName, Handler> = {
    status: (args): StatusResult => {
      parseNoArgs(args);
      const c = master.currentConfig;
      return {
        master: master.hostName,
        realm: c.realm,
        mode: "real",
        pid: process.pid,
        startedAt: master.startedAt,
        listen: `${c.listen.host}:${master.linkPort}`,
        auth: c.auth,
        servicePrincipal: servicePrincipalOf(c),
        jobsDir: master.store.directory,
        jobs: master.store.size,
        drained: master.store.drained,
        slavesConnected: master.dispatcher.connectedSlaves.size,
      };
    },

    "show-jobs": (args) => {
      const a = parseShowJobsArgs(args);
      const q: JobQuery = {
        states: a.states ?? undefined,
        slave: a.slave ?? undefined,
        definition: a.definition ?? undefined,
      };
      let jobs = master.store.query(q);
      if (!a.all) {
        const since = master.clock.now() - RECENT_MS;
        jobs = jobs.filter((j) => !isFinished(j.state) || (j.timestamps.ended ?? 0) >= since);
      }
      if (a.limit !== null && jobs.length > a.limit) jobs = jobs.slice(jobs.length - a.limit);
      return { jobs: jobs.map(view) };
    },

    "show-job": async (args) => {
      const { id } = parseIdArgs(args);
      return { job: await detail(master, id) };
    },

    "show-slaves": (args) => {
      parseNoArgs(args);
      const slaves: SlaveView[] = master.registry.all().map((r) => {
        const session = master.dispatcher.session(r.name);
        return {
          name: r.name,
          identity: r.identity,
          address: r.address,
          connected: session !== undefined,
          registeredAt: r.lastSeen,
          lastSeen: session === undefined ? r.lastSeen : session.lastHeard,
          maxJobs: session === undefined ? r.maxJobs : master.dispatcher.maxJobsOf(session),
          active: master.dispatcher.activeOn(r.name),
        };
      });
      return { slaves };
    },

    "show-schedule": (args) => {
      const { days } = parseShowScheduleArgs(args);
      const until = master.clock.now() + days * 24 * 3600 * 1000;
      const next = new Map(
        master.scheduler.upcoming(until, MAX_SCHEDULE_RUNS).map((u) => [u.name, u.times]),
      );
      const last = master.scheduler.lastTriggers;
      const definitions: ScheduleView[] = master.currentConfig.jobs.map((d) => ({
        definition: d.name,
        slaves: d.slaves,
        schedule: d.schedule?.expression ?? null,
        timezone: d.timezone,
        enabled: d.enabled,
        lastTrigger: last[d.name] ?? null,
        next: next.get(d.name) ?? [],
      }));
      return { definitions };
    },

    run: async (args, request) => {
      const a = parseRunArgs(args);
      const def = master.definition(a.definition);
      if (def === undefined) {
        const known = master.currentConfig.jobs.map((d) => d.name).join(", ") || "none";
        throw new AbsError(
          "DEFINITION_NOT_FOUND",
          `no job definition "${a.definition}" (defined: ${known})`,
        );
      }
      const reply = (jobs: Job[]): RunResult => ({ jobs: jobs.map((j) => j.id) });
      // The record goes in the jobs' own write: the run is all or nothing.
      const jobs = await master.runNow(def, slavesToRun(def, a.slave), {
        tag: changingRequest(request),
        reply: (made) => reply(made) as unknown as JsonValue,
      });
      return reply(jobs);
    },

    cancel: async (args, request) => {
      const { id } = parseIdArgs(args);
      const job = master.store.get(id);
      if (job === undefined) throw new JobNotFoundError(id);
      if (isFinished(job.state)) {
        throw new AbsError("ILLEGAL_TRANSITION", `job ${id} is already ${job.state}`, {
          context: { jobId: id },
        });
      }
      // A canceled or canceling job waits for nothing: its view has no wait reason.
      const reply = (j: Job): CancelResult => ({ job: jobView(j, null) });
      const changed = await master.dispatcher.cancel(job, "canceled by an administrator", {
        tag: changingRequest(request),
        reply: (j) => reply(j) as unknown as JsonValue,
      });
      return reply(changed);
    },

    watch: async (args) => {
      const a = parseWatchArgs(args);
      const changed = await master.store.waitForChange(a.id, a.serial, a.timeoutMs);
      const job = await detail(master, a.id);
      return {
        changed: changed !== "nochange",
        job,
        expected: expectedTotals(master.store, job),
      };
    },

    archive: async (args) => {
      const { ids } = parseArchiveArgs(args);
      return { archived: await master.store.archive(ids) };
    },

    autoarchive: async (args) => {
      const { ageMs } = parseAutoarchiveArgs(args);
      return master.store.autoarchive(ageMs);
    },

    drain: async (args) => {
      const { on } = parseDrainArgs(args);
      await master.store.setDrain(on);
      return { drained: master.store.drained };
    },

    reload: async (args) => {
      parseNoArgs(args);
      return { summary: await master.reload() };
    },

    "import-disaster-log": (args) => {
      const { file } = parseImportDisasterLogArgs(args);
      return master.importDisasterLog(file);
    },
  };
  return new Map(
    Object.entries(handlers).map(([name, handler]) => [
      name,
      async (args: JsonObject, request: RequestTag | null) =>
        (await handler(args, request)) as JsonValue,
    ]),
  );
}

/** The tag the admin server gives every changing method (CHANGING_METHODS). */
function changingRequest(request: RequestTag | null): RequestTag {
  if (request === null) throw new AbsError("INTERNAL", "a changing admin method got no request id");
  return request;
}

export function jobView(job: Job, waitReason: string | null): JobView {
  const t = job.timestamps;
  return {
    id: job.id,
    definition: job.definition,
    slave: job.slave,
    method: job.method,
    state: job.state,
    priority: job.priority,
    attempt: job.attempt,
    received: t.received,
    dispatched: t.dispatched,
    started: t.started,
    ended: t.ended,
    notBefore: t.notBefore,
    progress: job.progress,
    result: job.result?.message ?? null,
    waitReason,
    serial: job.serial,
  };
}

/**
 * A job's params as admins see them: `env` (command.env) by its names only.
 * Its values are sent to the slave and kept in the job file, but anyone
 * who may read the admin socket would otherwise read every password a
 * definition passes that way.
 */
export function paramsForView(params: JsonObject): JsonObject {
  const env = params["env"];
  if (env === null || typeof env !== "object" || Array.isArray(env)) return params;
  return { ...params, env: Object.keys(env).sort() };
}

/** Job `id` with its log, live or archived; `id` was checked by the method's argument parser. */
async function detail(master: Master, id: number): Promise<JobDetail> {
  const live = master.store.get(id);
  const job = live ?? (await master.store.readArchived(id));
  return {
    ...jobView(job, live === undefined ? null : master.dispatcher.waitReasonOf(job)),
    params: paramsForView(job.params),
    resultData: job.result?.data ?? null,
    policy: job.policy,
    log: job.log,
    archived: live === undefined,
  };
}
