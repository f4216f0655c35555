import { readFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { createDaemonLogger } from "../src/log.js";
import { tempDir } from "./helpers/tmp.js";

t.test("the daemon log: one line per event with its key=value context", async (t) => {
  const file = path.join(tempDir(t), "master-daemon.log");
  const log = createDaemonLogger({ file });
  log.info("job dispatched", { job: 12, slave: "green-acres" });
  log.debug("not at info level");
  log.warn("plain");
  await log.close();
  const lines = readFileSync(file, "utf8").trim().split("\n");
  t.equal(lines.length, 2);
  t.match(lines[0], /^\d{4}-\d\d-\d\dT\S+Z info job dispatched job=12 slave=green-acres$/);
  t.match(lines[1], /Z warn plain$/);
});

t.test("debug level with -d", async (t) => {
  const file = path.join(tempDir(t), "slave-daemon.log");
  const log = createDaemonLogger({ file, debug: true });
  log.debug("frame received", { bytes: 10 });
  await log.close();
  t.match(readFileSync(file, "utf8"), /debug frame received bytes=10/);
});
