// Programs of an installed ABS (the Debian package, npm install -g), run as
// an admin or systemd would run them: by their installed path, as a given
// user (setpriv, which execs: the pid is the program's, and signals reach
// it), with a clean environment (no NODE_OPTIONS of tap's, no ABS_*).

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import type { Teardown } from "./daemon-process.js";

/** Who to run as: a user name, the group, and supplementary groups (none: the user's own, from /etc/group). */
export interface RunAs {
  user: string;
  group: string;
  groups?: string[] | "none";
}

export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of an admin's shell, reduced to what ABS reads. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8", TZ: "UTC", ...extra };
}

/**
 * The command line that runs `argv` as `as` (or as this process's user).
 * tap puts its NODE_OPTIONS (modules it preloads) back into the environment
 * of every process a test spawns, so `env -u` takes them out; env and
 * setpriv exec, so the pid stays the program's.
 */
export function asUser(program: string[], as?: RunAs): string[] {
  const argv = ["env", "-u", "NODE_OPTIONS", ...program];
  if (as === undefined) return argv;
  const groups =
    as.groups === undefined
      ? ["--init-groups"]
      : as.groups === "none"
        ? ["--clear-groups"]
        : [`--groups=${as.groups.join(",")}`];
  return ["setpriv", `--reuid=${as.user}`, `--regid=${as.group}`, ...groups, "--", ...argv];
}

/** Runs a command to its end (synchronously: these are short). */
export function run(argv: string[], opts: { as?: RunAs; env?: Record<string, string> } = {}): Ran {
  const [cmd, ...args] = asUser(argv, opts.as);
  const r = spawnSync(cmd, args, { encoding: "utf8", env: opts.env ?? cleanEnv() });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A daemon started from its installed path in the foreground; killed at teardown. */
export class InstalledDaemon {
  private output = "";
  private readonly watchers = new Set<() => void>();
  private readonly child: ChildProcess;
  private readonly exited: Promise<number | null>;

  constructor(t: Teardown, argv: string[], as?: RunAs) {
    const [cmd, ...args] = asUser(argv, as);
    this.child = spawn(cmd, args, { env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
    const onData = (chunk: Buffer): void => {
      this.output += chunk.toString();
      for (const w of [...this.watchers]) w();
    };
    this.child.stdout?.on("data", onData);
    this.child.stderr?.on("data", onData);
    this.exited = new Promise((resolve) =>
      this.child.once("exit", (code) => {
        for (const w of [...this.watchers]) w();
        resolve(code);
      }),
    );
    t.teardown(() => {
      if (this.child.exitCode === null && this.child.signalCode === null) {
        this.child.kill("SIGKILL");
      }
    });
  }

  get log(): string {
    return this.output;
  }

  /** Resolves with the match once the output holds `pattern`; rejects on exit or after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.watchers.delete(check);
        reject(new Error(`no ${String(pattern)} within ${timeoutMs} ms in:\n${this.output}`));
      }, timeoutMs);
      const check = (): void => {
        const m = this.output.match(pattern);
        const gone = this.child.exitCode !== null || this.child.signalCode !== null;
        if (m === null && !gone) return;
        clearTimeout(timer);
        this.watchers.delete(check);
        if (m !== null) resolve(m);
        else reject(new Error(`exited before printing ${String(pattern)}:\n${this.output}`));
      };
      this.watchers.add(check);
      check();
    });
  }

  /** SIGTERM; resolves with the exit status. */
  stop(): Promise<number | null> {
    this.child.kill("SIGTERM");
    return this.exited;
  }
}
