// npm run bench -- auth
//
// 1. auth.handshakes.realm-key: completed TLS + realm-key authentications
//    per second on loopback, many in flight, the master in this process and
//    the slaves in a child, each slave with its own key file (the master
//    derives each slave's key from the realm key); `derivationUs` is what
//    one derivation costs, in the same run.
// 2. auth.handshakes.kerberos: the same in Kerberos mode, against a real MIT
//    KDC on loopback (the test harness's), when its Debian packages are here.
// 3. auth.rss: the master's RSS holding 10,000 authenticated idle slave
//    connections (the master alone in a child process).

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { connectToMaster } from "../src/auth/link-client.js";
import type { SlaveSideConnection } from "../src/auth/link-connection.js";
import { LinkServer, type LinkServerOptions } from "../src/auth/link-server.js";
import { generateRealmKey, loadRealmKey, type RealmKey } from "../src/auth/realm-key.js";
import { deriveSlaveKey } from "../src/auth/slave-key.js";
import type { ClientAuth } from "./auth-clients.js";
import { loadOrCreateMasterTls } from "../src/auth/tls.js";
import { silentLogger } from "../src/log.js";
import { kerberosTestsBlocked, startKdc } from "../test/helpers/kdc.js";
import { inFlight, report, round } from "./report.js";

const IN_FLIGHT = 16;
const REALM_KEY_HANDSHAKES = 2000;
const KERBEROS_HANDSHAKES = 600;
const IDLE_CONNECTIONS = Number(process.env.ABS_BENCH_CONNECTIONS ?? 10_000);

/** Runs the clients child and returns what it printed. */
function runClients(
  args: object,
  env: NodeJS.ProcessEnv,
): Promise<{ seconds: number; handshakes: number }> {
  const helper = fileURLToPath(new URL("./auth-clients.js", import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [helper, JSON.stringify(args)], {
      stdio: ["ignore", "pipe", "inherit"],
      env,
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code === 0) resolve(JSON.parse(out) as { seconds: number; handshakes: number });
      else reject(new Error(`the clients child exited with ${code}`));
    });
  });
}

async function handshakesPerSecond(
  bench: string,
  root: string,
  server: Partial<LinkServerOptions>,
  auth: ClientAuth,
  count: number,
  pin: boolean,
  env: NodeJS.ProcessEnv = process.env,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const tls = await loadOrCreateMasterTls({ stateDir: root, hostName: "127.0.0.1" });
  const master = await LinkServer.listen({
    host: "127.0.0.1",
    port: 0,
    tls,
    masterName: "bench-master",
    logger: silentLogger,
    ...server,
  });
  master.on("connection", (conn) => conn.onMessage(() => undefined));
  try {
    const { seconds } = await runClients(
      {
        port: master.port,
        count,
        inFlight: IN_FLIGHT,
        auth,
        ...(pin ? { pin: tls.fingerprint } : {}),
      },
      env,
    );
    report({
      bench,
      value: round(count / seconds, 0),
      unit: "handshakes/s",
      target: bench.endsWith("kerberos") ? ">= 200/s" : ">= 500/s",
      handshakes: count,
      inFlight: IN_FLIGHT,
      clients: "one child process",
      ...extra,
    });
  } finally {
    await master.close();
  }
}

async function benchKerberos(root: string): Promise<void> {
  const blocked = await kerberosTestsBlocked();
  if (blocked !== undefined) {
    report({ bench: "auth.handshakes.kerberos", value: 0, unit: "handshakes/s", skipped: blocked });
    return;
  }
  const kdc = await startKdc({ realm: "BENCH.TEST" });
  try {
    const service = "abs/127.0.0.1";
    const masterKeytab = await kdc.addPrincipal(service);
    const slaveKeytab = await kdc.addPrincipal("slave1");
    await handshakesPerSecond(
      "auth.handshakes.kerberos",
      path.join(root, "krb"),
      { kerberos: { keytab: masterKeytab, realm: "BENCH.TEST", servicePrincipal: service } },
      { mode: "kerberos", servicePrincipal: service, keytab: slaveKeytab },
      KERBEROS_HANDSHAKES,
      true,
      { ...process.env, ...kdc.env },
    );
  } finally {
    await kdc.stop();
  }
}

async function benchIdleRss(root: string): Promise<void> {
  const keyFile = path.join(root, "realm.key");
  await generateRealmKey(keyFile);
  const realmKey = await loadRealmKey(keyFile);
  const helper = fileURLToPath(new URL("./auth-master.js", import.meta.url));
  const child = spawn(process.execPath, [helper, path.join(root, "rss"), keyFile], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const read = async (): Promise<Record<string, number>> => {
    const line: IteratorResult<string> = await lines.next();
    if (line.done === true) throw new Error("the master child exited");
    return JSON.parse(line.value) as Record<string, number>;
  };
  const conns: SlaveSideConnection[] = [];
  try {
    const { port } = await read();
    child.stdin.write("rss\n");
    const before = await read();
    await inFlight(IDLE_CONNECTIONS, IN_FLIGHT * 4, async (i) => {
      conns.push(
        await connectToMaster({
          host: "127.0.0.1",
          port,
          name: `idle-${i}`,
          auth: { mode: "realm-key", realmKey },
        }),
      );
    });
    child.stdin.write("rss\n");
    const after = await read();
    report({
      bench: "auth.rss",
      value: round(after.rss / 1024 / 1024, 1),
      unit: "MB",
      target: "<= 600 MB",
      connections: after.connections,
      idleMasterMB: round(before.rss / 1024 / 1024, 1),
    });
  } finally {
    for (const c of conns) c.close();
    child.stdin.end();
    await new Promise((resolve) => child.once("exit", resolve));
  }
}

/**
 * Microseconds one slave key derivation takes (the master makes one per
 * realm-key handshake, on top of the handshake's two HMACs), over 20,000.
 */
function derivationMicroseconds(realmKey: RealmKey): number {
  const rounds = 20_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) deriveSlaveKey(realmKey, `slave-${i}`);
  return round(Number(process.hrtime.bigint() - start) / 1e3 / rounds, 2);
}

export async function runAuthBench(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), "abs-bench-auth-"));
  try {
    const keyFile = path.join(root, "handshake.key");
    await generateRealmKey(keyFile);
    const keyDir = path.join(root, "slave-keys");
    mkdirSync(keyDir);
    const realmKey = await loadRealmKey(keyFile);
    await handshakesPerSecond(
      "auth.handshakes.realm-key",
      path.join(root, "rk"),
      { realmKey },
      { mode: "realm-key", realmKeyFile: keyFile, keyDir },
      REALM_KEY_HANDSHAKES,
      false,
      process.env,
      { derivationUs: derivationMicroseconds(realmKey) },
    );
    await benchKerberos(root);
    await benchIdleRss(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
