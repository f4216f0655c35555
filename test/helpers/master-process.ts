// A real abs-master process for integration tests: a temp directory with a
// master.conf (realm key, 127.0.0.1 port 0, admin socket, jobs, state and
// log dirs inside it), started with -f; the test waits on its log lines,
// talks to it with `abs` and the admin client, and signals it.

import { spawn } from "node:child_process";
import { writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { adminCall } from "../../src/admin-client.js";
import { generateRealmKey } from "../../src/auth/realm-key.js";
import type { JsonObject, JsonValue } from "../../src/json-shape.js";
import { DaemonProcess, type Teardown } from "./daemon-process.js";
import { tempDir } from "./tmp.js";

const here = path.dirname(fileURLToPath(import.meta.url));
export const MASTER_BIN = path.resolve(here, "../../bin/abs-master.cjs");
export const ABS_BIN = path.resolve(here, "../../bin/abs.js");

export interface MasterSetup {
  /** The slave link's address. Default "127.0.0.1:0" (a new port at every start). */
  listen?: string;
  /** Extra lines for the [master] section. */
  master?: string;
  /** Job definitions ([job NAME] sections), appended to master.conf. */
  jobs?: string;
  /** Extra environment for the process (e.g. TZ, or a test KDC's Kerberos variables). */
  env?: Record<string, string>;
  /** Kerberos mode instead of the realm key: the realm, the master's keytab and service principal. */
  kerberos?: { realm: string; keytab: string; servicePrincipal: string };
  /** Without the modules tap preloads through NODE_OPTIONS, as an admin runs it. */
  withoutPreloads?: boolean;
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export class MasterProcess extends DaemonProcess {
  readonly confPath: string;
  readonly socket: string;
  readonly keyFile: string;
  readonly jobsDir: string;
  port = 0;

  private constructor(
    t: Teardown,
    readonly dir: string,
    private readonly env: Record<string, string>,
  ) {
    super(t, "abs-master", MASTER_BIN);
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
    m.withoutPreloads = setup.withoutPreloads === true;
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
        `listen = ${setup.listen ?? "127.0.0.1:0"}`,
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
    this.spawnDaemon(["-f", "-c", this.confPath, ...extraArgs], this.env);
    const listening = await this.waitForOutput(/slave link listening on 127\.0\.0\.1:(\d+)/);
    this.port = Number(listening[1]);
    await this.waitForOutput(/abs-master pid \d+ serving/);
  }

  call(method: string, args: JsonObject = {}): Promise<JsonValue> {
    return adminCall(this.socket, method, args);
  }

  /** Runs `abs -s SOCKET ...args`. */
  abs(args: string[]): Promise<RunResult> {
    return runNode([ABS_BIN, "-s", this.socket, ...args]);
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
