// The admin methods of the real master (src/protocol/admin-contract.ts has
// the contract): each gets its arguments checked by the contract's parser,
// asks the master's parts, and answers its typed result.

import type { Clock } from "../clock.js";
import type { JobDefinition } from "../config/job-definition.js";
import type { MasterConfig } from "../config/master-config.js";
import { AbsError, JobNotFoundError } from "../errors.js";
import { isFinished, type Job } from "../jobsdir/job.js";
import type { JobQuery } from "../jobsdir/job-query.js";
import type { JobStore, RequestChange } from "../jobsdir/job-store.js";
import type { JsonObject } from "../json-shape.js";
import {
  MAX_SCHEDULE_RUNS,
  type CancelResult,
  type ImportDisasterLogResult,
  type RunResult,
  type JobDetail,
  type JobView,
  type ScheduleView,
  type SlaveView,
  type StatusResult,
} from "../protocol/admin-api.js";
import { ADMIN_CONTRACT } from "../protocol/admin-contract.js";
import { type AdminHandlers, type AdminMethod, bindAdminHandlers } from "./admin-server.js";
import type { RequestTag } from "../jobsdir/request-records.js";
import type { Dispatcher } from "./dispatcher.js";
import { slavesToRun } from "./job-policy.js";
import { expectedTotals } from "./progress-estimate.js";
import type { Scheduler } from "./scheduler.js";
import { servicePrincipalOf } from "./slave-listener.js";
import type { SlaveRegistry } from "./slave-registry.js";

/** Without --all, `show jobs` lists finished jobs that ended this recently. */
export const RECENT_MS = 24 * 3600 * 1000;

/** What the admin methods use of the master itself (Master has it all). */
export interface AdminMaster {
  readonly hostName: string;
  readonly startedAt: number;
  /** The port slaves connect to. */
  readonly linkPort: number;
  /** The running config: a reload replaces it. */
  readonly currentConfig: MasterConfig;
  definition(name: string): JobDefinition | undefined;
  runNow(
    def: JobDefinition,
    slaves: readonly string[],
    request: RequestChange<Job[]>,
  ): Promise<Job[]>;
  reload(): Promise<string>;
  importDisasterLog(file: string): Promise<ImportDisasterLogResult>;
}

/**
 * What the admin methods use, and nothing more: the master and its parts,
 * each narrowed to the calls made here. The master builds it (master.ts),
 * so that its parts stay its own and this file need not import it.
 */
export interface AdminBackend {
  readonly master: AdminMaster;
  readonly store: Pick<
    JobStore,
    | "directory"
    | "size"
    | "drained"
    | "query"
    | "get"
    | "readArchived"
    | "waitForChange"
    | "archive"
    | "autoarchive"
    | "setDrain"
  >;
  readonly dispatcher: Pick<
    Dispatcher,
    "connectedSlaves" | "waitReasonOf" | "session" | "maxJobsOf" | "activeOn" | "cancel"
  >;
  readonly registry: Pick<SlaveRegistry, "all">;
  readonly scheduler: Pick<Scheduler, "upcoming" | "lastTriggers">;
  readonly clock: Pick<Clock, "now">;
}

// The results are typed views (admin-contract.ts); the admin server sends
// them as JSON. `request` is the request's tag for the changing methods
// (admin-requests.ts).
export function adminMethods(backend: AdminBackend): ReadonlyMap<string, AdminMethod> {
  const { master, store, dispatcher, registry, scheduler, clock } = backend;
  const view = (job: Job): JobView => jobView(job, dispatcher.waitReasonOf(job));

  const handlers: AdminHandlers = {
    status: (): StatusResult => {
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
        jobsDir: store.directory,
        jobs: store.size,
        drained: store.drained,
        slavesConnected: dispatcher.connectedSlaves.size,
      };
    },

    "show-jobs": (a) => {
      const q: JobQuery = {
        states: a.states ?? undefined,
        slave: a.slave ?? undefined,
        definition: a.definition ?? undefined,
      };
      let jobs = store.query(q);
      if (!a.all) {
        const since = clock.now() - RECENT_MS;
        jobs = jobs.filter((j) => !isFinished(j.state) || (j.timestamps.ended ?? 0) >= since);
      }
      if (a.limit !== null && jobs.length > a.limit) jobs = jobs.slice(jobs.length - a.limit);
      return { jobs: jobs.map(view) };
    },

    "show-job": async ({ id }) => {
      return { job: await detail(backend, id) };
    },

    "show-slaves": () => {
      const slaves: SlaveView[] = registry.all().map((r) => {
        const session = dispatcher.session(r.name);
        return {
          name: r.name,
          identity: r.identity,
          address: r.address,
          connected: session !== undefined,
          registeredAt: r.lastSeen,
          lastSeen: session === undefined ? r.lastSeen : session.lastHeard,
          maxJobs: session === undefined ? r.maxJobs : dispatcher.maxJobsOf(session),
          active: dispatcher.activeOn(r.name),
        };
      });
      return { slaves };
    },

    "show-schedule": ({ days }) => {
      const until = clock.now() + days * 24 * 3600 * 1000;
      const next = new Map(
        scheduler.upcoming(until, MAX_SCHEDULE_RUNS).map((u) => [u.name, u.times]),
      );
      const last = scheduler.lastTriggers;
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

    run: async (a, request) => {
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
        reply: (made) => ADMIN_CONTRACT.run.toWire(reply(made)),
      });
      return reply(jobs);
    },

    cancel: async ({ id }, request) => {
      const job = store.get(id);
      if (job === undefined) throw new JobNotFoundError(id);
      if (isFinished(job.state)) {
        throw new AbsError("ILLEGAL_TRANSITION", `job ${id} is already ${job.state}`, {
          context: { jobId: id },
        });
      }
      // A canceled or canceling job waits for nothing: its view has no wait reason.
      const reply = (j: Job): CancelResult => ({ job: jobView(j, null) });
      const changed = await dispatcher.cancel(job, "canceled by an administrator", {
        tag: changingRequest(request),
        reply: (j) => ADMIN_CONTRACT.cancel.toWire(reply(j)),
      });
      return reply(changed);
    },

    watch: async (a) => {
      const changed = await store.waitForChange(a.id, a.serial, a.timeoutMs);
      const job = await detail(backend, a.id);
      return {
        changed: changed !== "nochange",
        job,
        expected: expectedTotals(store, job),
      };
    },

    archive: async ({ ids }) => {
      return { archived: await store.archive(ids) };
    },

    autoarchive: async ({ ageMs }) => {
      return store.autoarchive(ageMs);
    },

    drain: async ({ on }) => {
      await store.setDrain(on);
      return { drained: store.drained };
    },

    reload: async () => {
      return { summary: await master.reload() };
    },

    "import-disaster-log": ({ file }) => {
      return master.importDisasterLog(file);
    },
  };
  return bindAdminHandlers(handlers);
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
async function detail(
  { store, dispatcher }: Pick<AdminBackend, "store" | "dispatcher">,
  id: number,
): Promise<JobDetail> {
  const live = store.get(id);
  const job = live ?? (await store.readArchived(id));
  return {
    ...jobView(job, live === undefined ? null : dispatcher.waitReasonOf(job)),
    params: paramsForView(job.params),
    resultData: job.result?.data ?? null,
    policy: job.policy,
    log: job.log,
    archived: live === undefined,
  };
}
