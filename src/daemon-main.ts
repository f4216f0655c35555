// What the daemons' programs (bin/abs-master-main.ts, bin/abs-slave.ts) share
// around their main(): the exit statuses, how a startup failure reaches the
// admin, the exit status of a failure, and the Examples: of their --help.
//
// Exit statuses: 0 stopped cleanly (or -t: the config is valid); 1 the
// config is invalid or the daemon could not start; 2 bad usage.

import { CommanderError } from "commander";
import { isDaemonChild, reportToParent } from "./daemonize.js";
import { describeError } from "./errors.js";

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Says why the daemon could not start: to the process waiting for the background copy, or on the terminal. */
export function reportStartFailure(program: string, err: unknown): void {
  if (isDaemonChild()) reportToParent({ ready: false, error: describeError(err) });
  else process.stderr.write(`${program}: ${describeError(err)}\n`);
}

/**
 * The exit status for an error thrown out of a daemon's main: --help 0, a
 * usage error (commander's, already printed) 2, anything else 1, with one
 * line on standard error. (The executable exits; library code never does.)
 */
export function failureExitStatus(program: string, err: unknown): number {
  if (err instanceof CommanderError) {
    const ok = err.code === "commander.helpDisplayed" || err.code === "commander.version";
    return ok ? 0 : EXIT_USAGE;
  }
  process.stderr.write(`${program}: ${describeError(err)}\n`);
  return EXIT_FAILURE;
}

/** The Examples: section a daemon's --help ends with, as abs's do (commander adds the final newline). */
export function examplesHelp(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join("\n")}`;
}
