// Going into the background, as Ganeti's daemons do without -f: the process
// started from a shell re-runs itself detached (a new session, no terminal,
// stdio closed) and waits until the child says it is serving, or why it
// could not start. The parent's exit status is then the daemon's startup
// status, so `abs-master && abs status` and init scripts see failures.
//
// The child is told it is the background copy by ABS_DAEMON_CHILD=1 and
// reports over the IPC channel, which it then closes.

import { spawn } from "node:child_process";

const CHILD_ENV = "ABS_DAEMON_CHILD";

export type DaemonReport = { ready: true; pid: number } | { ready: false; error: string };

/** True in the background copy. */
export function isDaemonChild(): boolean {
  return process.env[CHILD_ENV] === "1";
}

/**
 * Starts the background copy of this process (same script and arguments)
 * and resolves with its report. Resolves with an error report if the child
 * exits or closes the channel without reporting.
 */
export function startDaemonChild(): Promise<DaemonReport> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    detached: true,
    stdio: ["ignore", "ignore", "ignore", "ipc"],
    env: { ...process.env, [CHILD_ENV]: "1" },
  });
  return new Promise((resolve) => {
    let settled = false;
    const settle = (report: DaemonReport): void => {
      if (settled) return;
      settled = true;
      if (child.connected) child.disconnect();
      child.unref();
      resolve(report);
    };
    child.on("message", (m: DaemonReport) => settle(m));
    child.on("error", (err) => settle({ ready: false, error: err.message }));
    child.on("exit", (code, signal) =>
      settle({
        ready: false,
        error: `the daemon exited during startup (${signal ?? `status ${code ?? "?"}`})`,
      }),
    );
    child.on("disconnect", () =>
      settle({ ready: false, error: "the daemon closed its channel without reporting" }),
    );
  });
}

/** In the background copy: tells the parent how startup went, then lets it go. */
export function reportToParent(report: DaemonReport): void {
  if (process.send === undefined) return;
  process.send(report, () => process.disconnect?.());
}
