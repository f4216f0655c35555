// The slave's state directory: records round-trip; damaged, truncated and
// hostile records are quarantined with the field named; a crash between a
// result and the removal of its run record; temp files; the lock; a write
// that fails.

import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { ShapeError } from "../../src/json-shape.js";
import type { Logger } from "../../src/log.js";
import { StateDir } from "../../src/slave/state-dir.js";
import {
  type RunRecord,
  parseResultRecord,
  parseRunRecord,
  recordKindOf,
  serializeResultRecord,
  serializeRunRecord,
} from "../../src/slave/state-records.js";
import { type FsOps, realFsOps } from "../../src/storage/fs-ops.js";
import { tempDir } from "../helpers/tmp.js";

const RUN: RunRecord = {
  jobId: 12,
  attempt: 2,
  definition: "home",
  method: "tar",
  params: { sources: ["/home"], destination: "/srv/b" },
  maxRunTimeMs: null,
  startedAt: 1_700_000_000_000,
  pid: 4242,
};
const RESULT = { jobId: 12, attempt: 2, outcome: "succeeded" as const, message: "ok", data: {} };

function collecting(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const push = (level: string) => (m: string) => lines.push(`${level} ${m}`);
  return {
    lines,
    debug: push("debug"),
    info: push("info"),
    warn: push("warn"),
    error: push("error"),
  };
}

t.test("records round-trip; every truncation and every wrong field is named", (t) => {
  t.same(parseRunRecord(serializeRunRecord(RUN)), RUN);
  t.same(parseResultRecord(serializeResultRecord(RESULT)), RESULT);
  const text = serializeRunRecord(RUN);
  for (let n = 0; n < text.length - 1; n++) {
    t.throws(() => parseRunRecord(text.slice(0, n)), ShapeError, `prefix of ${n} bytes`);
  }
  const bad = (patch: Record<string, unknown>): string =>
    JSON.stringify({ ...JSON.parse(text), ...patch });
  t.throws(() => parseRunRecord(bad({ jobId: 0 })), {
    message: /^record\.jobId: expected an integer >= 1, got 0/,
  });
  t.throws(() => parseRunRecord(bad({ params: "x" })), {
    message: /^record\.params: expected an object/,
  });
  t.throws(() => parseRunRecord(bad({ version: 2 })), {
    message: "record.version: version 2, but this abs-slave reads version 1",
  });
  t.throws(() => parseResultRecord(bad({ outcome: "maybe" })), {
    message: /^record\.outcome: expected/,
  });
  t.throws(() => parseRunRecord("[]"), { message: /^record: expected an object/ });
  t.throws(() => parseRunRecord("\u0000\u00ff"), { message: /^record: not JSON/ });
  t.same(recordKindOf("run-12-2.json"), { kind: "run", jobId: 12, attempt: 2 });
  t.same(recordKindOf("result-1-1.json"), { kind: "result", jobId: 1, attempt: 1 });
  for (const name of [
    "run-0-1.json",
    "run-1-1.json.bak",
    "run--1-1.json",
    "lock",
    "result-1.json",
  ]) {
    t.equal(recordKindOf(name), null, name);
  }
  t.end();
});

t.test(
  "open: records read back; a result beside its run record wins; temp files removed",
  async (t) => {
    const dir = path.join(tempDir(t), "state");
    const logger = collecting();
    const first = await StateDir.open(dir, { logger });
    t.same(first.contents, { running: [], results: [], quarantined: [] });
    t.equal(readdirSync(dir).length, 1, "only the lock");
    await first.stateDir.writeRun(RUN);
    await first.stateDir.writeRun({ ...RUN, jobId: 13, attempt: 1 });
    await first.stateDir.writeResult({ ...RESULT, jobId: 13, attempt: 1 });
    // As if the slave died between the result and the removal of its run record:
    writeFileSync(
      path.join(dir, "run-14-1.json"),
      serializeRunRecord({ ...RUN, jobId: 14, attempt: 1 }),
    );
    writeFileSync(
      path.join(dir, "result-14-1.json"),
      serializeResultRecord({ ...RESULT, jobId: 14, attempt: 1 }),
    );
    writeFileSync(path.join(dir, ".tmp-result-15-1.json-1-1"), "half a wri");
    await first.stateDir.close();

    const second = await StateDir.open(dir, { logger });
    t.same(second.contents.running, [RUN]);
    t.same(
      second.contents.results.map((r) => r.jobId),
      [13, 14],
    );
    t.same(readdirSync(dir).sort(), [
      "lock",
      "result-13-1.json",
      "result-14-1.json",
      "run-12-2.json",
    ]);
    await second.stateDir.removeResult(13, 1);
    await second.stateDir.removeResult(13, 1); // a repeat ack
    t.notOk(existsSync(path.join(dir, "result-13-1.json")));
    await second.stateDir.close();
  },
);

