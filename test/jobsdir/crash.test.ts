// Crash test: a child process changes jobs in a loop and is SIGKILLed at a
// random moment, round after round, on the same directory. After each kill a
// reload must find every change the child had been told was durable, no
// partial or unparseable job file, and no id handed out twice.

import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import t from "tap";
import { JobStore } from "../../src/jobsdir/job-store.js";
import { tempDir } from "../helpers/tmp.js";

const WRITER = fileURLToPath(new URL("../fixtures/jobsdir-writer.js", import.meta.url));
const ROUNDS = 24;

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

/** Runs the writer until it has printed `killAfter` acknowledgements, then SIGKILLs it. */
function runAndKill(
  dir: string,
  tag: string,
  killAfter: number,
  acked: Map<number, Acked>,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, dir, tag], {
      stdio: ["ignore", "pipe", "inherit"],
    });
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
      if (kind !== "ready") count += 1;
      if (count === killAfter) child.kill("SIGKILL");
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL") resolve(count);
      else reject(new Error(`writer exited with ${code} before it was killed`));
    });
  });
}

t.test(`SIGKILL at random moments, ${ROUNDS} rounds: nothing acknowledged is lost`, async (t) => {
  const seed = Number(process.env.ABS_CRASH_SEED ?? Date.now() % 100000);
  t.comment(`seed ${seed} (repeat with ABS_CRASH_SEED=${seed})`);
  const random = prng(seed);
  const dir = tempDir(t);
  const acked = new Map<number, Acked>();

  for (let round = 1; round <= ROUNDS; round++) {
    const killAfter = 1 + Math.floor(random() * 400);
    const seen = await runAndKill(dir, `r${round}`, killAfter, acked);
    t.ok(seen >= killAfter, `round ${round}: killed after ${seen} acknowledgements`);

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
      for (const [id, want] of acked) {
        // An archive under way when the writer died may have moved the job
        // before it was acknowledged: look in the archive for every job.
        const job = store.get(id) ?? (await store.readArchived(id).catch(() => undefined));
        if (job === undefined) {
          missing.push(id);
        } else if (job.definition !== want.definition || job.serial < want.serial) {
          wrong += 1;
        }
      }
      t.same(missing, [], `round ${round}: every acknowledged job is there (${acked.size} so far)`);
      t.equal(
        wrong,
        0,
        `round ${round}: each job has its own definition and at least its acknowledged change`,
      );
      const highest = Math.max(...acked.keys());
      t.ok(
        store.highestId >= highest,
        `round ${round}: the serial ${store.highestId} covers id ${highest}`,
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
});
