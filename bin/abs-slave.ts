#!/usr/bin/env -S node --max-semi-space-size=2 --expose-gc
// The slave daemon. Thin: parses argv, checks slave.conf, starts the Slave
// (src/slave/slave.ts), re-reads slave.conf on SIGHUP or when it is edited,
// and maps failures to exit statuses.
//
// Memory (first line): a backup allocates a little for every file. With
// V8's default young generation (up to 16 MB a semi-space) the heap grew to
// keep it, 20 MB more at the peak for no measurable gain in speed; and the
// old generation kept each backup's dead objects until it would grow, so
// the resident set climbed from backup to backup. Hence a small young
// generation, and a full collection when the slave is idle and garbage has
// piled up (--expose-gc, for src/slave/idle-collector.ts). Whatever starts
// this file with node passes the same options (src/shebang-flags.ts).
//
//   abs-slave [-f] [-d] [-c FILE] [-t]
//
// Exit statuses: 0 stopped cleanly (or -t: the config is valid); 1 the
// config is invalid or the slave could not start (the message says why);
// 2 bad usage.

import { mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { type FSWatcher, watch } from "chokidar";
import { Command, Option } from "commander";
import { DEFAULT_SLAVE_CONF } from "../src/config/default-paths.js";
import { formatIssues } from "../src/config/issues.js";
import { checkKeyFiles, readConfigFile } from "../src/config/read-config-files.js";
import {
  type SlaveConfig,
  loadSlaveConfig,
  slaveKeyFiles,
  summarizeSlaveConfig,
} from "../src/config/slave-config.js";
import {
  EXIT_FAILURE,
  examplesHelp,
  failureExitStatus,
  reportStartFailure,
} from "../src/daemon-main.js";
import { isDaemonChild, reportToParent, startDaemonChild } from "../src/daemonize.js";
import { loadSlaveKey } from "../src/auth/slave-key.js";
import { describeError } from "../src/errors.js";
import { createDaemonLogger } from "../src/log.js";
import { removePidFile, writePidFile } from "../src/pid-file.js";
import { handleSignals } from "../src/signals.js";
import { Slave } from "../src/slave/slave.js";
import { SLAVE_PID_FILE } from "../src/slave/state-dir.js";

/** A burst of writes to slave.conf (an editor's save) is one reload. */
const EDIT_SETTLE_MS = 300;

function program(): Command {
  return new Command("abs-slave")
    .description("the ABS slave daemon: runs the backup jobs its master dispatches")
    .option("-f, --foreground", "stay in the foreground and log to the console too")
    .option("-d, --debug", "log at debug level")
    .addOption(
      new Option("-c, --config <file>", "the slave's config file").default(
        process.env.ABS_SLAVE_CONFIG ?? DEFAULT_SLAVE_CONF,
        `$ABS_SLAVE_CONFIG or ${DEFAULT_SLAVE_CONF}`,
      ),
    )
    .option("-t, --test", "check the config: print every error and exit 1, or a summary and exit 0")
    .addHelpText(
      "after",
      examplesHelp("abs-slave -t", "abs-slave", "abs-slave -f -d -c /srv/abs-test/slave.conf"),
    )
    .exitOverride()
    .allowExcessArguments(false);
}

type Loaded = { config: SlaveConfig } | { errors: string };

/**
 * Reads and checks slave.conf; every problem as `file:line: key "value": why`
 * lines. slave.conf and the key files it names are refused when someone
 * other than root or this daemon's user could have changed them
 * (read-config-files.ts); a key file not there yet is left to the start.
 */
async function readConfig(file: string): Promise<Loaded> {
  let text: string;
  try {
    text = (await readConfigFile(file)).text;
  } catch (err) {
    return { errors: describeError(err) };
  }
  const loaded = loadSlaveConfig(file, text, { hostName: os.hostname() });
  if ("errors" in loaded) return { errors: formatIssues(loaded.errors) };
  try {
    await checkKeyFiles(slaveKeyFiles(loaded.config), { missingOk: true });
  } catch (err) {
    return { errors: describeError(err) };
  }
  return loaded;
}

async function main(): Promise<number> {
  const cmd = program();
  cmd.parse(process.argv);
  const o = cmd.opts<{ foreground?: boolean; debug?: boolean; config: string; test?: boolean }>();
  const configFile = path.resolve(o.config);
  const foreground = o.foreground === true;

  // Checked before anything starts, and before going into the background,
  // so mistakes reach the terminal.
  const loaded = await readConfig(configFile);
  if ("errors" in loaded) {
    process.stderr.write(`${loaded.errors}\n`);
    process.stderr.write(`abs-slave: the config is invalid\n`);
    return EXIT_FAILURE;
  }
  const config = loaded.config;
  if (o.test === true) {
    process.stdout.write(`${summarizeSlaveConfig(config)}\n`);
    return 0;
  }

  // The slave's key is read again at each connection (a new key needs no
  // restart), but a key the slave cannot use at all (missing, readable by
  // others, the realm key itself, another slave's) stops the start here, on
  // the terminal, as the master's does, rather than failing every connection
  // attempt in the log. (-t checks the config's text only, as the master's
  // does, so configs can be checked before the key is installed.)
  if (config.keyFile !== null) {
    try {
      await loadSlaveKey(config.keyFile, config.name);
    } catch (err) {
      process.stderr.write(`abs-slave: ${describeError(err)}\n`);
      return EXIT_FAILURE;
    }
  }

  if (!foreground && !isDaemonChild()) {
    const report = await startDaemonChild();
    if (report.ready) return 0;
    process.stderr.write(`abs-slave: ${report.error}\n`);
    return EXIT_FAILURE;
  }

  await mkdir(config.logDir, { recursive: true, mode: 0o750 });
  // Records, archives' partial files and command output the slave creates
  // are its own unless a method sets a mode on purpose.
  process.umask(0o077);
  const logger = createDaemonLogger({
    file: path.join(config.logDir, "slave-daemon.log"),
    console: foreground && !isDaemonChild(),
    debug: o.debug === true,
  });
  const pidFile = path.join(config.stateDir, SLAVE_PID_FILE);

  let slave: Slave | undefined;
  let watcher: FSWatcher | undefined;
  let settle: NodeJS.Timeout | undefined;
  let exit: (status: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => (exit = resolve));

  const reload = async (): Promise<void> => {
    const next = await readConfig(configFile);
    if ("errors" in next) {
      for (const line of next.errors.split("\n")) logger.error(`reload refused: ${line}`);
      logger.error("reload refused: the running config is kept");
      throw new Error("bad config");
    }
    slave?.reload(next.config);
  };

  const startup = (async () => {
    slave = await Slave.start({ config, logger });
    await writePidFile(pidFile);
    // An edit of slave.conf acts like SIGHUP. The directory is watched, not
    // the file: editors save by writing a new file and renaming it.
    watcher = watch(path.dirname(configFile), { ignoreInitial: true, depth: 0 });
    watcher.on("all", (_event, file) => {
      if (path.resolve(file) !== configFile) return;
      clearTimeout(settle);
      settle = setTimeout(() => {
        logger.info(`${configFile} changed: re-reading it`);
        reload().catch(() => undefined);
      }, EDIT_SETTLE_MS);
    });
    watcher.on("error", (err) => logger.warn(`watching ${configFile}: ${describeError(err)}`));
    const w = watcher;
    await new Promise<void>((resolve) => w.once("ready", resolve));
  })();

  const removeSignals = handleSignals({
    logger,
    reopenLogs: () => logger.reopen(),
    reload: async () => {
      if (slave === undefined) {
        logger.info("SIGHUP during startup: the config being started with was read just now");
        return;
      }
      await reload();
    },
    stop: async () => {
      await startup.catch(() => undefined);
      clearTimeout(settle);
      await watcher?.close();
      await slave?.stop("slave stopped (SIGTERM)");
      await removePidFile(pidFile);
      await logger.close();
    },
    exit: (status) => exit(status),
  });

  try {
    await startup;
  } catch (err) {
    removeSignals();
    logger.error(`cannot start: ${describeError(err)}`);
    await logger.close();
    reportStartFailure("abs-slave", err);
    return EXIT_FAILURE;
  }
  logger.info(`abs-slave pid ${process.pid} running (${summarizeSlaveConfig(config)})`);
  if (isDaemonChild()) reportToParent({ ready: true, pid: process.pid });
  return exited;
}

main().then(
  (status) => process.exit(status),
  (err: unknown) => process.exit(failureExitStatus("abs-slave", err)),
);
