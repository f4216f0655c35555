#!/usr/bin/env node
// The master daemon. Thin: parses argv, checks the config, starts the
// Master (src/master/master.ts), installs the signal handlers, and maps
// failures to exit statuses.
//
//   abs-master [-f] [-d] [-c FILE] [-t]
//
// Exit statuses: 0 stopped cleanly (or -t: the config is valid); 1 the
// config is invalid or the master could not start (the message says why);
// 2 bad usage.

import { mkdir } from "node:fs/promises";
import path from "node:path";
import { type FSWatcher, watch } from "chokidar";
import { Command, CommanderError, Option } from "commander";
import { formatIssues } from "../src/config/issues.js";
import { loadMasterConfig, summarizeMasterConfig } from "../src/config/master-config.js";
import { jobsDirOf, readMasterConfigFiles } from "../src/config/read-config-files.js";
import { isDaemonChild, reportToParent, startDaemonChild } from "../src/daemonize.js";
import { describeError } from "../src/errors.js";
import { createDaemonLogger } from "../src/log.js";
import { Master } from "../src/master/master.js";
import { removePidFile, writePidFile } from "../src/pid-file.js";
import { handleSignals } from "../src/signals.js";

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const DEFAULT_CONFIG = "/etc/abs/master.conf";
/** A burst of edits in jobs.d (an editor's save, a deploy) is one reload. */
const JOBS_D_SETTLE_MS = 300;

interface Flags {
  foreground: boolean;
  debug: boolean;
  config: string;
  test: boolean;
}

function program(): Command {
  return new Command("abs-master")
    .description("the ABS master daemon: schedules backup jobs on authenticated slaves")
    .option("-f, --foreground", "stay in the foreground and log to the console too")
    .option("-d, --debug", "log at debug level")
    .addOption(
      new Option(
        "-c, --config <file>",
        "the master's config file; job definitions also in jobs.d/ next to it",
      ).default(process.env.ABS_CONFIG ?? DEFAULT_CONFIG, "$ABS_CONFIG or /etc/abs/master.conf"),
    )
    .option("-t, --test", "check the config: print every error and exit 1, or a summary and exit 0")
    .exitOverride()
    .allowExcessArguments(false);
}

async function main(): Promise<number> {
  const cmd = program();
  cmd.parse(process.argv);
  const o = cmd.opts<{ foreground?: boolean; debug?: boolean; config: string; test?: boolean }>();
  const flags: Flags = {
    foreground: o.foreground === true,
    debug: o.debug === true,
    config: path.resolve(o.config),
    test: o.test === true,
  };

  // The config is checked before anything starts, and before going into the
  // background, so mistakes reach the terminal.
  const loaded = loadMasterConfig(await readMasterConfigFiles(flags.config));
  if ("errors" in loaded) {
    process.stderr.write(`${formatIssues(loaded.errors)}\n`);
    process.stderr.write(`abs-master: ${loaded.errors.length} error(s) in the config\n`);
    return EXIT_FAILURE;
  }
  const config = loaded.config;
  if (flags.test) {
    process.stdout.write(`${summarizeMasterConfig(config)}\n`);
    return 0;
  }

  if (!flags.foreground && !isDaemonChild()) {
    const report = await startDaemonChild();
    if (report.ready) return 0;
    process.stderr.write(`abs-master: ${report.error}\n`);
    return EXIT_FAILURE;
  }

  // The directories first, with the modes asked for: the log directory for
  // the adm group to read, the socket's directory for admins to reach the
  // socket (its own mode decides who may use it).
  await mkdir(config.logDir, { recursive: true, mode: 0o750 });
  await mkdir(path.dirname(config.adminSocket), { recursive: true, mode: 0o755 });
  // From here on, files the master creates are its own unless made wider on
  // purpose (the admin socket is chmod'ed to admin_socket_mode, the pid file
  // to 0644).
  process.umask(0o077);
  const logger = createDaemonLogger({
    file: path.join(config.logDir, "master-daemon.log"),
    console: flags.foreground && !isDaemonChild(),
    debug: flags.debug,
  });
  const accessLog = createDaemonLogger({ file: path.join(config.logDir, "admin-access.log") });
  const pidFile = path.join(path.dirname(config.adminSocket), "abs-master.pid");
  const closeLogs = async (): Promise<void> => {
    await logger.close();
    await accessLog.close();
  };

  // Signals are handled from the start: a SIGTERM during startup stops the
  // master once it has started (never half-way), a SIGHUP then is moot.
  let master: Master | undefined;
  let watcher: FSWatcher | undefined;
  let settle: NodeJS.Timeout | undefined;
  let exit: (status: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => (exit = resolve));
  const startup = startMaster();
  const removeSignals = handleSignals({
    logger,
    reload: async () => {
      if (master === undefined) {
        logger.info("SIGHUP during startup: the config being started with was read just now");
        return;
      }
      await master.reload();
    },
    stop: async () => {
      await startup.catch(() => undefined);
      clearTimeout(settle);
      await watcher?.close();
      await master?.stop();
      await removePidFile(pidFile);
      await closeLogs();
    },
    exit: (status) => exit(status),
  });

  async function startMaster(): Promise<void> {
    master = await Master.start({ configPath: flags.config, config, logger, accessLog });
    await writePidFile(pidFile);
    // Adding, changing or removing a definition file in jobs.d acts like SIGHUP.
    const m = master;
    watcher = watch(jobsDirOf(flags.config), { ignoreInitial: true, depth: 0 });
    watcher.on("all", (_event, file) => {
      if (!file.endsWith(".conf")) return;
      clearTimeout(settle);
      settle = setTimeout(() => {
        logger.info(`jobs.d changed (${path.basename(file)}): re-reading the config`);
        // reload() logs why it refuses a bad config.
        m.reload().catch(() => undefined);
      }, JOBS_D_SETTLE_MS);
    });
    watcher.on("error", (err) => logger.warn(`watching jobs.d: ${describeError(err)}`));
    const w = watcher;
    await new Promise<void>((resolve) => w.once("ready", resolve));
  }

  try {
    await startup;
  } catch (err) {
    removeSignals();
    logger.error(`cannot start: ${describeError(err)}`);
    await closeLogs();
    if (isDaemonChild()) reportToParent({ ready: false, error: describeError(err) });
    else process.stderr.write(`abs-master: ${describeError(err)}\n`);
    return EXIT_FAILURE;
  }
  logger.info(`abs-master pid ${process.pid} serving (${summarizeMasterConfig(config)})`);
  if (isDaemonChild()) reportToParent({ ready: true, pid: process.pid });
  return exited;
}

main().then(
  (status) => process.exit(status),
  (err: unknown) => {
    if (err instanceof CommanderError) {
      const ok = err.code === "commander.helpDisplayed" || err.code === "commander.version";
      process.exit(ok ? 0 : EXIT_USAGE);
    }
    process.stderr.write(`abs-master: ${describeError(err)}\n`);
    process.exit(EXIT_FAILURE);
  },
);
