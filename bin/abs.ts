#!/usr/bin/env node
// The admin command. Thin: parses argv with commander and calls src/cli/;
// one catch at the end prints the message (a stack trace only for a bug in
// abs, and only with -d) and sets the exit status.
//
// Exit statuses (src/cli/exit-status.ts has the mapping from error codes):
//    0  success (abs watch: the job succeeded)
//    1  an error not listed below
//    2  bad usage: unknown command or option, missing or extra argument, a
//       bad value (--state runing, --limit x), an argument the master refused
//    3  the master cannot be reached
//    4  not found (no such job or job definition)
//    5  refused in the master's present state (drained, queue full, the
//       job's state does not allow it, the job has not finished, the fake
//       master of disaster mode)
//    6  configuration error (abs reload with a bad config, a bad master.conf)
//   10  abs watch: the job failed
//   11  abs watch: the job was canceled
// keygen and fingerprint touch local files only and exit 0, 1 or 2. demo
// (a master and a slave of its own in a directory) fails with 1 or 2 too.
//
// The admin socket is found as src/cli/socket.ts says (and --help repeats).
//
// Each command's module is imported when the command runs, not before: a
// Node process pays for every module it loads, and `abs show jobs` should
// not wait for demo's or the certificate code's (the startup bench times a
// filtered `abs show jobs`).

import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import {
  collectJobIds,
  collectStates,
  DEFAULT_WAIT_MS,
  parseAge,
  parseDays,
  parseJobId,
  parseLimit,
  parseName,
  parseOnOff,
  parseWait,
} from "../src/cli/args.js";
import type { ShowJobsOptions } from "../src/cli/commands/show-jobs.js";
import type { CliContext } from "../src/cli/context.js";
import {
  DEFAULT_DEMO_DIR,
  DEFAULT_REALM_KEY_FILE,
  DEFAULT_SLAVE_KEY_FILE,
} from "../src/config/default-paths.js";
import {
  EXIT,
  EXIT_STATUS_HELP,
  ExitError,
  type ExitStatus,
  exitStatusOf,
  failureText,
} from "../src/cli/exit-status.js";
import { resolveAdminSocket, SOCKET_HELP } from "../src/cli/socket.js";
import { BadArgumentError } from "../src/errors.js";

interface GlobalOptions {
  socket?: string;
  config?: string;
  debug?: boolean;
  /** --wait, in ms. */
  wait?: number;
}

/** Set by a command whose success has more than one status (abs watch). */
let exitStatus: ExitStatus = EXIT.OK;

