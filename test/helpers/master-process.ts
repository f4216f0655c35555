// A real abs-master process for integration tests: a temp directory with a
// master.conf (realm key, 127.0.0.1 port 0, admin socket, jobs, state and
// log dirs inside it), started with -f; the test waits on its log lines,
// talks to it with `abs` and the admin client, and signals it.

import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { adminCall } from "../../src/admin-client.js";
import { generateRealmKey } from "../../src/auth/realm-key.js";
import type { JsonObject, JsonValue } from "../../src/json-shape.js";
import { tempDir } from "./tmp.js";

const here = path.dirname(fileURLToPath(import.meta.url));
export const MASTER_BIN = path.resolve(here, "../../bin/abs-master.js");
export const ABS_BIN = path.resolve(here, "../../bin/abs.js");

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export interface MasterSetup {
  /** Extra lines for the [master] section. */
  master?: string;
  /** Job definitions ([job NAME] sections), appended to master.conf. */
  jobs?: string;
  /** Extra environment for the process (e.g. TZ, or a test KDC's Kerberos variables). */
  env?: Record<string, string>;
  /** Kerberos mode instead of the realm key: the realm, the master's keytab and service principal. */
  kerberos?: { realm: string; keytab: string; servicePrincipal: string };
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export class MasterProcess {
  readonly confPath: string;
  readonly socket: string;
  readonly keyFile: string;
  readonly jobsDir: string;
  port = 0;
  private child: ChildProcess | null = null;
  private output = "";
  private readonly watchers = new Set<() => void>();
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;

  private constructor(
    private readonly t: Teardown,
    readonly dir: string,
    private readonly env: Record<string, string>,
  ) {
    this.confPath = path.join(dir, "master.conf");
    this.socket = path.join(dir, "run", "admin.sock");
    this.keyFile = path.join(dir, "realm.key");
    this.jobsDir = path.join(dir, "jobs");
  }

  /** Writes the config and a realm key in a new temp dir and starts the master. */
  static async start(t: Teardown, setup: MasterSetup = {}): Promise<MasterProcess> {
    const m = await MasterProcess.prepare(t, setup);
    await m.launch();
    return m;
  }

  /** As start, without starting: the test may fill the jobs directory first. */
  static async prepare(t: Teardown, setup: MasterSetup = {}): Promise<MasterProcess> {
    const dir = tempDir(t, "abs-master-");
    const m = new MasterProcess(t, dir, setup.env ?? {});
    await generateRealmKey(m.keyFile);
    mkdirSync(path.join(dir, "jobs.d"));
    m.writeConfig(setup);
    return m;
  }

  writeConfig(setup: MasterSetup): void {
    const d = this.dir;
    writeFileSync(
      this.confPath,
      [
        "[master]",
        `realm = ${setup.kerberos?.realm ?? "TEST.ABS"}`,
        "listen = 127.0.0.1:0",
        `jobs_dir = ${this.jobsDir}`,
        `state_dir = ${path.join(d, "state")}`,
        `log_dir = ${path.join(d, "log")}`,
        `admin_socket = ${this.socket}`,
        ...(setup.kerberos === undefined
          ? [`realm_key_file = ${this.keyFile}`]
          : [
              "auth = kerberos",
              `keytab = ${setup.kerberos.keytab}`,
              `service_principal = ${setup.kerberos.servicePrincipal}`,
            ]),
        setup.master ?? "",
        "",
        setup.jobs ?? "",
      ].join("\n"),
    );
  }

  /** Starts abs-master -f on this directory; resolves when it says it is ready. */
  async launch(extraArgs: string[] = []): Promise<void> {
    this.output = "";
    const child = spawn(process.execPath, [MASTER_BIN, "-f", "-c", this.confPath, ...extraArgs], {
      env: { ...process.env, ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    const onData = (chunk: Buffer): void => {
      this.output += chunk.toString();
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
    const listening = await this.waitForOutput(/slave link listening on 127\.0\.0\.1:(\d+)/);
    this.port = Number(listening[1]);
    await this.waitForOutput(/abs-master pid \d+ serving/);
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
            new Error(`abs-master exited before printing ${String(pattern)}:\n${this.output}`),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `abs-master did not print ${String(pattern)} within ${timeoutMs} ms:\n${this.output}`,
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

  call(method: string, args: JsonObject = {}): Promise<JsonValue> {
    return adminCall(this.socket, method, args);
  }

  /** Runs `abs -s SOCKET ...args`. */
  abs(args: string[]): Promise<RunResult> {
    return runNode([ABS_BIN, "-s", this.socket, ...args]);
  }

  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }

  /** Resolves when the process exits. */
  async exit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.exited === null) throw new Error("not started");
    return this.exited;
  }

  /** SIGTERM and wait. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.signal("SIGTERM");
    return this.exit();
  }
}

/** Runs node with `args`; resolves with its exit status and output. */
export function runNode(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.once("error", reject);
    child.once("close", (status) => resolve({ status, stdout, stderr }));
  });
}
