// The one place the daemons handle signals (STYLE 12). Which, and why:
//
//   SIGHUP   reopen the log files, then re-read the config; a bad config
//            keeps the running one and is logged
//   SIGUSR2  reopen the log files only (logrotate's postrotate: unlike a
//            reload, it cannot fail on a config being edited)
//   SIGTERM  stop gracefully: stop taking work, finish the writes under way,
//            leave jobs running on their slaves; exit 0
//   SIGINT   as SIGTERM (Ctrl-C under -f)
//
// (Not SIGUSR1: Node starts its inspector on it.)
//
// A second SIGTERM or SIGINT during a stop, or a stop that takes longer than
// the grace time, exits at once with status 1: the jobs directory is safe
// (every write is atomic), only writes not yet acknowledged are lost, and
// their callers were not told they succeeded.
//
// Library code never exits the process: the caller passes `exit`.

import { describeError } from "./errors.js";
import type { Logger } from "./log.js";

/** Time a graceful stop may take before the process exits anyway, in ms. */
export const STOP_GRACE_MS = 30_000;

export interface SignalHandlers {
  /** Re-reads the config; logs its own failures (a bad config keeps the running one). */
  reload(): Promise<unknown>;
  /** Opens the log files again by their names (log.ts DaemonLogger.reopen). */
  reopenLogs(): void;
  stop(): Promise<void>;
  exit(status: number): void;
  logger: Logger;
  /** Default STOP_GRACE_MS. */
  graceMs?: number;
}

/** Installs the handlers; returns a function that removes them. */
export function handleSignals(h: SignalHandlers): () => void {
  let stopping = false;
  let reloading: Promise<unknown> | null = null;

  const reopen = (signal: NodeJS.Signals): void => {
    try {
      h.reopenLogs();
    } catch (err) {
      // The old file stays in use: a line there says why.
      h.logger.error(`${signal}: cannot reopen the log files: ${describeError(err)}`);
      return;
    }
    // The first line in the new file says why there is one.
    h.logger.info(`${signal}: log files reopened`);
  };

  const onUsr2 = (): void => reopen("SIGUSR2");

  const onHup = (): void => {
    if (stopping) return;
    reopen("SIGHUP");
    h.logger.info("SIGHUP: re-reading the config");
    // Reloads do not overlap: a SIGHUP during a reload waits for it, then reloads again.
    const run = async (): Promise<void> => {
      try {
        await h.reload();
      } catch {
        // reload() logs why it refused the config.
      }
    };
    reloading = (reloading ?? Promise.resolve()).then(run);
  };

  const onStop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      h.logger.warn(`${signal} again while stopping: exiting now`);
      h.exit(1);
      return;
    }
    stopping = true;
    h.logger.info(`${signal}: stopping`);
    const grace = h.graceMs ?? STOP_GRACE_MS;
    const timer = setTimeout(() => {
      h.logger.error(`stop took more than ${grace} ms: exiting now`);
      h.exit(1);
    }, grace);
    h.stop().then(
      () => {
        clearTimeout(timer);
        h.exit(0);
      },
      (err: unknown) => {
        clearTimeout(timer);
        h.logger.error(`stop failed: ${describeError(err)}`);
        h.exit(1);
      },
    );
  };

  process.on("SIGHUP", onHup);
  process.on("SIGUSR2", onUsr2);
  process.on("SIGTERM", onStop);
  process.on("SIGINT", onStop);
  return () => {
    process.off("SIGHUP", onHup);
    process.off("SIGUSR2", onUsr2);
    process.off("SIGTERM", onStop);
    process.off("SIGINT", onStop);
  };
}
