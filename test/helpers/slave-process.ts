// A real abs-slave process for integration tests: a temp directory with a
// slave.conf pointing at a test master (127.0.0.1; the slave's own key,
// derived from the master's realm key), its state and log dirs inside it,
// started with -f. The test edits slave.conf, signals the process and
// waits on what it prints.

import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseRealmKey } from "../../src/auth/realm-key.js";
import { deriveSlaveKey, formatSlaveKey } from "../../src/auth/slave-key.js";
import { DaemonProcess, type Teardown } from "./daemon-process.js";
import { tempDir } from "./tmp.js";

const here = path.dirname(fileURLToPath(import.meta.url));
export const SLAVE_BIN = path.resolve(here, "../../bin/abs-slave.js");

export interface SlaveSetup {
  /** The master to register with. */
  master: { port: number; keyFile: string };
  /** Default "green-acres". */
  name?: string;
  /**
   * The slave's key file, used as it is. Default: the slave's own key,
   * derived from the master's realm key (master.keyFile) into the slave's
   * directory.
   */
  keyFile?: string;
  /** `allowed_paths`; default "/". null leaves the line out (slave.conf requires it). */
  allowedPaths?: string | null;
  /**
   * `allowed_programs`, with `command` added to allowed_methods, for tests
   * that run command jobs. Default: neither line (the slave runs tar,
   * restore and verify).
   */
  programs?: string[];
  /** Extra `key: value` lines. */
  extra?: string;
  /**
   * Kerberos instead of the realm key: the slave's keytab, the master's
   * principal (none: no master_principal line) and certificate pin.
   */
  kerberos?: { keytab: string; masterPrincipal?: string; masterFingerprint: string };
  env?: Record<string, string>;
  /** Start it without tap's preloads (see DaemonProcess), so the programs it starts do not get them either. */
  withoutPreloads?: boolean;
}

export class SlaveProcess extends DaemonProcess {
  readonly confPath: string;
  readonly stateDir: string;
  readonly name: string;

  private constructor(
    t: Teardown,
    readonly dir: string,
    private setup: SlaveSetup,
  ) {
    super(t, "abs-slave", SLAVE_BIN);
    this.confPath = path.join(dir, "slave.conf");
    this.stateDir = path.join(dir, "state");
    this.name = setup.name ?? "green-acres";
  }

  /** Writes slave.conf in a new temp dir and starts the slave; resolves once it has registered. */
  static async start(t: Teardown, setup: SlaveSetup): Promise<SlaveProcess> {
    const s = SlaveProcess.prepare(t, setup);
    await s.launch();
    await s.waitForOutput(/registered with master/);
    return s;
  }

  static prepare(t: Teardown, setup: SlaveSetup): SlaveProcess {
    const s = new SlaveProcess(t, tempDir(t, "abs-slave-"), setup);
    s.withoutPreloads = setup.withoutPreloads === true;
    s.writeConfig(setup);
    return s;
  }

  /** Rewrites slave.conf (the running slave notices, or is sent SIGHUP by the test). */
  writeConfig(setup: SlaveSetup): void {
    this.setup = setup;
    writeFileSync(
      this.confPath,
      [
        "# written by the test",
        `master: 127.0.0.1:${setup.master.port}`,
        `name: ${this.name}`,
        `state_dir: ${this.stateDir}`,
        `log_dir: ${path.join(this.dir, "log")}`,
        ...(setup.allowedPaths === null ? [] : [`allowed_paths: ${setup.allowedPaths ?? "/"}`]),
        ...(setup.programs === undefined
          ? []
          : [
              "allowed_methods: tar, restore, verify, command",
              `allowed_programs: ${setup.programs.join(", ")}`,
            ]),
        ...(setup.kerberos === undefined
          ? [`key_file: ${setup.keyFile ?? this.writeSlaveKey(setup.master.keyFile)}`]
          : [
              "auth: kerberos",
              `keytab: ${setup.kerberos.keytab}`,
              ...(setup.kerberos.masterPrincipal === undefined
                ? []
                : [`master_principal: ${setup.kerberos.masterPrincipal}`]),
              `master_fingerprint: ${setup.kerberos.masterFingerprint}`,
            ]),
        setup.extra ?? "",
        "",
      ].join("\n"),
    );
  }

  /**
   * Writes this slave's own key, derived from the master's realm key file,
   * as `abs keygen --slave` does on the master's host; returns its path.
   */
  writeSlaveKey(realmKeyFile: string): string {
    const file = path.join(this.dir, "slave.key");
    const realmKey = parseRealmKey(readFileSync(realmKeyFile, "utf8"), realmKeyFile);
    writeFileSync(file, formatSlaveKey(deriveSlaveKey(realmKey, this.name)), { mode: 0o600 });
    return file;
  }

  /** Starts abs-slave -f; resolves when it says it runs. */
  async launch(extraArgs: string[] = []): Promise<void> {
    this.spawnDaemon(["-f", "-c", this.confPath, ...extraArgs], this.setup.env ?? {});
    await this.waitForOutput(/abs-slave pid \d+ running/);
  }
}
