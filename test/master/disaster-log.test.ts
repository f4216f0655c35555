// The disaster log: appends from many reports at once all land, each line
// whole and in the order appended, and an append resolves only once its
// lines are in the file; a log that cannot be opened is a clear error.

import { readFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { DisasterLog, type DisasterRecord } from "../../src/master/disaster-log.js";
import { tempDir } from "../helpers/tmp.js";

function record(jobId: number): DisasterRecord {
  return {
    time: 1_700_000_000_000 + jobId,
    slave: "green-acres",
    identity: "green-acres",
    report: "result",
    jobId,
    attempt: 1,
    outcome: "succeeded",
    message: `job ${jobId} done`,
    data: { n: jobId },
  };
}

t.test("concurrent appends: every line whole, in order, on disk when resolved", async (t) => {
  const file = path.join(tempDir(t), "disaster-log.jsonl");
  const log = await DisasterLog.open(file);
  const appended: Promise<void>[] = [];
  for (let i = 1; i <= 200; i++) {
    const p = log.append([record(i)]);
    appended.push(
      p.then(() => {
        // Resolved: this record (and all before it) is in the file.
        const lines = readFileSync(file, "utf8").trim().split("\n");
        t.ok(lines.length >= i, `line ${i} is there when its append resolves`);
      }),
    );
  }
  await Promise.all(appended);
  await log.append([record(201), record(202)]);
  await log.close();
  const ids = readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => (JSON.parse(l) as DisasterRecord).jobId);
  t.same(
    ids,
    Array.from({ length: 202 }, (_, i) => i + 1),
  );

  // Reopened, it appends after what is there.
  const again = await DisasterLog.open(file);
  await again.append([record(203)]);
  await again.close();
  t.equal(readFileSync(file, "utf8").trim().split("\n").length, 203);
});

t.test("a log that cannot be opened names the file", async (t) => {
  const file = path.join(tempDir(t), "no-such-dir", "disaster-log.jsonl");
  await t.rejects(DisasterLog.open(file), {
    code: "CONFIG",
    message: new RegExp(`^cannot open the disaster log ${file}: .*ENOENT`),
  });
});
