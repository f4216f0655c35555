// The disaster log: appends from many reports at once all land, each line
// whole and in the order appended, and an append resolves only once its
// lines are in the file; a log that cannot be opened is a clear error.
// Reading it back: hostile lines are named by FILE:LINE and field, an
// unfinished last line is skipped, a line split across reads is whole.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, chmodSync, chownSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { deriveDisasterLogKey, sealRecord } from "../../src/auth/disaster-log-key.js";
import {
  DisasterLog,
  type DisasterRecord,
  MAX_LINE_LENGTH,
  parseDisasterRecord,
  readDisasterLog,
} from "../../src/master/disaster-log.js";
import { NOBODY, runningAsRoot } from "../helpers/as-nobody.js";
import { tempDir } from "../helpers/tmp.js";

const KEY = deriveDisasterLogKey(randomBytes(32), "test realm key");
const OTHER_KEY = deriveDisasterLogKey(randomBytes(32), "another realm key");
const accept = (): null => null;

/** The line the fake master writes for `value`. */
function sealed(value: unknown): string {
  return sealRecord(KEY, JSON.stringify(value));
}

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
  const log = await DisasterLog.open(file, KEY);
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
  const again = await DisasterLog.open(file, KEY);
  await again.append([record(203)]);
  await again.close();
  t.equal(readFileSync(file, "utf8").trim().split("\n").length, 203);
});

t.test("a log that cannot be opened names the file", async (t) => {
  const file = path.join(tempDir(t), "no-such-dir", "disaster-log.jsonl");
  await t.rejects(DisasterLog.open(file, KEY), {
    code: "FILE_IO",
    message: new RegExp(`^cannot open the disaster log ${file}: .*ENOENT`),
  });
});

t.test("parseDisasterRecord reads what the fake master writes, and names a bad field", (t) => {
  const base = { time: 5, slave: "s", identity: "host/s@R", jobId: 3, attempt: 2 };
  t.same(parseDisasterRecord({ ...base, report: "started" }), { ...base, report: "started" });
  t.same(parseDisasterRecord(JSON.parse(JSON.stringify(record(4)))), record(4));
  t.match(
    parseDisasterRecord({
      ...base,
      report: "running",
      state: "running",
      progress: { files: 1, bytes: 2, path: null },
    }),
    { state: "running", progress: { files: 1, bytes: 2, path: null } },
  );
  t.same(
    parseDisasterRecord({
      ...base,
      report: "dispatched",
      definition: "home",
      method: "tar",
      params: { sources: ["/home"] },
    }),
    {
      ...base,
      report: "dispatched",
      definition: "home",
      method: "tar",
      params: { sources: ["/home"] },
    },
  );
  const bad: [unknown, RegExp][] = [
    [
      { ...base, report: "dispatched", method: "tar", params: {} },
      /^definition: expected a string/,
    ],
    [
      { ...base, report: "dispatched", definition: "d", method: "tar", params: [] },
      /^params: expected an object/,
    ],
    [null, /\(top level\): expected an object, got null/],
    [[], /expected an object/],
    [{ ...base, report: "gossip" }, /^report: expected one of dispatched, running, started/],
    [{ ...base, report: "started", jobId: -1 }, /^jobId: expected an integer >= 1, got -1/],
    [{ ...base, report: "started", slave: "" }, /^slave: expected a non-empty string/],
    [{ ...base, report: "result", outcome: "won", message: "" }, /^outcome: expected one of/],
    [{ ...base, report: "result", outcome: "failed" }, /^message: expected a string/],
    [{ ...base, report: "progress", progress: { files: "x" } }, /^progress\.files: expected/],
    [{ ...base, report: "reject" }, /^reason: expected a string/],
    [{ ...base, report: "running", state: "queued" }, /^state: expected one of dispatched/],
  ];
  for (const [value, why] of bad) {
    t.throws(() => parseDisasterRecord(value), why, JSON.stringify(value));
  }
  t.end();
});

