// A throwaway MIT Kerberos realm for tests: its own database, krb5.conf and
// kdc.conf in a temp dir, and Debian's krb5kdc running in the foreground on a
// loopback port. Several realms can run at once (each its own KDC); no
// cross-realm trust is ever configured between them, so a principal of one
// realm cannot get a ticket for a service of another.
//
// Configuration reaches MIT through environment variables: KRB5_CONFIG (the
// client config, a colon-separated list of files) and KRB5_KDC_PROFILE (the
// KDC's own config). `kdc.env` holds them for child processes; this process's
// own process.env.KRB5_CONFIG lists every running realm's krb5.conf, the first
// started realm first (so its realm is the default one), and is restored when
// the last realm stops.

import { spawn, execFile, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { accessSync, constants as fsConstants, rmSync } from "node:fs";
import { mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { Test } from "tap";
import { loadKerberos, parseKeytab } from "../../src/auth/kerberos.js";

const execFileP = promisify(execFile);

/** The Debian packages the Kerberos tests need, for skip and failure messages. */
export const KERBEROS_PACKAGES = "krb5-kdc krb5-admin-server krb5-user libkrb5-dev";

/** Bound on the KDC start (database creation excluded), in ms. */
const START_TIMEOUT_MS = 10_000;
/** Bound on the KDC's exit after SIGTERM before SIGKILL, in ms. */
const STOP_TIMEOUT_MS = 5_000;
/** Bound on one kdb5_util or kadmin.local run, in ms. */
const ADMIN_TIMEOUT_MS = 30_000;

// kinit (krb5-user) is only for tests of slaves whose tickets come from a cache.
const BINARIES = ["krb5kdc", "kdb5_util", "kadmin.local", "kinit"] as const;
type Binary = (typeof BINARIES)[number];

/**
 * Where each MIT binary lives, or the names of those missing. The admin
 * binaries live in /usr/sbin, which is not on every PATH, so it is searched too.
 */
function findBinaries(): { found: Record<Binary, string> } | { missing: Binary[] } {
  const dirs = [
    ...(process.env.PATH ?? "").split(":").filter((d) => d !== ""),
    "/usr/sbin",
    "/sbin",
  ];
  const found: Partial<Record<Binary, string>> = {};
  const missing: Binary[] = [];
  for (const bin of BINARIES) {
    for (const dir of dirs) {
      const candidate = path.join(dir, bin);
      try {
        accessSync(candidate, fsConstants.X_OK);
        found[bin] = candidate;
        break;
      } catch {
        // not in this directory
      }
    }
    if (found[bin] === undefined) missing.push(bin);
  }
  return missing.length > 0 ? { missing } : { found: found as Record<Binary, string> };
}

function missingBinariesMessage(missing: readonly Binary[]): string {
  return `${missing.join(", ")} not found on PATH or in /usr/sbin; install the Debian packages ${KERBEROS_PACKAGES}`;
}

/** Whether Debian's KDC binaries (krb5kdc, kdb5_util, kadmin.local) and kinit are installed. */
export function kdcAvailable(): boolean {
  return "found" in findBinaries();
}

/**
 * Why the Kerberos tests cannot run here (binaries or the `kerberos` addon
 * missing), or undefined when they can.
 */
export async function kerberosTestsBlocked(): Promise<string | undefined> {
  const bins = findBinaries();
  if ("missing" in bins) return missingBinariesMessage(bins.missing);
  try {
    await loadKerberos();
  } catch (err) {
    return `${err instanceof Error ? err.message : String(err)} (Debian packages: ${KERBEROS_PACKAGES})`;
  }
  return undefined;
}

/**
 * tap options for a Kerberos test. Outside CI a missing prerequisite skips
 * the test with a message naming the Debian packages; under CI
 * (CI === "true") it is a failure, because CI installs them and a silent
 * skip would hide a broken setup.
 */
export async function kerberosTestOptions(t: Test): Promise<{ skip: string | false }> {
  const blocked = await kerberosTestsBlocked();
  if (blocked === undefined) return { skip: false };
  if (process.env.CI === "true") {
    t.fail(`Kerberos tests cannot run under CI: ${blocked}`);
    return { skip: "prerequisites missing (reported as a failure above)" };
  }
  return { skip: `Kerberos tests skipped: ${blocked}` };
}

export interface StartKdcOptions {
  /** The realm name, e.g. "MAIN.TEST". Must differ from every running test realm. */
  realm: string;
}

export interface AddPrincipalOptions {
  /** Keytab file to add the keys to (appended if it exists). Default: `<dir>/<name>.keytab`. */
  keytab?: string;
}

export interface Kdc {
  readonly realm: string;
  /** The temp dir holding the database, configs, logs and keytabs. Removed by stop(). */
  readonly dir: string;
  /** The loopback port, TCP and UDP, of this KDC. */
  readonly port: number;
  /** This realm's krb5.conf (only this realm; default_realm is this realm). */
  readonly krb5Conf: string;
  /**
   * Environment for child processes acting in this realm: KRB5_CONFIG lists
   * this realm's krb5.conf first, then every other running test realm's (so
   * a client here can reach those KDCs too, though no trust exists);
   * KRB5_KDC_PROFILE; a private default KRB5CCNAME; KRB5RCACHEDIR in the
   * temp dir. Computed on each read.
   */
  readonly env: Record<string, string>;
  /** What the KDC wrote on stderr (its log), for failure diagnostics. */
  readonly log: string;
  /** Creates `name@REALM` with a random key and exports it to a keytab; returns the keytab path. */
  addPrincipal(name: string, options?: AddPrincipalOptions): Promise<string>;
  /** Deletes `name@REALM` from the database (keytabs already exported stay on disk). */
  deletePrincipal(name: string): Promise<void>;
  /**
   * Gives `name@REALM` a new random key, one key version up, as an admin
   * rotating a key does; `keytab` is replaced by one holding only the new
   * key (atomically, as a deployment tool would). Returns the new kvno.
   */
  rotateKey(name: string, keytab: string): Promise<number>;
  /** Runs `kinit -k -t keytab -c ccache name@REALM`: tickets in a cache, as an operator would. */
  kinit(name: string, keytab: string, ccache: string): Promise<void>;
  /** Stops the krb5kdc process only (SIGTERM); the realm, configs and keytabs stay. */
  stopServer(): Promise<void>;
  /** Starts krb5kdc again on the same port (stopping it first if it runs). */
  restart(): Promise<void>;
  /** Stops the KDC and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

/** Every realm started by this module and not yet stopped, in start order. */
const running: KdcRealm[] = [];
/** process.env values before the first realm started, restored after the last stops. */
let savedEnv: { KRB5_CONFIG?: string; KRB5_KDC_PROFILE?: string; KRB5RCACHEDIR?: string } | null =
  null;

/**
 * Keeps this process's environment in step with the running realms. MIT
 * reads these variables again for every new krb5 context, so the change
 * takes effect on the next GSS call; it must not race an in-flight call
 * (setenv is not thread-safe), which is why realms start and stop in test
 * setup and teardown only.
 */
function syncProcessEnv(): void {
  if (running.length === 0) {
    if (savedEnv !== null) {
      for (const key of ["KRB5_CONFIG", "KRB5_KDC_PROFILE", "KRB5RCACHEDIR"] as const) {
        const value = savedEnv[key];
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
      savedEnv = null;
    }
    return;
  }
  if (savedEnv === null) {
    savedEnv = {};
    for (const key of ["KRB5_CONFIG", "KRB5_KDC_PROFILE", "KRB5RCACHEDIR"] as const) {
      const value = process.env[key];
      if (value !== undefined) savedEnv[key] = value;
    }
  }
  const first = running[0];
  process.env.KRB5_CONFIG = running.map((r) => r.krb5Conf).join(":");
  process.env.KRB5_KDC_PROFILE = first.kdcConf;
  // Acceptors keep a replay cache; keep it in the temp dir, not /var/tmp.
  process.env.KRB5RCACHEDIR = first.dir;
}

// A test process that exits without stopping its realms (a failed
// assertion, an uncaught error) must not leave KDCs behind. Only
// synchronous work is possible here.
process.on("exit", () => {
  for (const realm of running) realm.killNow();
});

/** Ports of this process's KDCs, from the pick until stop(). */
const portsInUse = new Set<number>();

/** A free loopback port, free for both TCP and UDP at the time of the check. */
async function pickPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    const port = (server.address() as net.AddressInfo).port;
    const udp = dgram.createSocket("udp4");
    const udpFree = await new Promise<boolean>((resolve) => {
      udp.once("error", () => resolve(false));
      udp.bind(port, "127.0.0.1", () => resolve(true));
    });
    udp.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    // The port is released here and krb5kdc binds it a moment later. krb5kdc
    // binds with SO_REUSEPORT, so a collision would not make it fail: it
    // would share the port. Within this process that is ruled out below;
    // across processes, the kernel hands out ephemeral ports at random and
    // the window is milliseconds, so a collision is very unlikely.
    if (udpFree && !portsInUse.has(port)) {
      portsInUse.add(port);
      return port;
    }
  }
  throw new Error("no loopback port free for both TCP and UDP after 20 attempts");
}

function krb5ConfText(realm: string, dir: string, port: number): string {
  return `# krb5.conf of the test realm ${realm} (test/helpers/kdc.ts)
[libdefaults]
  default_realm = ${realm}
  # Everything is explicit: no DNS lookups of KDCs or realms.
  dns_lookup_kdc = false
  dns_lookup_realm = false
  # Service names like abs/127.0.0.1 are used as written: no forward or
  # reverse DNS canonicalisation (which would turn 127.0.0.1 into localhost).
  dns_canonicalize_hostname = false
  rdns = false
  # Prefer TCP: every message goes over TCP first.
  udp_preference_limit = 1
  # Nothing of this realm touches the machine's own caches and keytabs.
  default_ccache_name = FILE:${dir}/ccache
  default_keytab_name = FILE:${dir}/default.keytab
  default_client_keytab_name = FILE:${dir}/client.keytab

[realms]
  ${realm} = {
    kdc = 127.0.0.1:${port}
  }
`;
}

function kdcConfText(realm: string, dir: string, port: number): string {
  // kdc_listen/kdc_tcp_listen (MIT >= 1.15) take an address, so the KDC binds
  // 127.0.0.1 only; kdc_ports/kdc_tcp_ports (which bind every address) are
  // only for older KDCs, which ignore the *_listen relations.
  return `# kdc.conf of the test realm ${realm} (test/helpers/kdc.ts)
[kdcdefaults]
  kdc_listen = 127.0.0.1:${port}
  kdc_tcp_listen = 127.0.0.1:${port}
  kdc_ports = ${port}
  kdc_tcp_ports = ${port}

[realms]
  ${realm} = {
    database_name = ${dir}/principal
    key_stash_file = ${dir}/stash
    acl_file = ${dir}/kadm5.acl
    kdc_listen = 127.0.0.1:${port}
    kdc_tcp_listen = 127.0.0.1:${port}
    kdc_ports = ${port}
    kdc_tcp_ports = ${port}
    max_life = 1h
    max_renewable_life = 1h
  }

[logging]
  # The KDC logs to stderr, where the harness waits for "commencing operation".
  kdc = STDERR
  default = FILE:${dir}/krb5lib.log
`;
}

class KdcRealm implements Kdc {
  readonly realm: string;
  readonly dir: string;
  readonly krb5Conf: string;
  readonly kdcConf: string;
  port = 0;
  log = "";
  private readonly bins: Record<Binary, string>;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(realm: string, dir: string, bins: Record<Binary, string>) {
    this.realm = realm;
    this.dir = dir;
    this.bins = bins;
    this.krb5Conf = path.join(dir, "krb5.conf");
    this.kdcConf = path.join(dir, "kdc.conf");
  }

  get env(): Record<string, string> {
    const others = running.filter((r) => r !== this).map((r) => r.krb5Conf);
    const env: Record<string, string> = {
      KRB5_CONFIG: [this.krb5Conf, ...others].join(":"),
      KRB5_KDC_PROFILE: this.kdcConf,
      KRB5CCNAME: `FILE:${this.dir}/ccache`,
      KRB5RCACHEDIR: this.dir,
    };
    // Pass MIT's tracing through when a developer asks for it.
    if (process.env.KRB5_TRACE !== undefined) env.KRB5_TRACE = process.env.KRB5_TRACE;
    return env;
  }

  /** The environment for MIT's own tools: this process's env plus this realm's. */
  private toolEnv(): NodeJS.ProcessEnv {
    return { ...process.env, ...this.env };
  }

  async writeConfigs(): Promise<void> {
    await writeFile(this.krb5Conf, krb5ConfText(this.realm, this.dir, this.port));
    await writeFile(this.kdcConf, kdcConfText(this.realm, this.dir, this.port));
    // kadmind is never run, but MIT tools complain when the ACL file is absent.
    await writeFile(path.join(this.dir, "kadm5.acl"), "");
  }

  async createDatabase(): Promise<void> {
    const masterPassword = randomBytes(16).toString("hex");
    await this.run(this.bins.kdb5_util, ["create", "-s", "-P", masterPassword, "-r", this.realm]);
  }

  /** Runs an MIT tool in this realm; its output, or an error carrying its output. */
  private async run(file: string, args: string[]): Promise<string> {
    try {
      const { stdout, stderr } = await execFileP(file, args, {
        env: this.toolEnv(),
        timeout: ADMIN_TIMEOUT_MS,
      });
      return `${stdout}\n${stderr}`;
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(
        `${path.basename(file)} ${args.join(" ")} failed in realm ${this.realm}: ${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`,
      );
    }
  }

  /**
   * Runs one kadmin.local query. kadmin.local exits 0 even when the query
   * fails, so success is recognised by the line it prints on success.
   */
  private async kadmin(query: string, success: RegExp): Promise<void> {
    const output = await this.run(this.bins["kadmin.local"], ["-r", this.realm, "-q", query]);
    if (!success.test(output)) {
      throw new Error(`kadmin.local "${query}" failed in realm ${this.realm}:\n${output}`);
    }
  }

  async addPrincipal(name: string, options: AddPrincipalOptions = {}): Promise<string> {
    if (name.includes("@")) {
      throw new Error(
        `addPrincipal("${name}"): give the name without a realm; it is added to ${this.realm}`,
      );
    }
    const keytab = options.keytab ?? path.join(this.dir, `${name.replace(/\//g, "_")}.keytab`);
    const full = `${name}@${this.realm}`;
    await this.kadmin(`addprinc -randkey ${full}`, /Principal ".*" created/);
    // ktadd re-randomises the key, which is fine: the principal is new and
    // this keytab is the only copy of its key.
    await this.kadmin(`ktadd -k ${keytab} ${full}`, /added to keytab/);
    return keytab;
  }

  async deletePrincipal(name: string): Promise<void> {
    await this.kadmin(`delprinc -force ${name}@${this.realm}`, /Principal ".*" deleted/);
  }

  async rotateKey(name: string, keytab: string): Promise<number> {
    const fresh = `${keytab}.new`;
    await rm(fresh, { force: true });
    // ktadd re-randomises the key: the KDC now issues tickets of the new kvno.
    await this.kadmin(`ktadd -k ${fresh} ${name}@${this.realm}`, /added to keytab/);
    const kvnos = new Set(parseKeytab(await readFile(fresh)).map((e) => e.kvno));
    if (kvnos.size !== 1)
      throw new Error(`rotateKey: ${fresh} holds kvnos ${[...kvnos].join(", ")}`);
    await rename(fresh, keytab);
    return [...kvnos][0];
  }

  async kinit(name: string, keytab: string, ccache: string): Promise<void> {
    await this.run(this.bins.kinit, ["-k", "-t", keytab, "-c", ccache, `${name}@${this.realm}`]);
  }

  /** Spawns krb5kdc and resolves once it logs "commencing operation" (its sockets are bound). */
  async startServer(): Promise<void> {
    const child = spawn(this.bins.krb5kdc, ["-n", "-r", this.realm], {
      env: this.toolEnv(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (err?: Error): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onOutput = (chunk: Buffer): void => {
        this.log += chunk.toString();
        if (this.log.includes("commencing operation")) finish();
      };
      child.stdout.on("data", onOutput);
      child.stderr.on("data", onOutput);
      child.once("error", (err) => finish(new Error(`krb5kdc could not be run: ${err.message}`)));
      child.once("exit", (code, signal) =>
        finish(
          new Error(
            `krb5kdc of realm ${this.realm} exited (${signal ?? `code ${code}`}) before it was ready on 127.0.0.1:${this.port}:\n${this.log}`,
          ),
        ),
      );
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        finish(
          new Error(
            `krb5kdc of realm ${this.realm} not ready within ${START_TIMEOUT_MS} ms:\n${this.log}`,
          ),
        );
      }, START_TIMEOUT_MS);
    });
  }

  async stopServer(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    this.child = null;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await this.exited;
      clearTimeout(timer);
    }
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error(`realm ${this.realm} is stopped for good`);
    await this.stopServer();
    await this.startServer();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.stopServer();
    portsInUse.delete(this.port);
    const index = running.indexOf(this);
    if (index >= 0) running.splice(index, 1);
    syncProcessEnv();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** For the process "exit" hook: synchronous best-effort cleanup. */
  killNow(): void {
    this.child?.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Creates a realm in a new temp dir and starts its KDC on a free loopback
 * port. Throws (naming the Debian packages) when the MIT binaries are missing.
 */
export async function startKdc(options: StartKdcOptions): Promise<Kdc> {
  const bins = findBinaries();
  if ("missing" in bins) {
    throw new Error(`cannot start a test KDC: ${missingBinariesMessage(bins.missing)}`);
  }
  if (running.some((r) => r.realm === options.realm)) {
    throw new Error(`a test KDC for realm ${options.realm} is already running`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), `abs-kdc-${options.realm.toLowerCase()}-`));
  const kdc = new KdcRealm(options.realm, dir, bins.found);
  try {
    kdc.port = await pickPort();
    await kdc.writeConfigs();
    await kdc.createDatabase();
    await kdc.startServer();
  } catch (err) {
    await kdc.stopServer();
    portsInUse.delete(kdc.port);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  running.push(kdc);
  syncProcessEnv();
  return kdc;
}

/**
 * The two realms of the Kerberos link tests: MAIN.TEST, the master's, and
 * ROGUE.TEST, another realm whose key for `service` sits in the master's
 * keytab too, so that GSSAPI accepts its tickets and only the realm check
 * refuses them. Both KDCs stop at teardown.
 */
export async function startMainAndRogue(
  t: Test,
  service: string,
): Promise<{ main: Kdc; rogue: Kdc; masterKeytab: string }> {
  const main = await startKdc({ realm: "MAIN.TEST" });
  t.teardown(() => main.stop());
  const rogue = await startKdc({ realm: "ROGUE.TEST" });
  t.teardown(() => rogue.stop());
  const masterKeytab = await main.addPrincipal(service);
  await rogue.addPrincipal(service, { keytab: masterKeytab });
  return { main, rogue, masterKeytab };
}
