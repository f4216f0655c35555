// The whole master (jobs directory, slave link, dispatcher, scheduler, admin
// socket) started in the test's own process, on temp dirs under `dir`, with
// the options a test needs to steer (a fake clock, a sysfs of its own).

import path from "node:path";
import type { Test } from "tap";
import { loadMasterConfig, type MasterConfig } from "../../src/config/master-config.js";
import { Master, type MasterOptions } from "../../src/master/master.js";
import { CollectingLogger } from "./log.js";

export const TEST_TIME_ZONE = "Europe/Paris";

/** A master.conf in `dir` with the given extra `[master]` lines, then `jobs`. */
export function inProcessConfig(dir: string, masterLines: string[], jobs: string): MasterConfig {
  const text = [
    "[master]",
    "realm = TEST.ABS",
    "listen = 127.0.0.1:0",
    `jobs_dir = ${path.join(dir, "jobs")}`,
    `state_dir = ${path.join(dir, "state")}`,
    `log_dir = ${path.join(dir, "log")}`,
    `admin_socket = ${path.join(dir, "admin.sock")}`,
    `realm_key_file = ${path.join(dir, "realm.key")}`,
    ...masterLines,
    "",
    jobs,
  ].join("\n");
  const loaded = loadMasterConfig([{ file: path.join(dir, "master.conf"), text }], {
    localTimeZone: TEST_TIME_ZONE,
  });
  if ("errors" in loaded) throw new Error(loaded.errors.map((e) => e.message).join("\n"));
  return loaded.config;
}

/** Starts a master on `config` (from inProcessConfig(dir, ...)); stopped when the test ends. */
export async function startInProcess(
  t: Test,
  dir: string,
  config: MasterConfig,
  options: Pick<MasterOptions, "clock" | "sysfs"> = {},
): Promise<{ master: Master; logger: CollectingLogger }> {
  const logger = new CollectingLogger();
  const master = await Master.start({
    configPath: path.join(dir, "master.conf"),
    config,
    logger,
    hostName: "master.test",
    localTimeZone: TEST_TIME_ZONE,
    ...options,
  });
  t.teardown(() => master.stop());
  return { master, logger };
}
