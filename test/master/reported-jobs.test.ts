// The fake master's view of reported attempts stays bounded: a slave that
// reports thousands of job ids it was never given (the fake master takes
// every report) grows neither the view nor the master's memory past the
// bound; the disaster log still holds every report.

import { readFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { adminCall } from "../../src/admin-client.js";
import { connectToMaster } from "../../src/auth/link-client.js";
import { generateRealmKey, loadRealmKey } from "../../src/auth/realm-key.js";
import { loadMasterConfig } from "../../src/config/master-config.js";
import { DISASTER_LOG_FILE, FakeMaster } from "../../src/master/fake-master.js";
import { MAX_REPORTED_ATTEMPTS, ReportedJobs } from "../../src/master/reported-jobs.js";
import type { JobView } from "../../src/protocol/admin-api.js";
import { within } from "../fixtures/link-harness.js";
import { CollectingLogger } from "../helpers/log.js";
import { tempDir } from "../helpers/tmp.js";

t.test("the bound is 100,000 attempts; the least recently reported goes first", (t) => {
  t.equal(new ReportedJobs().max, MAX_REPORTED_ATTEMPTS);
  t.equal(MAX_REPORTED_ATTEMPTS, 100_000);
  const views = new ReportedJobs(2);
  const view = (id: number) => ({ id }) as JobView;
  views.set("a", view(1));
  views.set("b", view(2));
  views.set("a", view(3)); // reported again: now the most recent
  views.set("c", view(4));
  t.same(
    [...views.values()].map((v) => v.id),
    [3, 4],
  );
  t.equal(views.get("b"), undefined);
  t.end();
});

t.test("a slave reporting thousands of unknown jobs to the fake master", async (t) => {
  const dir = tempDir(t, "abs-fake-");
  const keyFile = path.join(dir, "realm.key");
  await generateRealmKey(keyFile);
  const loaded = loadMasterConfig([
    {
      file: "master.conf",
      text: [
        "[master]",
        "realm = TEST.ABS",
        "listen = 127.0.0.1:0",
        `jobs_dir = ${path.join(dir, "jobs")}`,
        `state_dir = ${path.join(dir, "state")}`,
        `log_dir = ${path.join(dir, "log")}`,
        `admin_socket = ${path.join(dir, "admin.sock")}`,
        `realm_key_file = ${keyFile}`,
        "",
      ].join("\n"),
    },
  ]);
  if ("errors" in loaded) throw new Error(JSON.stringify(loaded.errors));
  const fake = await FakeMaster.start({
    config: loaded.config,
    logger: new CollectingLogger(),
    hostName: "fake.test",
    maxReportedAttempts: 100,
  });
  t.teardown(() => fake.stop());
  const conn = await connectToMaster({
    host: "127.0.0.1",
    port: fake.linkPort,
    name: "green-acres",
    auth: { mode: "realm-key", realmKey: await loadRealmKey(keyFile) },
  });
  t.teardown(() => conn.close());
  const n = 500;
  let lastAcked: () => void = () => undefined;
  const allRecorded = new Promise<void>((resolve) => (lastAcked = resolve));
  const registered = new Promise<void>((resolve) =>
    conn.onMessage((m) => {
      if (m.type === "registered") resolve();
      // A result last: its ack says every report before it was recorded.
      if (m.type === "ack" && m.jobId === n + 1) lastAcked();
    }),
  );
  conn.send({ type: "register", name: "green-acres", maxJobs: 2, running: [], results: [] });
  await within(registered, "registered");
  for (let id = 1; id <= n; id++) {
    conn.send({ type: "started", jobId: id, attempt: 1 });
  }
  conn.send({
    type: "result",
    jobId: n + 1,
    attempt: 1,
    outcome: "succeeded",
    message: "",
    data: {},
  });
  await within(allRecorded, "the ack of the last report", 30_000);
  const shown = (await adminCall(loaded.config.adminSocket, "show-jobs", {})) as unknown as {
    jobs: JobView[];
  };
  t.equal(shown.jobs.length, 100, "abs show jobs holds the bound, not 501");
  t.same(
    shown.jobs.map((j) => j.id),
    Array.from({ length: 100 }, (_, i) => n - 98 + i),
    "the most recently reported",
  );
  const logged = readFileSync(path.join(dir, "state", DISASTER_LOG_FILE), "utf8").trim();
  t.equal(logged.split("\n").length, n + 1, "the disaster log has every report");
});
