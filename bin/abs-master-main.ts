// The master daemon, run by its executable bin/abs-master.cts. Thin: parses
// argv, checks the config, starts the Master (src/master/master.ts),
// installs the signal handlers, and maps failures to exit statuses.
//
//   abs-master [-f] [-d] [-c FILE] [-t] [--no-voting [--yes-do-it]] [--disaster]
//
// Exit statuses: 0 stopped cleanly (or -t: the config is valid); 1 the
// config is invalid or the master could not start (the message says why);
// 2 bad usage.

import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline/promises";
import { type FSWatcher, watch } from "chokidar";
import { Command, Option } from "commander";
import { DEFAULT_MASTER_CONF } from "../src/config/default-paths.js";
import { formatIssues } from "../src/config/issues.js";
import { disasterLogKeyFile } from "../src/auth/disaster-log-key.js";
import {
  loadMasterConfig,
  masterKeyFiles,
  summarizeMasterConfig,
} from "../src/config/master-config.js";
import {
  checkKeyFiles,
  jobsDirOf,
  readMasterConfigFiles,
} from "../src/config/read-config-files.js";
import {
  EXIT_FAILURE,
  examplesHelp,
  failureExitStatus,
  reportStartFailure,
} from "../src/daemon-main.js";
import { isDaemonChild, reportToParent, startDaemonChild } from "../src/daemonize.js";
import { ConfigError, describeError } from "../src/errors.js";
import { createDaemonLogger } from "../src/log.js";
import type { FakeMaster } from "../src/master/fake-master.js";
import { Master } from "../src/master/master.js";
import { describeSlaveAuth } from "../src/master/slave-listener.js";
import { runStartupVote } from "../src/master/startup-vote.js";
import { removePidFile, writePidFile } from "../src/pid-file.js";
import { handleSignals } from "../src/signals.js";

/** Set for the background copy: the starting process did the startup vote (or skipped it). */
const STARTUP_CHECK_ENV = "ABS_STARTUP_CHECKED";
/** A burst of edits in jobs.d (an editor's save, a deploy) is one reload. */
const JOBS_D_SETTLE_MS = 300;

interface Flags {
  foreground: boolean;
  debug: boolean;
  config: string;
  test: boolean;
}

/** mkdir -p, with an error that names the setting the directory comes from. */
async function makeDir(dir: string, mode: number, setting: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode });
  } catch (err) {
    throw new ConfigError(`cannot create ${dir} (${setting}): ${describeError(err)}`, {
      field: setting,
    });
  }
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
      ).default(
        process.env.ABS_CONFIG ?? DEFAULT_MASTER_CONF,
        `$ABS_CONFIG or ${DEFAULT_MASTER_CONF}`,
      ),
    )
    .option("-t, --test", "check the config: print every error and exit 1, or a summary and exit 0")
    .option(
      "--no-voting",
      "start without asking the peers whether another master runs (asks for a confirmation)",
    )
    .option("--yes-do-it", "with --no-voting: no confirmation (for scripts)")
    .option(
      "--disaster",
      "run the fake master of disaster mode: no jobs directory; record what slaves report",
    )
    .addHelpText(
      "after",
      examplesHelp(
        "abs-master -t",
        "abs-master",
        "abs-master -f -d -c /srv/abs-test/master.conf",
        "abs-master --disaster",
      ),
    )
    .exitOverride()
    .allowExcessArguments(false);
}

