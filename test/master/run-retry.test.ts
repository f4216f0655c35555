// `abs run` across master crashes: 200 runs of a definition with 25 slaves
// while the master is SIGKILLed twice and restarted. Once while SIGSTOPped
// with requests waiting on its admin socket (so some commands certainly lose
// their answer and retry), once at an arbitrary moment (a request may be done
// and its answer lost). After the retries every command either printed its
// 25 jobs or failed with a clear message, and the jobs directory holds each
// run whole or not at all, none twice (issue "Hardening", section 2).

import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { adminCall } from "../../src/admin-client.js";
import type { Job } from "../../src/jobsdir/job.js";
import { MasterProcess, type RunResult } from "../helpers/master-process.js";

const RUNS = 200;
const IN_FLIGHT = 12;
const SLAVES = Array.from({ length: 25 }, (_, i) => `s${String(i + 1).padStart(2, "0")}`);
const JOBS = [
  "[job home]",
  `slave = ${SLAVES.join(", ")}`,
  "method = command",
  "command.program = /bin/true",
  "",
].join("\n");

/** The master's admin access log (log_dir/admin-access.log). */
function accessLog(m: MasterProcess): string {
  return readFileSync(path.join(m.dir, "log", "admin-access.log"), "utf8");
}

/** Connections to the admin socket the kernel holds, the listener's included (Linux). */
function socketEntries(socket: string): number {
  return readFileSync("/proc/net/unix", "utf8")
    .split("\n")
    .filter((line) => line.endsWith(` ${socket}`)).length;
}