t.test("damaged records are quarantined with the reason; the others load", async (t) => {
  const dir = path.join(tempDir(t), "state");
  mkdirSync(dir);
  writeFileSync(
    path.join(dir, "run-1-1.json"),
    serializeRunRecord({ ...RUN, jobId: 1, attempt: 1 }),
  );
  writeFileSync(path.join(dir, "run-2-1.json"), serializeRunRecord(RUN).slice(0, 30));
  writeFileSync(path.join(dir, "result-3-1.json"), serializeResultRecord(RESULT));
  writeFileSync(path.join(dir, "notes.txt"), "an admin's file is left alone");
  const logger = collecting();
  const { stateDir, contents } = await StateDir.open(dir, { logger });
  t.same(
    contents.running.map((r) => r.jobId),
    [1],
  );
  t.same(contents.results, []);
  t.same(
    contents.quarantined.map((q) => [path.basename(q.file), q.why]),
    [
      ["result-3-1.json", "record: holds job 12 attempt 2, but its name says job 3 attempt 1"],
      ["run-2-1.json", contents.quarantined[1]?.why ?? ""],
    ],
  );
  t.match(contents.quarantined[1]?.why, /^record: not JSON/);
  t.same(readdirSync(path.join(dir, "quarantine")).length, 2);
  t.ok(existsSync(path.join(dir, "notes.txt")));
  t.match(
    logger.lines.join("\n"),
    /error state directory: .*run-2-1\.json: record: not JSON.*moved to quarantine\//,
  );
  await stateDir.close();
});

t.test("a second slave is refused; a dead one's lock is taken over", async (t) => {
  const dir = path.join(tempDir(t), "state");
  const logger = collecting();
  const { stateDir } = await StateDir.open(dir, { logger });
  await t.rejects(StateDir.open(dir, { logger }), {
    code: "STATE_DIR_LOCKED",
    message: new RegExp(`^state directory ${dir} is locked by abs-slave pid ${process.pid} on `),
  });
  await stateDir.close();
  // A lock left by a process that is gone.
  writeFileSync(
    path.join(dir, "lock"),
    JSON.stringify({
      pid: 999_999_999,
      host: (await import("node:os")).hostname(),
      bootId: null,
      startTime: null,
      since: 1,
    }),
  );
  const again = await StateDir.open(dir, { logger });
  t.match(logger.lines.join("\n"), /took over the stale lock of abs-slave pid 999999999/);
  t.equal(
    (JSON.parse(readFileSync(path.join(dir, "lock"), "utf8")) as { pid: number }).pid,
    process.pid,
  );
  await again.stateDir.close();
});

t.test("a write that fails is a clear error and leaves no temp file", async (t) => {
  const dir = path.join(tempDir(t), "state");
  let fail = false;
  const fs: FsOps = {
    ...realFsOps,
    writeSynced: async (file, data) => {
      if (fail)
        throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
      return realFsOps.writeSynced(file, data);
    },
  };
  const { stateDir } = await StateDir.open(dir, { logger: collecting(), fs });
  fail = true;
  await t.rejects(stateDir.writeRun(RUN), {
    code: "STATE_DIR_IO",
    message: `cannot write ${dir}/run-12-2.json: ENOSPC: no space left on device`,
  });
  t.same(readdirSync(dir), ["lock"]);
  await stateDir.close();
});