/** The Examples: section every --help ends with (commander adds the final newline). */
function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join("\n")}`;
}

/** The context of an admin command: the socket from the global options, stdout. */
async function contextOf(cmd: Command): Promise<CliContext> {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const socket = await resolveAdminSocket({
    socket: opts.socket,
    config: opts.config,
    env: process.env,
  });
  const { socketContext } = await import("../src/cli/context.js");
  return socketContext(
    socket.path,
    socket.source,
    {
      write: (text) => process.stdout.write(text),
      isTTY: process.stdout.isTTY,
      columns: process.stdout.columns,
    },
    Date.now,
    {
      waitMs: opts.wait ?? DEFAULT_WAIT_MS,
      onRetry: (text) => process.stderr.write(text),
    },
  );
}

/** keygen and fingerprint fail with 1 whatever the error's code: they are not about the master. */
async function local<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw new ExitError(EXIT.FAILURE, err instanceof Error ? err : new Error(String(err)));
  }
}

function program(): Command {
  const abs = new Command("abs")
    .description("administer ABS, the backup job coordinator")
    .option("-s, --socket <path>", "the master's admin socket")
    .option("-c, --config <file>", "take the admin socket from this master.conf (admin_socket)")
    .option("-d, --debug", "print the stack trace of an unexpected error")
    .option(
      "-w, --wait <seconds>",
      `when the master's answer is lost (it went away mid-request), retry with the same request id for up to this long; 0: never (default ${DEFAULT_WAIT_MS / 1000})`,
      parseWait,
    )
    .exitOverride()
    .showHelpAfterError(false)
    .addHelpText(
      "after",
      `\n${SOCKET_HELP}\n\n${EXIT_STATUS_HELP}\n` +
        examples(
          "abs show jobs",
          "abs -s /tmp/admin.sock status",
          "abs run home --slave green-acres",
          "abs watch 12",
        ),
    );

  abs
    .command("keygen")
    .description(
      "write a new realm key to FILE (mode 0600); with --slave NAME, write slave NAME's own key, made from the realm key; an existing FILE is never overwritten",
    )
    .argument("<file>", "the key file to create")
    .option(
      "--slave <name>",
      "write the key of slave NAME (derived from the realm key) instead of a new realm key",
      parseName,
    )
    .option(
      "--realm-key <file>",
      `the realm key to derive a slave's key from (with --slave; default ${DEFAULT_REALM_KEY_FILE})`,
    )
    .addHelpText(
      "after",
      examples(
        "abs keygen /etc/abs/realm.key                       # once, on the master's host",
        "abs keygen --slave green-acres /tmp/green-acres.key  # then copy it to green-acres as /etc/abs/slave.key",
      ),
    )
    .action(async (file: string, o: { slave?: string; realmKey?: string }) => {
      if (o.slave === undefined) {
        if (o.realmKey !== undefined) {
          throw new ExitError(
            EXIT.USAGE,
            new Error("abs keygen: --realm-key is used only with --slave"),
          );
        }
        const { generateRealmKey } = await import("../src/auth/realm-key.js");
        await local(generateRealmKey(file));
        process.stdout.write(
          `wrote a new realm key to ${file} (mode 0600); keep it on the master's host (and standby and fake masters) only, and give each slave its own key with \`abs keygen --slave NAME FILE\`\n`,
        );
        return;
      }
      const { name: slaveName, Invalid } = await import("../src/config/values.js");
      const checked = slaveName(o.slave);
      if (checked instanceof Invalid) {
        throw new ExitError(
          EXIT.USAGE,
          new Error(`abs keygen: --slave ${JSON.stringify(o.slave)}: ${checked.why}`),
        );
      }
      const realmKeyFile = o.realmKey ?? DEFAULT_REALM_KEY_FILE;
      const { loadRealmKey } = await import("../src/auth/realm-key.js");
      const { writeSlaveKey } = await import("../src/auth/slave-key.js");
      const realmKey = await local(loadRealmKey(realmKeyFile));
      await local(writeSlaveKey(realmKey, o.slave, file));
      process.stdout.write(
        `wrote the key of slave ${o.slave} (from ${realmKeyFile}) to ${file} (mode 0600); copy it to ${o.slave} over a secure channel, as its key_file (default ${DEFAULT_SLAVE_KEY_FILE}), and remove it from here\n`,
      );
    });

  abs
    .command("fingerprint")
    .description("print the SHA-256 fingerprint of the PEM certificate in CERTFILE")
    .argument("<certfile>", "a PEM certificate, e.g. the master's tls-cert.pem")
    .addHelpText("after", examples("abs fingerprint /var/lib/abs/master/tls-cert.pem"))
    .action(async (file: string) => {
      const { readCertificateFingerprint } = await import("../src/auth/tls.js");
      process.stdout.write(`${await local(readCertificateFingerprint(file))}\n`);
    });

  abs
    .command("demo")
    .description(
      "try ABS on this host: write DIR (a realm key, a sample tree, master.conf and slave.conf), start abs-master and abs-slave there, back the sample up every 10 s, and show the jobs once the first backup has succeeded",
    )
    .argument("[dir]", "the demo's directory, created if missing", DEFAULT_DEMO_DIR)
    .option("--stop", "stop the demo's master and the slaves configured in DIR, and wait for them")
    .addHelpText(
      "after",
      examples(
        "abs demo",
        "abs demo /tmp/abs-demo",
        "abs demo --stop",
        "abs demo --stop /tmp/abs-demo",
      ),
    )
    .action(async (dir: string, o: { stop?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (g.socket !== undefined || g.config !== undefined) {
        throw new BadArgumentError(
          "abs demo runs its own master in DIR: --socket and --config do not apply to it",
        );
      }
      const env = {
        binDir: path.dirname(fileURLToPath(import.meta.url)),
        execPath: process.execPath,
        cwd: process.cwd(),
        env: process.env,
        out: { write: (text: string) => process.stdout.write(text), isTTY: false },
        // Under npx (npm exec), the hints say npx abs: a clone has no abs on PATH.
        absCommand: process.env.npm_command === "exec" ? "npx abs" : "abs",
      };
      const { demo, stopDemo } = await import("../src/cli/commands/demo.js");
      await (o.stop === true ? stopDemo(dir, env) : demo(dir, env));
    });

  abs
    .command("status")
    .description("show the master: its mode, realm, jobs and connected slaves")
    .option("--json", "print the result as JSON")
    .addHelpText("after", examples("abs status", "abs status --json"))
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const { status } = await import("../src/cli/commands/master.js");
      await status(await contextOf(cmd), o);
    });

  const show = abs
    .command("show")
    .description("show jobs, one job, slaves or the schedule")
    .addHelpText(
      "after",
      examples("abs show jobs", "abs show job 12", "abs show slaves", "abs show schedule --days 7"),
    );

  show
    .command("jobs")
    .description(
      "list jobs: by default those not finished and those that ended recently, with why each waits, how far each got, or how it ended",
    )
    .option("--all", "every unarchived job")
    .option(
      "--state <states>",
      "only jobs in these states, comma-separated or repeated (queued, dispatched, running, canceling, orphaned, succeeded, failed, canceled)",
      collectStates,
    )
    .option("--slave <name>", "only jobs on this slave", parseName)
    .option("--definition <name>", "only runs of this job definition", parseName)
    .option("--limit <n>", "at most N jobs, the newest", parseLimit)
    .option("--json", "print the result as one line of JSON")
    .addHelpText(
      "after",
      examples(
        "abs show jobs",
        "abs show jobs --state queued,orphaned",
        "abs show jobs --all --slave green-acres --limit 20",
        "abs show jobs --all --json > jobs.json",
      ),
    )
    .action(async (o: ShowJobsOptions, cmd: Command) => {
      const { showJobs } = await import("../src/cli/commands/show-jobs.js");
      await showJobs(await contextOf(cmd), o);
    });

  show
    .command("job")
    .description("show one job: its definition, slave, parameters, state, policy, times and log")
    .argument("<id>", "the job id", parseJobId)
    .option("--json", "print the result as JSON")
    .addHelpText("after", examples("abs show job 12", "abs show job 12 --json"))
    .action(async (id: number, o: { json?: boolean }, cmd: Command) => {
      const { showJob } = await import("../src/cli/commands/show-job.js");
      await showJob(await contextOf(cmd), id, o);
    });

  show
    .command("slaves")
    .description("list the slaves that have registered, connected or not")
    .option("--json", "print the result as JSON")
    .addHelpText("after", examples("abs show slaves", "abs show slaves --json"))
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const { showSlaves } = await import("../src/cli/commands/show-slaves.js");
      await showSlaves(await contextOf(cmd), o);
    });

  show
    .command("schedule")
    .description("list the job definitions with their schedules and next runs (in local time)")
    .option("--days <n>", "how far ahead, in days (1 to 366; default 1)", parseDays)
    .option("--json", "print the result as JSON (every run in the window)")
    .addHelpText("after", examples("abs show schedule", "abs show schedule --days 7"))
    .action(async (o: { days?: number; json?: boolean }, cmd: Command) => {
      const { showSchedule } = await import("../src/cli/commands/show-schedule.js");
      await showSchedule(await contextOf(cmd), o);
    });

  abs
    .command("run")
    .description("queue a run of job definition NAME now, one job per slave of the definition")
    .argument("<name>", "the job definition", parseName)
    .option("--slave <name>", "only on this slave", parseName)
    .option("--json", "print the result as JSON")
    .addHelpText("after", examples("abs run home", "abs run home --slave green-acres"))
    .action(async (name: string, o: { slave?: string; json?: boolean }, cmd: Command) => {
      const { run } = await import("../src/cli/commands/run.js");
      await run(await contextOf(cmd), name, o);
    });

  abs
    .command("cancel")
    .description("cancel job ID: at once if not yet on its slave, else the slave is asked to stop")
    .argument("<id>", "the job id", parseJobId)
    .addHelpText("after", examples("abs cancel 12"))
    .action(async (id: number, _o: unknown, cmd: Command) => {
      const { cancel } = await import("../src/cli/commands/run.js");
      await cancel(await contextOf(cmd), id);
    });

  abs
    .command("watch")
    .description(
      "follow job ID until it finishes: its log and progress; exits 0 if it succeeded, 10 if it failed, 11 if it was canceled",
    )
    .argument("<id>", "the job id", parseJobId)
    .option("--json", "print the job as one line of JSON per change")
    .addHelpText(
      "after",
      examples(
        "abs watch 12",
        'abs watch 12 > /dev/null || echo "job 12 did not succeed (exit status $?)"',
        "abs watch 12 --json",
      ),
    )
    .action(async (id: number, o: { json?: boolean }, cmd: Command) => {
      const { watch } = await import("../src/cli/commands/watch.js");
      exitStatus = await watch(await contextOf(cmd), id, o);
    });

  abs
    .command("archive")
    .description("move finished jobs out of the jobs directory")
    .argument("<id...>", "job ids", collectJobIds)
    .addHelpText("after", examples("abs archive 12", "abs archive 12 13 14"))
    .action(async (ids: number[], _o: unknown, cmd: Command) => {
      const { archive } = await import("../src/cli/commands/archive.js");
      await archive(await contextOf(cmd), ids);
    });

  abs
    .command("autoarchive")
    .description("archive every finished job that ended more than AGE ago")
    .argument("<age>", "a duration: 30d, 12h, 1d12h, 90s", parseAge)
    .addHelpText("after", examples("abs autoarchive 30d", "abs autoarchive 12h"))
    .action(async (ageMs: number, _o: unknown, cmd: Command) => {
      const { autoarchive } = await import("../src/cli/commands/archive.js");
      await autoarchive(await contextOf(cmd), ageMs);
    });

  abs
    .command("drain")
    .description("on: refuse new jobs (the setting survives restarts); off: accept them again")
    .argument("<on|off>", "on or off", parseOnOff)
    .addHelpText("after", examples("abs drain on", "abs drain off"))
    .action(async (on: boolean, _o: unknown, cmd: Command) => {
      const { drain } = await import("../src/cli/commands/master.js");
      await drain(await contextOf(cmd), on);
    });

  abs
    .command("reload")
    .description(
      "make the master re-read its configuration, like SIGHUP; a bad one is refused with every issue listed",
    )
    .addHelpText("after", examples("abs reload"))
    .action(async (_o: unknown, cmd: Command) => {
      const { reload } = await import("../src/cli/commands/master.js");
      await reload(await contextOf(cmd));
    });

  abs
    .command("import-disaster-log")
    .description(
      "merge the disaster log of a fake master (abs-master --disaster) into this master's jobs: results of known jobs are applied, jobs run by hand on the fake master are recorded, lines that cannot be trusted (no valid MAC, a name the identity does not vouch for, a job never dispatched to that slave) are refused and named, with exit status 1; importing a log again changes nothing",
    )
    .argument("<file>", "the fake master's state_dir/disaster-log.jsonl, readable by this master")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      examples(
        "abs import-disaster-log /var/lib/abs/master/disaster-log.jsonl",
        "abs import-disaster-log ./disaster-log.jsonl --json",
      ),
    )
    .action(async (file: string, o: { json?: boolean }, cmd: Command) => {
      const { importDisasterLog } = await import("../src/cli/commands/import-disaster-log.js");
      await importDisasterLog(await contextOf(cmd), file, { ...o, cwd: process.cwd() });
    });

  return abs;
}

const abs = program();

// `abs show jobs | head`: the reader left; that is not an error of abs.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code !== "EPIPE") process.stderr.write(`abs: cannot write the output: ${err.message}\n`);
  process.exit(err.code === "EPIPE" ? exitStatus : EXIT.FAILURE);
});

async function main(): Promise<void> {
  await abs.parseAsync(process.argv);
  // exitCode, not exit(): stdout may still be flushing a large answer to a pipe.
  process.exitCode = exitStatus;
}

main().catch((err: unknown) => {
  process.exitCode = exitStatusOf(err);
  process.stderr.write(failureText(err, abs.opts<GlobalOptions>().debug === true));
});
