// The exit statuses of `abs` (EXIT), what `abs --help` says of them
// (EXIT_STATUS_HELP; bin/abs.ts and man/abs.8 list them too), and which
// error code ends in which status. Scripts branch on these: they are stable.
// keygen and fingerprint work on local files only and exit 0, 1 or 2.

import { CommanderError } from "commander";
import { AbsError, assertNever, type ErrorCode } from "../errors.js";

export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  NOT_FOUND: 4,
  REFUSED: 5,
  CONFIG: 6,
  JOB_FAILED: 10,
  JOB_CANCELED: 11,
} as const;
export type ExitStatus = (typeof EXIT)[keyof typeof EXIT];

/** The exit statuses as `abs --help` shows them. */
export const EXIT_STATUS_HELP = `Exit statuses:
  0   success (abs watch: the job succeeded)
  1   an error not listed below
  2   bad usage: unknown command or option, missing or extra argument, a bad
      value, or an argument the master refused
  3   the master cannot be reached
  4   not found (no such job or job definition)
  5   refused in the master's present state (drained, queue full, the job's
      state does not allow it, the job has not finished, the fake master of
      disaster mode)
  6   configuration error (abs reload with a bad config, a bad master.conf)
  10  abs watch: the job failed
  11  abs watch: the job was canceled`;

/**
 * The exit status for an error code. Exhaustive on purpose: a code added
 * to errors.ts does not compile until someone decides its status here.
 */
export function exitStatusForCode(code: ErrorCode): ExitStatus {
  switch (code) {
    case "BAD_ARGUMENT":
    case "REQUEST_ID_REUSED":
      return EXIT.USAGE;
    case "UNREACHABLE":
      return EXIT.UNREACHABLE;
    case "JOB_NOT_FOUND":
    case "DEFINITION_NOT_FOUND":
      return EXIT.NOT_FOUND;
    case "DRAINED":
    case "QUEUE_FULL":
    case "ILLEGAL_TRANSITION":
    case "JOB_NOT_FINISHED":
    case "NEEDS_REAL_MASTER":
      return EXIT.REFUSED;
    case "CONFIG":
      return EXIT.CONFIG;
    case "JOBSDIR_LOCKED":
    case "JOBSDIR_VERSION":
    case "JOBSDIR_IO":
    case "JOBSDIR_CLOSED":
    case "BAD_JOB_FILE":
    case "STATE_DIR_LOCKED":
    case "STATE_DIR_IO":
    case "VOTE_FAILED":
    case "FILE_IO":
    case "PROTOCOL":
    case "FRAME_TOO_LARGE":
    case "AUTH_FAILED":
    case "AUTH_TIMEOUT":
    case "AUTH_RATE_LIMITED":
    case "KERBEROS_UNAVAILABLE":
    case "KDC_UNREACHABLE":
    case "STALE_TICKET":
    case "TLS":
    case "PATH_NOT_ALLOWED":
    case "METHOD_NOT_ALLOWED":
    case "PROGRAM_NOT_ALLOWED":
    case "SOURCE_MISSING":
    case "BACKUP_IO":
    case "ARCHIVE_INVALID":
    case "UNSAFE_ENTRY":
    case "UNSAFE_TARGET":
    case "COMMAND_FAILED":
    case "CANCELED":
    case "INTERNAL":
      return EXIT.FAILURE;
    default:
      return assertNever(code);
  }
}

/**
 * An error whose exit status is fixed where it is thrown rather than by its
 * code: keygen and fingerprint fail with 1 whatever the code (their
 * ConfigError for "file exists" is not the master's CONFIG).
 */
export class ExitError extends Error {
  constructor(
    readonly status: ExitStatus,
    readonly error: Error,
  ) {
    super(error.message, { cause: error });
    this.name = "ExitError";
  }
}

/** The exit status for anything `abs` ends with. */
export function exitStatusOf(err: unknown): ExitStatus {
  if (err instanceof ExitError) return err.status;
  if (err instanceof CommanderError) {
    // commander has printed the help, the version, or its usage message.
    return err.code === "commander.helpDisplayed" || err.code === "commander.version"
      ? EXIT.OK
      : EXIT.USAGE;
  }
  if (err instanceof AbsError) return exitStatusForCode(err.code);
  return EXIT.FAILURE;
}

/**
 * Whether an error is a bug rather than a condition a user can meet (an
 * AbsError with a code): only these get a stack trace, and only with -d.
 */
export function isUnexpected(err: unknown): boolean {
  const inner = err instanceof ExitError ? err.error : err;
  return !(inner instanceof AbsError) || inner.code === "INTERNAL";
}

/**
 * What `abs` prints on standard error when it ends with `err`: nothing for
 * commander's errors (commander has printed them), else "abs: " and the
 * message; with `debug`, the stack trace of an unexpected error too.
 */
export function failureText(err: unknown, debug: boolean): string {
  if (err instanceof CommanderError) return "";
  const error = err instanceof ExitError ? err.error : err;
  const message = error instanceof Error ? error.message : String(error);
  // A TypeError's message alone ("x is not a function") does not say it is abs's fault.
  const prefix = error instanceof AbsError ? "" : "internal error: ";
  const stack =
    debug && isUnexpected(err) && error instanceof Error ? `${error.stack ?? ""}\n` : "";
  return `abs: ${prefix}${message}\n${stack}`;
}
