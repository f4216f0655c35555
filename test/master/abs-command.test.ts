// The `abs` command against a real abs-master process and a test slave on
// the authenticated link: what an administrator types, what it prints, and
// its exit statuses.

import t from "tap";
import { TestSlave } from "../fixtures/test-slave.js";
import { waitForState } from "../helpers/admin-wait.js";
import { MasterProcess } from "../helpers/master-process.js";

const JOBS = [
  "[job home]",
  "slave = green-acres",
  "schedule = 0 2 * * *",
  "timezone = Europe/Paris",
  "method = command",
  "command.program = /bin/true",
  "",
  "[job attic]",
  "slave = green-acres",
  "method = command",
  "command.program = /bin/true",
  "",
].join("\n");

t.test("abs run, show jobs, watch, show job, cancel, archive against a real master", async (t) => {
  const m = await MasterProcess.start(t, { jobs: JOBS });
  t.match(m.log, /abs-master pid \d+ serving \(auth realm-key; \S+master\.conf: OK; /);
  const status = await m.abs(["status", "--json"]);
  t.match(JSON.parse(status.stdout), { auth: "realm-key", servicePrincipal: null });

  // Nothing yet.
  let r = await m.abs(["show", "jobs"]);
  t.equal(r.status, 0);
  t.equal(r.stdout, "no unfinished or recently ended jobs (--all lists every job)\n");

  // A run while the slave is away: queued, and the table says why it waits.
  r = await m.abs(["run", "home"]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^job 1 queued: home on green-acres\n$/);
  r = await m.abs(["show", "jobs"]);
  t.equal(r.status, 0);
  const [header, row] = r.stdout.trimEnd().split("\n");
  t.match(header, /^\s*ID\s+DEFINITION\s+SLAVE\s+STATE\s+ATTEMPT\s+RECEIVED\s+STARTED\s+INFO$/);
  t.match(
    row,
    /^\s*1\s+home\s+green-acres\s+queued\s+1\s+.*waiting for slave green-acres to connect$/,
  );
  t.equal(
    header.indexOf("STATE"),
    row.indexOf("queued"),
    "columns are aligned under their headers",
  );

  // The slave connects and holds the job; `abs watch` follows it to the end.
  const s = await TestSlave.connect({
    port: m.port,
    name: "green-acres",
    realmKeyFile: m.keyFile,
    behavior: "hold",
  });
  t.teardown(() => s.close());
  const d = await s.next("dispatch");
  const watching = m.abs(["watch", "1"]);
  s.started(d);
  s.progress(d, 12, 4096, "/home/alice");
  await waitForState(m, 1, "running");
  s.result(d, "succeeded", "12 files, 4.0 KiB");
  const w = await watching;
  t.equal(w.status, 0, "watch exits 0 when the job succeeds");
  t.match(w.stdout, /succeeded on green-acres: 12 files, 4\.0 KiB/);

  r = await m.abs(["show", "job", "1"]);
  t.equal(r.status, 0);
  t.match(r.stdout, /state:\s+succeeded/);
  t.match(
    r.stdout,
    /received: home on green-acres, run by an administrator \(abs run, request [0-9a-f-]{36}\)/,
  );

  r = await m.abs(["show", "jobs", "--json"]);
  const listed = JSON.parse(r.stdout) as { jobs: { id: number; state: string }[] };
  t.same(
    listed.jobs.map((j) => [j.id, j.state]),
    [[1, "succeeded"]],
  );

  // A failed run: watch exits 10. A canceled one: 11.
  const next2 = s.next("dispatch");
  await m.abs(["run", "attic"]);
  const d2 = await next2;
  const failing = m.abs(["watch", String(d2.jobId)]);
  s.started(d2);
  s.result(d2, "failed", "exit status 2");
  t.equal((await failing).status, 10, "watch exits 10 when the job fails");

  const next3 = s.next("dispatch");
  await m.abs(["run", "attic"]);
  const d3 = await next3;
  const canceled = m.abs(["watch", String(d3.jobId)]);
  const asked = s.next("cancel");
  r = await m.abs(["cancel", String(d3.jobId)]);
  t.equal(r.status, 0, r.stderr);
  await asked;
  s.result(d3, "canceled", "stopped");
  t.equal((await canceled).status, 11, "watch exits 11 when the job is canceled");

  // Refusals, each with its exit status and no stack trace.
  r = await m.abs(["cancel", "1"]);
  t.equal(r.status, 5, "cancel of a finished job: refused in its present state");
  t.match(r.stderr, /^abs: job 1 is already succeeded\n$/);
  r = await m.abs(["show", "job", "999"]);
  t.equal(r.status, 4);
  t.match(r.stderr, /^abs: job 999 does not exist\n$/);
  r = await m.abs(["run", "nosuch"]);
  t.equal(r.status, 4);
  t.equal(r.stderr, 'abs: no job definition "nosuch" (defined: home, attic)\n');
  r = await m.abs(["show", "jobs", "--state", "runing"]);
  t.equal(r.status, 2);
  t.notMatch(r.stderr, /\n\s+at /, "no stack trace");

  // Drain: a run is refused while drained.
  t.equal((await m.abs(["drain", "on"])).status, 0);
  r = await m.abs(["run", "attic"]);
  t.equal(r.status, 5);
  t.equal((await m.abs(["drain", "off"])).status, 0);

  // Archive the finished jobs; they leave the list and stay readable.
  r = await m.abs(["archive", "1"]);
  t.equal(r.status, 0, r.stderr);
  r = await m.abs(["show", "jobs", "--all", "--json"]);
  const left = JSON.parse(r.stdout) as { jobs: { id: number }[] };
  t.notOk(
    left.jobs.some((j) => j.id === 1),
    "archived jobs are not listed",
  );
  r = await m.abs(["show", "job", "1"]);
  t.equal(r.status, 0);
  t.match(r.stdout, /archived/);

  // The schedule and the slaves.
  r = await m.abs(["show", "schedule", "--days", "2"]);
  t.equal(r.status, 0);
  t.match(r.stdout, /home\s+green-acres\s+0 2 \* \* \*\s+Europe\/Paris/);
  r = await m.abs(["show", "slaves"]);
  t.equal(r.status, 0);
  t.match(r.stdout, /green-acres\s+yes/);

  await m.stop();
  r = await m.abs(["status"]);
  t.equal(r.status, 3, "a stopped master: cannot reach (3)");
  t.match(r.stderr, /cannot reach the master on .*admin\.sock/);
});
