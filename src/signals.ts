// The one place the daemons handle signals (STYLE 12). Which, and why:
//
//   SIGHUP   re-read the config; a bad config keeps the running one and is logged
//   SIGTERM  stop gracefully: stop taking work, finish the writes under way,
//            leave jobs running on their slaves; exit 0
//   SIGINT   as SIGTERM (Ctrl-C under -f)
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

  const onHup = (): void => {
    if (stopping) return;
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
  process.on("SIGTERM", onStop);
  process.on("SIGINT", onStop);
  return () => {
    process.off("SIGHUP", onHup);
    process.off("SIGTERM", onStop);
    process.off("SIGINT", onStop);
  };
}
