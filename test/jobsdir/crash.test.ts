// Crash test: a child process changes jobs in a loop and is SIGKILLed, round
// after round, on the same directory. After each kill the directory must
// hold no job id above its serial (live or archived: the serial is written
// before any file that uses an id), and a reload must find every change the
// child had been told was durable, no partial or unparseable job file, and
// no id handed out twice.
//
// The child submits single jobs and runs of several at once, so many commit
// groups are under way together (fixtures/jobsdir-writer.ts). Most rounds
// kill it at a random moment. The others kill it right after it has made
// the interleaving that once left a job above the serial: a group held in
// its temp writes while the next group writes all of its own (a random kill
// met that window about once in 14 rounds of 500 submissions).

import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import t from "tap";
import { JobStore } from "../../src/jobsdir/job-store.js";
import { ARCHIVE_DIR, SERIAL_FILE, jobIdFromFileName } from "../../src/jobsdir/layout.js";
import { tempDir } from "../helpers/tmp.js";

const WRITER = fileURLToPath(new URL("../fixtures/jobsdir-writer.js", import.meta.url));
const ROUNDS = 50;
/** One round in HOLD_EVERY makes the held interleaving; the others kill at random. */
const HOLD_EVERY = 3;

/** A small seeded PRNG, so that a failing run can be repeated. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface Acked {
  definition: string;
  serial: number;
}

/** When a round's writer is killed: after so many acknowledgements, or once its held group has landed. */
type Kill = { after: number } | { holdAfter: number };

/** Runs the writer and SIGKILLs it as `kill` says; resolves with the acknowledgements seen. */
function runAndKill(
  dir: string,
  tag: string,
  kill: Kill,
  acked: Map<number, Acked>,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const args =
      "holdAfter" in kill ? [WRITER, dir, tag, String(kill.holdAfter)] : [WRITER, dir, tag];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let count = 0;
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const [kind, a, b, c] = line.split(" ");
      const id = Number(a);
      if (kind === "sub") {
        if (acked.has(id))
          reject(new Error(`id ${id} handed out twice: ${acked.get(id)?.definition} and ${b}`));
        acked.set(id, { definition: b, serial: Number(c) });
      } else if (kind === "upd") {
        const entry = acked.get(id);
        if (entry !== undefined) entry.serial = Math.max(entry.serial, Number(b));
      }
      if (kind === "quiet") child.kill("SIGKILL");
      if (kind === "ready" || kind === "quiet") return;
      count += 1;
      if ("after" in kill && count === kill.after) child.kill("SIGKILL");
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL") resolve(count);
      else reject(new Error(`writer exited with ${code} before it was killed`));
    });
  });
}

/** The serial on disk and the job ids above it, in the directory and its archive, before any load. */
function idsAboveSerial(dir: string): { serial: number; above: number[] } {
  const serialFile = path.join(dir, SERIAL_FILE);
  const serial = existsSync(serialFile) ? Number(readFileSync(serialFile, "utf8").trim()) : 0;
  const ids = (d: string): number[] =>
    readdirSync(d)
      .map(jobIdFromFileName)
      .filter((id): id is number => id !== null);
  const archive = path.join(dir, ARCHIVE_DIR);
  const all = [
    ...ids(dir),
    ...(existsSync(archive) ? readdirSync(archive).flatMap((b) => ids(path.join(archive, b))) : []),
  ];
  return { serial, above: all.filter((id) => id > serial).sort((a, b) => a - b) };
}

t.test(
  `SIGKILL, ${ROUNDS} rounds: the serial covers every id, nothing acknowledged is lost`,
  // About a second a round on two busy cores.
  { timeout: 150_000 },
  async (t) => {
    const seed = Number(process.env.ABS_CRASH_SEED ?? Date.now() % 100000);
    t.comment(`seed ${seed} (repeat with ABS_CRASH_SEED=${seed})`);
    const random = prng(seed);
    const dir = tempDir(t);
    const acked = new Map<number, Acked>();

    for (let round = 1; round <= ROUNDS; round++) {
      const kill: Kill =
        round % HOLD_EVERY === 0
          ? { holdAfter: Math.floor(random() * 40) }
          : { after: 1 + Math.floor(random() * 150) };
      const seen = await runAndKill(dir, `r${round}`, kill, acked);
      if ("after" in kill) {
        t.ok(seen >= kill.after, `round ${round}: killed after ${seen} acknowledgements`);
      } else {
        t.ok(
          seen >= kill.holdAfter,
          `round ${round}: killed once the held group landed, after ${seen} acknowledgements`,
        );
      }

      const onDisk = idsAboveSerial(dir);
      t.same(
        onDisk.above,
        [],
        `round ${round}: serial ${onDisk.serial} is at least every job id on disk, live and archived`,
      );

      const store = await JobStore.open({ dir });
      try {
        t.same(
          store.loadReport.quarantined,
          [],
          `round ${round}: no partial or unparseable job file`,
        );
        t.equal(
          store.loadReport.staleLock?.pid !== undefined,
          true,
          `round ${round}: the dead writer's lock was stale`,
        );
        const missing: number[] = [];
        let wrong = 0;
        // Read in parallel: by the last rounds there are thousands of archived jobs.
        const found = await Promise.all(
          [...acked].map(async ([id, want]) => {
            // An archive under way when the writer died may have moved the job
            // before it was acknowledged: look in the archive for every job.
            const job = store.get(id) ?? (await store.readArchived(id).catch(() => undefined));
            return { id, want, job };
          }),
        );
        for (const { id, want, job } of found) {
          if (job === undefined) {
            missing.push(id);
          } else if (job.definition !== want.definition || job.serial < want.serial) {
            wrong += 1;
          }
        }
        t.same(
          missing,
          [],
          `round ${round}: every acknowledged job is there (${acked.size} so far)`,
        );
        t.equal(
          wrong,
          0,
          `round ${round}: each job has its own definition and at least its acknowledged change`,
        );
        const highest = Math.max(...acked.keys());
        t.ok(
          store.highestId >= highest,
          `round ${round}: ids go on after ${store.highestId}, above every acknowledged one (${highest})`,
        );
      } finally {
        await store.close();
      }
      t.same(
        readdirSync(dir).filter((n) => n.startsWith(".tmp-")),
        [],
        `round ${round}: no temp file left after a load`,
      );
    }
  },
);
