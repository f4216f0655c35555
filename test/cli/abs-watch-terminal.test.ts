// `abs watch` on a terminal, against a real abs-master and a test slave on
// the authenticated link. abs runs on a pseudo-terminal (util-linux
// `script`) set to 100 columns, so its stdout is a TTY of a known width.
// The first run of a definition has nothing to be measured against: counts
// without a bar. The second is measured against the first: a bar, until it
// goes past the estimate. Beside it, the plain and --json output of the same
// watch stay as they were.

import { spawn } from "node:child_process";
import t from "tap";
import { TestSlave } from "../fixtures/test-slave.js";
import { waitForJob } from "../helpers/admin-wait.js";
import { ABS_BIN, MasterProcess } from "../helpers/master-process.js";

const GiB = 1024 ** 3;
const ESC = "\x1b";
/** What abs watch writes before each progress line and each log line on a terminal. */
const ERASE_LINE = `\r${ESC}[K`;
const JOBS = [
  "[job home]",
  "slave = green-acres",
  "method = command",
  "command.program = /bin/true",
  "",
].join("\n");

interface Terminal {
  /** Resolves once the output holds `text`; rejects if abs exits first or after 30 s. */
  shows(text: string): Promise<void>;
  /** abs's exit status (script passes it on, -e) and everything it wrote. */
  exited: Promise<{ status: number | null; out: string }>;
}

/** Runs `abs -s SOCKET ...args` on a 100-column pseudo-terminal. */
function onTerminal(socket: string, args: string[]): Terminal {
  const words = [process.execPath, ABS_BIN, "-s", socket, ...args].map((w) => `'${w}'`);
  const command = `stty cols 100 rows 24 && exec ${words.join(" ")}`;
  const child = spawn("script", ["-qfec", command, "/dev/null"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  const waiting = new Set<() => void>();
  const onData = (c: Buffer): void => {
    out += c.toString();
    for (const check of waiting) check();
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const exited = new Promise<{ status: number | null; out: string }>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (status) => resolve({ status, out }));
  });
  return {
    exited,
    shows: (text) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => done(new Error(`no ${JSON.stringify(text)} in: ${out}`)),
          30_000,
        );
        const check = (): void => {
          if (out.includes(text)) done();
        };
        const done = (err?: Error): void => {
          clearTimeout(timer);
          waiting.delete(check);
          if (err === undefined) resolve();
          else reject(err);
        };
        void exited.then(() =>
          done(new Error(`abs exited before showing ${JSON.stringify(text)}: ${out}`)),
        );
        waiting.add(check);
        check();
      }),
  };
}

/** The progress lines drawn in `out`: after an erase-line, and not a log line (a timestamp) or nothing. */
function progressLines(out: string): string[] {
  return out
    .split(ERASE_LINE)
    .slice(1)
    .map((drawn) => drawn.split(/[\r\n]/)[0] ?? "")
    .filter((l) => l !== "" && !/^\d{4}-\d\d-\d\dT/.test(l));
}

t.test("abs watch on a terminal: counts without an estimate, a bar with one", async (t) => {
  const m = await MasterProcess.start(t, { jobs: JOBS });
  const s = await TestSlave.connect({
    port: m.port,
    name: "green-acres",
    realmKeyFile: m.keyFile,
    behavior: "hold",
  });
  t.teardown(() => s.close());

  // The first run: nothing earlier to go by.
  const next1 = s.next("dispatch");
  t.equal((await m.abs(["run", "home"])).status, 0);
  const d1 = await next1;
  s.started(d1);
  s.progress(d1, 3000, 3 * GiB, "/home/alice/first");
  await waitForJob(m, d1.jobId, (j) => j.progress !== null);
  const first = onTerminal(m.socket, ["watch", String(d1.jobId)]);
  await first.shows("3.0 GiB  3,000 files");
  s.result(d1, "succeeded", "3000 files, 3.0 GiB");
  const w1 = await first.exited;
  t.equal(w1.status, 0, "exit 0: the job succeeded");
  if (w1.status !== 0) t.comment(w1.out);
  const counts = /^3\.0 GiB {2}3,000 files {2}(.+ {2})?\/home\/alice\/first$/;
  t.ok(
    progressLines(w1.out).some((l) => counts.test(l)),
    "counts, rate (after a second) and path",
  );
  t.notMatch(w1.out, /\[[#-]+\]|%/, "no bar and no percentage without an estimate");
  t.match(w1.out, /job 1 succeeded: 3000 files, 3\.0 GiB/);

  // The second run: measured against the first, 1.2 GiB of 3.0 GiB.
  const next2 = s.next("dispatch");
  t.equal((await m.abs(["run", "home"])).status, 0);
  const d2 = await next2;
  s.started(d2);
  s.progress(d2, 1200, 1_288_490_189, "/home/alice/second");
  await waitForJob(m, d2.jobId, (j) => j.progress !== null);
  const id = String(d2.jobId);
  const plain = m.abs(["watch", id]);
  const json = m.abs(["watch", id, "--json"]);
  const second = onTerminal(m.socket, ["watch", id]);
  await second.shows("[########------------]   40%  1.2 GiB of 3.0 GiB  1,200 files");
  // Past the estimate: the counts, no percentage above 100.
  s.progress(d2, 4000, 4 * GiB, "/home/alice/more");
  await second.shows(`${ERASE_LINE}4.0 GiB  4,000 files`);
  s.result(d2, "succeeded", "4000 files, 4.0 GiB");
  const w2 = await second.exited;
  t.equal(w2.status, 0, "exit 0: the job succeeded");
  if (w2.status !== 0) t.comment(w2.out);
  const drawn = progressLines(w2.out);
  t.ok(drawn.length >= 2, "the progress drawn at each change");
  for (const line of drawn) t.ok(line.length <= 99, `fits in 99 columns: ${JSON.stringify(line)}`);
  t.notMatch(w2.out, /1\d\d%/, "never more than 99%");
  t.match(w2.out, /job 2 succeeded: 4000 files, 4\.0 GiB/);

  // The same watch on a pipe, and --json: as they always were.
  const p = await plain;
  t.equal(p.status, 0);
  t.match(p.stdout, /^job 2: home on green-acres\n/);
  t.match(p.stdout, /\nprogress: 1200 files, 1\.2 GiB, \/home\/alice\/second\n/);
  t.match(p.stdout, /\nprogress: 4000 files, 4\.0 GiB, \/home\/alice\/more\n/);
  t.notOk(p.stdout.includes(ESC) || p.stdout.includes("%"), "no terminal control, no percentage");
  const j = await json;
  t.equal(j.status, 0);
  const objects = j.stdout
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(objects.length >= 2, "one object per change");
  for (const o of objects) {
    t.equal(o.id, 2);
    t.notOk("expected" in o, "the job as show job has it, no estimate added");
  }
});