t.test(
  "readDisasterLog: records in order; split and unfinished lines; bad lines named",
  async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, "log.jsonl");
    // Long enough to cross the read stream's 64 KiB chunks mid-line.
    const records = Array.from({ length: 3000 }, (_, i) => record(i + 1));
    writeFileSync(file, records.map((r) => sealed(r) + "\n").join("") + "\n");
    const seen: [number, number][] = [];
    const reading = await readDisasterLog(file, KEY, (r, line) => {
      seen.push([r.jobId, line]);
      return null;
    });
    t.equal(seen.length, 3000);
    t.same(seen[0], [1, 1]);
    t.same(seen[2999], [3000, 3000]);
    t.same(
      reading,
      { lines: 3001, unfinishedLine: null, refused: [], refusedCount: 0 },
      "a blank line is counted, not a record",
    );

    appendFileSync(file, '{"time":1,"slave":"s","ident');
    const again = await readDisasterLog(file, KEY, accept);
    t.match(again, { lines: 3002, unfinishedLine: 3002, refusedCount: 0 });

    // Bad lines are refused one by one, each with its reason; the good
    // ones around them are still read.
    const bad = path.join(dir, "bad.jsonl");
    const lines = [
      sealed(record(1)),
      sealRecord(KEY, "{not json}"),
      sealed({ ...record(2), attempt: 0 }),
      JSON.stringify(record(3)),
      sealed(record(4)).replace("job 4 done", "job 4 DONE"),
      sealRecord(OTHER_KEY, JSON.stringify(record(5))),
      sealed(record(6)),
      sealed(record(7)),
    ];
    for (let i = 0; i < 120; i++) lines.push("[]");
    writeFileSync(bad, lines.join("\n") + "\n");
    const read: number[] = [];
    const result = await readDisasterLog(bad, KEY, (r) => {
      read.push(r.jobId);
      return r.jobId === 7 ? "the caller refuses job 7" : null;
    });
    t.same(read, [1, 6, 7], "only records whose MAC verifies reach the caller");
    t.equal(result.refusedCount, 126);
    t.equal(result.refused.length, 100, "at most 100 refused lines are kept");
    const why = new Map(result.refused.map((r) => [r.line, r.reason]));
    t.equal(why.get(2), "not JSON");
    t.equal(why.get(3), "attempt: expected an integer >= 1, got 0");
    t.match(why.get(4), /^no MAC/);
    t.match(why.get(5), /^the MAC does not verify with the key derived from test realm key/);
    t.match(why.get(6), /^the MAC does not verify/, "sealed with another realm's key");
    t.equal(why.get(8), "the caller refuses job 7");
    t.match(why.get(9), /^no MAC/);

    // Any file the master can read may be named: its lines are not quoted back.
    const secret = path.join(dir, "shadow");
    writeFileSync(secret, "root:$6$secret:19000:0:99999:7:::\n");
    const leaked = await readDisasterLog(secret, KEY, accept);
    t.match(leaked.refused, [{ line: 1, reason: /^no MAC/ }]);
    t.notMatch(JSON.stringify(leaked), "$6$", "the line itself is not shown");
    // A FIFO would never end; a line longer than any report is not a log.
    const fifo = path.join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    await t.rejects(readDisasterLog(fifo, KEY, accept), {
      code: "BAD_ARGUMENT",
      message: `cannot read the disaster log ${fifo}: not a regular file; nothing was imported`,
    });
    const long = path.join(dir, "long.jsonl");
    writeFileSync(long, sealed(record(1)) + "\n" + "x".repeat(MAX_LINE_LENGTH + 10));
    await t.rejects(readDisasterLog(long, KEY, accept), {
      message: `cannot read the disaster log ${long}: line 2 is longer than ${MAX_LINE_LENGTH} characters; nothing was imported`,
    });
    t.throws(() => parseDisasterRecord({ ...record(1), time: 9e15 }), /^time: expected an integer/);
    await t.rejects(readDisasterLog(path.join(dir, "none"), KEY, accept), {
      code: "BAD_ARGUMENT",
      message: /cannot read the disaster log .*none: .*ENOENT/,
    });
  },
);

t.test(
  "readDisasterLog refuses a log someone else could have written: nothing is read",
  { skip: runningAsRoot() ? false : "needs root to chown the log to nobody" },
  async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, "log.jsonl");
    writeFileSync(file, sealed(record(1)) + "\n");
    let read = 0;
    const count = (): null => {
      read += 1;
      return null;
    };
    chmodSync(file, 0o666);
    await t.rejects(readDisasterLog(file, KEY, count), {
      code: "BAD_ARGUMENT",
      message: `cannot read the disaster log ${file}: writable by group and others (mode 0666): anyone among them could change it; run \`chmod go-w ${file}\`; nothing was imported`,
    });
    chmodSync(file, 0o602);
    await t.rejects(readDisasterLog(file, KEY, count), {
      message: /writable by others \(mode 0602\)/,
    });
    chmodSync(file, 0o640);
    chownSync(file, NOBODY, NOBODY);
    await t.rejects(readDisasterLog(file, KEY, count), {
      message: new RegExp(
        `^cannot read the disaster log ${file}: owned by uid ${NOBODY}, not by root: anyone with that uid could change it`,
      ),
    });
    t.equal(read, 0, "not one record was read");
    chownSync(file, 0, 0);
    await readDisasterLog(file, KEY, count);
    t.equal(read, 1, "root's own file is read");
  },
);