/** Resolves when `check` holds, polling every 20 ms; rejects after `ms`. */
async function until(what: string, check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

t.test("200 abs runs of 25 slaves across two SIGKILLs: each run whole or not at all", async (t) => {
  const m = await MasterProcess.start(t, { jobs: JOBS });
  const results: RunResult[] = [];
  let done = 0;
  let next = 0;
  const doneListeners = new Set<() => void>();
  const untilDone = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (done < n) return;
        doneListeners.delete(check);
        resolve();
      };
      doneListeners.add(check);
      check();
    });
  const worker = async () => {
    while (next < RUNS) {
      const i = next++;
      results[i] = await m.abs(["run", "home"]);
      done += 1;
      for (const l of [...doneListeners]) l();
    }
  };
  const workers = Array.from({ length: IN_FLIGHT }, worker);

  // 1. Stopped with requests waiting on its socket, then killed: they lose their answer.
  await untilDone(40);
  m.signal("SIGSTOP");
  await until(
    "every worker waiting on the stopped master",
    // Every worker's command ends up waiting (its run, or the show-jobs that
    // prints the run): the listener and one connection each.
    () => socketEntries(m.socket) >= 1 + IN_FLIGHT,
    30_000,
  );
  m.signal("SIGKILL");
  t.same(await m.exit(), { code: null, signal: "SIGKILL" });
  await m.launch();

  // 2. Killed while it serves, at whatever point it is.
  await untilDone(120);
  m.signal("SIGKILL");
  await m.exit();
  await m.launch();

  await Promise.all(workers);
  await m.stop();

  // What the commands said.
  const printed: { ids: number[]; slaves: string[] }[] = [];
  let failed = 0;
  let retried = 0;
  for (const [i, r] of results.entries()) {
    if (/^abs: .*; retrying (run with the same request id|show-jobs)/m.test(r.stderr)) {
      retried += 1;
    }
    if (r.status === 0) {
      const lines = r.stdout.trimEnd().split("\n");
      const parsed = lines.map((l) => /^job (\d+) [a-z]+: home on (s\d\d)$/.exec(l));
      if (parsed.some((p) => p === null) || parsed.length !== 25) {
        t.fail(`run ${i} succeeded without its 25 jobs: ${JSON.stringify(r.stdout)}`);
        continue;
      }
      printed.push({
        ids: parsed.map((p) => Number(p?.[1])).sort((a, b) => a - b),
        slaves: parsed.map((p) => p?.[2] ?? "").sort(),
      });
    } else {
      failed += 1;
      if (!/^abs: .*(cannot reach the master|gave up retrying)/.test(r.stderr)) {
        t.fail(`run ${i} failed without a clear message: ${r.status} ${JSON.stringify(r.stderr)}`);
      }
    }
  }
  // At least half the workers: a connection counted may be one closing.
  t.ok(retried >= IN_FLIGHT / 2, `${retried} commands retried after losing their answer`);
  t.ok(printed.length > 0, `${printed.length} runs printed their jobs, ${failed} failed`);

  // What the jobs directory holds: every job by the request that made it.
  const byRequest = new Map<string, Job[]>();
  for (const name of readdirSync(m.jobsDir)) {
    if (!/^job-\d+\.json$/.test(name)) continue;
    const job = JSON.parse(readFileSync(path.join(m.jobsDir, name), "utf8")) as Job;
    const request = /\(abs run, request ([0-9a-f-]{36})\)$/.exec(job.log[0].message)?.[1];
    if (request === undefined) {
      t.fail(`job ${job.id} names no request: ${job.log[0].message}`);
      continue;
    }
    byRequest.set(request, [...(byRequest.get(request) ?? []), job]);
  }
  const partial = [...byRequest].filter(
    ([, jobs]) => jobs.length !== 25 || new Set(jobs.map((j) => j.slave)).size !== 25,
  );
  t.same(
    partial.map(([r, jobs]) => `${r}: ${jobs.length} jobs`),
    [],
    // A run done twice would show here: 50 jobs under its one request id.
    "every run recorded has one job on each of the 25 slaves, none twice",
  );
  const runs = new Map(
    [...byRequest.values()].map((jobs) => [
      jobs
        .map((j) => j.id)
        .sort((a, b) => a - b)
        .join(","),
      jobs,
    ]),
  );
  const matched = new Set<string>();
  for (const p of printed) {
    const key = p.ids.join(",");
    if (!runs.has(key)) t.fail(`printed jobs ${key} are not one run in the jobs directory`);
    if (matched.has(key)) t.fail(`two commands printed the same run ${key}`);
    matched.add(key);
    t.same(p.slaves, SLAVES, "on each slave once");
  }
  t.ok(
    byRequest.size - matched.size <= failed,
    `${byRequest.size} runs recorded: ${matched.size} printed, the rest (${byRequest.size - matched.size}) no more than the ${failed} commands that failed`,
  );
});

t.test(
  "a repeated request id gets the first answer, across a restart; reused, it is refused",
  async (t) => {
    const m = await MasterProcess.start(t, { jobs: JOBS });
    const first = await adminCall(
      m.socket,
      "run",
      { definition: "home" },
      { requestId: "nightly-0001" },
    );
    const again = await adminCall(
      m.socket,
      "run",
      { definition: "home" },
      { requestId: "nightly-0001" },
    );
    t.same(again, first, "the same jobs, not new ones");
    m.signal("SIGKILL");
    await m.exit();
    await m.launch();
    t.same(
      await adminCall(m.socket, "run", { definition: "home" }, { requestId: "nightly-0001" }),
      first,
      "after a SIGKILL and a restart too",
    );
    const { jobs } = (await m.call("show-jobs", { all: true })) as { jobs: unknown[] };
    t.equal(jobs.length, 25, "one run's jobs only");
    await t.rejects(
      adminCall(
        m.socket,
        "run",
        { definition: "home", slave: "s01" },
        { requestId: "nightly-0001" },
      ),
      {
        code: "REQUEST_ID_REUSED",
        message: /request id nightly-0001 was used at .* for run with other arguments/,
      },
    );
    await t.rejects(adminCall(m.socket, "cancel", { id: 1 }, { requestId: "nightly-0001" }), {
      code: "REQUEST_ID_REUSED",
    });
    await m.stop();
    t.match(accessLog(m), /run.*repeat.*nightly-0001/, "the access log says it was a repeat");
  },
);