async function main(): Promise<number> {
  const cmd = program();
  cmd.parse(process.argv);
  const o = cmd.opts<{
    foreground?: boolean;
    debug?: boolean;
    config: string;
    test?: boolean;
    voting: boolean;
    yesDoIt?: boolean;
    disaster?: boolean;
  }>();
  const disaster = o.disaster === true;
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
  // The key files too, at -t as at the start (one not there yet is left to
  // the start, so a config can be checked before its keys are installed);
  // and a fake master that could not MAC its records does not start.
  await checkKeyFiles(masterKeyFiles(config), { missingOk: true });
  if (disaster) disasterLogKeyFile(config);
  if (flags.test) {
    process.stdout.write(`${summarizeMasterConfig(config)}\n`);
    return 0;
  }

  // The startup vote, or the admin's confirmation to skip it, before going
  // into the background, so the answer reaches the terminal. The background
  // copy is told it was done (STARTUP_CHECK_ENV) and does not ask again.
  const voteLog: string[] = [];
  if (disaster) {
    // The fake master stands in for a master that is gone: no vote.
    voteLog.push("disaster mode: the fake master; no startup vote");
  } else if (process.env[STARTUP_CHECK_ENV] === undefined) {
    if (!o.voting) {
      if (o.yesDoIt !== true && !(await confirmNoVoting())) return EXIT_FAILURE;
      voteLog.push("started with --no-voting: the peers were not asked whether a master runs");
    } else {
      const collect = (line: string): void => void voteLog.push(line);
      try {
        await runStartupVote(config, {
          debug: collect,
          info: collect,
          warn: collect,
          error: collect,
        });
      } catch (err) {
        for (const line of voteLog) process.stderr.write(`abs-master: ${line}\n`);
        process.stderr.write(`abs-master: ${describeError(err)}\n`);
        return EXIT_FAILURE;
      }
    }
    process.env[STARTUP_CHECK_ENV] = "1";
  } else if (!o.voting) {
    voteLog.push("started with --no-voting: the peers were not asked whether a master runs");
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
  await makeDir(config.logDir, 0o750, "log_dir");
  await makeDir(path.dirname(config.adminSocket), 0o755, "the directory of admin_socket");
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
  for (const line of voteLog) logger.info(line);
  const pidFile = path.join(path.dirname(config.adminSocket), "abs-master.pid");
  const closeLogs = async (): Promise<void> => {
    await logger.close();
    await accessLog.close();
  };

  // Signals are handled from the start: a SIGTERM during startup stops the
  // master once it has started (never half-way), a SIGHUP then is moot.
  let master: Master | undefined;
  let fake: FakeMaster | undefined;
  let watcher: FSWatcher | undefined;
  let settle: NodeJS.Timeout | undefined;
  let exit: (status: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => (exit = resolve));
  const startup = startMaster();
  const removeSignals = handleSignals({
    logger,
    reopenLogs: () => {
      logger.reopen();
      accessLog.reopen();
    },
    reload: async () => {
      if (fake !== undefined) {
        logger.info("SIGHUP: the fake master has no config to re-read; restart it to change one");
        return;
      }
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
      await fake?.stop();
      await removePidFile(pidFile);
      await closeLogs();
    },
    exit: (status) => exit(status),
  });

  async function startMaster(): Promise<void> {
    if (disaster) {
      // Only disaster mode loads the fake master's code.
      const { FakeMaster } = await import("../src/master/fake-master.js");
      fake = await FakeMaster.start({ config, logger, accessLog, hostName: os.hostname() });
      await writePidFile(pidFile);
      return;
    }
    master = await Master.start({ configPath: flags.config, config, logger, accessLog });
    await writePidFile(pidFile);
    // Adding, changing or removing a definition file in jobs.d acts like SIGHUP.
    const m = master;
    const jobsD = jobsDirOf(flags.config);
    // The config's directory too (its entries only): a jobs.d made, or
    // removed, after the start counts as well, and is watched from then on.
    // (chokidar reports nothing about a path that did not exist when it was
    // given, so jobs.d is added only once it is there.)
    const paths = [path.dirname(flags.config), ...(existsSync(jobsD) ? [jobsD] : [])];
    watcher = watch(paths, { ignoreInitial: true, depth: 0 });
    const w = watcher;
    w.on("all", (event, file) => {
      const isJobsD = file === jobsD && (event === "addDir" || event === "unlinkDir");
      if (!isJobsD && (path.dirname(file) !== jobsD || !file.endsWith(".conf"))) return;
      if (file === jobsD && event === "addDir") w.add(jobsD);
      clearTimeout(settle);
      settle = setTimeout(() => {
        logger.info(`jobs.d changed (${path.basename(file)}): re-reading the config`);
        // reload() logs why it refuses a bad config.
        m.reload().catch(() => undefined);
      }, JOBS_D_SETTLE_MS);
    });
    w.on("error", (err) => logger.warn(`watching jobs.d: ${describeError(err)}`));
    await new Promise<void>((resolve) => w.once("ready", resolve));
  }

  try {
    await startup;
  } catch (err) {
    removeSignals();
    logger.error(`cannot start: ${describeError(err)}`);
    await closeLogs();
    reportStartFailure("abs-master", err);
    return EXIT_FAILURE;
  }
  logger.info(
    disaster
      ? `abs-master pid ${process.pid} serving as the fake master (disaster mode; auth ${describeSlaveAuth(config)})`
      : `abs-master pid ${process.pid} serving (auth ${describeSlaveAuth(config)}; ${summarizeMasterConfig(config)})`,
  );
  if (isDaemonChild()) reportToParent({ ready: true, pid: process.pid });
  return exited;
}

/**
 * Asks on the terminal whether to start without voting; false (with the
 * reason on stderr) when there is no terminal to ask on or the answer is
 * not "yes".
 */
async function confirmNoVoting(): Promise<boolean> {
  if (process.stdin.isTTY !== true) {
    process.stderr.write(
      "abs-master: --no-voting needs a confirmation on a terminal; add --yes-do-it to start without one\n",
    );
    return false;
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(
      "Starting without voting: if another master of this realm runs, two masters will\n" +
        "dispatch the same jobs and their jobs directories will disagree.\n" +
        "Start anyway? Type yes to continue: ",
    );
    if (answer.trim().toLowerCase() === "yes") return true;
    process.stderr.write("abs-master: not started\n");
    return false;
  } finally {
    rl.close();
  }
}

main().then(
  (status) => process.exit(status),
  (err: unknown) => process.exit(failureExitStatus("abs-master", err)),
);
