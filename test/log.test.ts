// The daemons' log files: the line format, the level, and reopening them
// by name for logrotate (real daemons, sent the signals).

import { readFileSync, renameSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { createDaemonLogger } from "../src/log.js";
import { MasterProcess } from "./helpers/master-process.js";
import { SlaveProcess } from "./helpers/slave-process.js";
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

t.test("the daemons reopen their logs on SIGUSR2 and SIGHUP (logrotate)", async (t) => {
  const m = await MasterProcess.start(t);
  const s = await SlaveProcess.start(t, { master: { port: m.port, keyFile: m.keyFile } });
  const masterLog = path.join(m.dir, "log", "master-daemon.log");
  const accessLog = path.join(m.dir, "log", "admin-access.log");
  const slaveLog = path.join(s.dir, "log", "slave-daemon.log");
  await m.call("status"); // a line in the access log before the rotation
  for (const f of [masterLog, accessLog, slaveLog]) renameSync(f, `${f}.1`);

  m.signal("SIGUSR2");
  await m.waitForOutput(/SIGUSR2: log files reopened/);
  await m.call("status");
  s.signal("SIGHUP");
  await s.waitForOutput(/SIGHUP: re-reading the config/);
  // Stopped, each daemon has flushed and closed its files.
  await s.stop();
  await m.stop();

  const read = (f: string): string => readFileSync(f, "utf8");
  t.match(read(`${masterLog}.1`), /abs-master pid \d+ serving/);
  t.notMatch(read(`${masterLog}.1`), /log files reopened/);
  t.match(read(masterLog), /^\S+ info SIGUSR2: log files reopened\n/);
  t.match(read(masterLog), /SIGTERM: stopping/);
  t.notMatch(read(masterLog), /serving/, "nothing from before the rotation");
  t.equal(read(`${accessLog}.1`).match(/admin request/g)?.length, 1);
  t.equal(read(accessLog).match(/admin request/g)?.length, 1, "the request after it");
  t.match(read(`${slaveLog}.1`), /registered with master/);
  t.match(
    read(slaveLog),
    /^\S+ info SIGHUP: log files reopened\n\S+ info SIGHUP: re-reading the config\n/,
  );
  t.match(read(slaveLog), /SIGTERM: stopping/);
});
