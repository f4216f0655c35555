// A daemon (abs-master, abs-slave) started as a real process for an
// integration test: its output is collected, and the test waits on lines
// it prints, signals it, and waits for it to exit. Killed at teardown if
// the test left it running.

import { type ChildProcess, spawn } from "node:child_process";
import { nodeFlagsOf } from "../../src/shebang-flags.js";

export interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
  /** tap's: false once an assertion of the test failed. */
  passing?(): boolean;
  comment?(...message: unknown[]): void;
}

export type ExitInfo = { code: number | null; signal: NodeJS.Signals | null };

export class DaemonProcess {
  private child: ChildProcess | null = null;
  private output = "";
  /** Everything printed by every start of the process, shown when the test fails. */
  private history = "";
  private readonly watchers = new Set<() => void>();
  private exited: Promise<ExitInfo> | null = null;

  constructor(
    protected readonly t: Teardown,
    /** The program's name, in error messages. */
    private readonly program: string,
    private readonly bin: string,
  ) {}

  /**
   * Run without the NODE_OPTIONS tap sets (ES modules it preloads with
   * --import). tap puts them back into the environment of every process a
   * test spawns, so `env -u NODE_OPTIONS` takes them out.
   */
  protected withoutPreloads = false;

  /** Starts `node BIN ...args`; the output starts afresh. */
  protected spawnDaemon(args: string[], env: Record<string, string>): void {
    this.output = "";
    const node = [process.execPath, ...nodeFlagsOf(this.bin), this.bin, ...args];
    const [command, ...argv] = this.withoutPreloads ? ["env", "-u", "NODE_OPTIONS", ...node] : node;
    const child = spawn(command, argv, {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    const onData = (chunk: Buffer): void => {
      this.output += chunk.toString();
      this.history += chunk.toString();
      for (const w of [...this.watchers]) w();
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    this.exited = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        for (const w of [...this.watchers]) w();
        resolve({ code, signal });
      }),
    );
    this.t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    if (this.history === "") {
      // Once per process object: what it printed helps explain a failure.
      this.t.teardown(() => {
        if (this.t.passing?.() === false) {
          this.t.comment?.(`${this.program} printed:\n${this.history}`);
        }
      });
    }
  }

  /** Everything the process printed since it was (re)started. */
  get log(): string {
    return this.output;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Resolves with the match once the output holds `pattern` (searching from
   * `from`, an offset into the output); rejects if the process exits first
   * or after `timeoutMs`.
   */
  waitForOutput(pattern: RegExp, timeoutMs = 30_000, from = 0): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = this.output.slice(from).match(pattern);
        if (m !== null) {
          done();
          resolve(m);
        } else if (
          this.child !== null &&
          (this.child.exitCode !== null || this.child.signalCode !== null)
        ) {
          done();
          reject(
            new Error(`${this.program} exited before printing ${String(pattern)}:\n${this.output}`),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `${this.program} did not print ${String(pattern)} within ${timeoutMs} ms:\n${this.output}`,
          ),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.watchers.delete(check);
      };
      this.watchers.add(check);
      check();
    });
  }

  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }

  /** Resolves when the process exits. */
  async exit(): Promise<ExitInfo> {
    if (this.exited === null) throw new Error("not started");
    return this.exited;
  }

  /** SIGTERM and wait. */
  async stop(): Promise<ExitInfo> {
    this.signal("SIGTERM");
    return this.exit();
  }
}
