// A real abs-master in Kerberos mode against a real MIT KDC on loopback:
// a slave's principal must vouch for the name it registers under, or one
// host's keytab could report another host's jobs. Slaves run in child
// processes (test/fixtures/link-slave.ts), since MIT selects a keytab
// process-wide.

import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import type { ConnectOptions } from "../../src/auth/link-client.js";
import { readCertificateFingerprint } from "../../src/auth/tls.js";
import { kerberosTestOptions, startKdc } from "../helpers/kdc.js";
import { MasterProcess } from "../helpers/master-process.js";

const FIXTURE = fileURLToPath(new URL("../fixtures/link-slave.js", import.meta.url));
const SERVICE = "abs/127.0.0.1";

interface SlaveOutcome {
  ok?: { identity: string; name: string; heartbeat: number };
  error?: { code: string; message: string };
}

/** A slave child: authenticates, waits for the master's heartbeat, prints one JSON line. */
function runSlave(options: ConnectOptions, env: Record<string, string>): Promise<SlaveOutcome> {
  const child = spawn(process.execPath, [FIXTURE, JSON.stringify(options)], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once("exit", () => {
      try {
        resolve(JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as SlaveOutcome);
      } catch {
        reject(new Error(`the slave child printed no result: ${stdout}`));
      }
    });
  });
}

const options = await kerberosTestOptions(t);

t.test(
  "Kerberos slaves at a real master: the principal vouches for the name",
  options,
  async (t) => {
    const kdc = await startKdc({ realm: "MAIN.TEST" });
    t.teardown(() => kdc.stop());
    const keytab = await kdc.addPrincipal(SERVICE);
    const hostKeytab = await kdc.addPrincipal("host/green-acres.main.test");
    const m = await MasterProcess.start(t, {
      kerberos: { realm: "MAIN.TEST", keytab, servicePrincipal: SERVICE },
      // The master's heartbeat is what the slave child waits for.
      master: "heartbeat_interval = 100ms",
      env: kdc.env,
    });
    const pin = await readCertificateFingerprint(path.join(m.dir, "state", "tls-cert.pem"));
    const slave = (name: string): ConnectOptions => ({
      host: "127.0.0.1",
      port: m.port,
      name,
      auth: { mode: "kerberos", servicePrincipal: SERVICE, keytab: hostKeytab },
      tls: { pin },
    });

    const ok = await runSlave(slave("green-acres"), kdc.env);
    t.equal(ok.ok?.identity, "host/green-acres.main.test@MAIN.TEST", "its own name: accepted");
    t.equal(ok.ok?.name, "green-acres");
    t.ok(typeof ok.ok?.heartbeat === "number", "and served (the master's heartbeat came)");

    const other = await runSlave(slave("red-barn"), kdc.env);
    t.same(other.error, {
      code: "AUTH_FAILED",
      message:
        'master refused authentication: principal host/green-acres.main.test@MAIN.TEST may register as "green-acres.main.test" or "green-acres", not "red-barn"',
    });
    await m.waitForOutput(/slave link: 127\.0\.0\.1:\d+ refused: principal host\/green-acres/);
    const status = (await m.call("status")) as { mode: string; realm: string };
    t.same([status.mode, status.realm], ["real", "MAIN.TEST"], "still serving");
    await m.stop();
  },
);
