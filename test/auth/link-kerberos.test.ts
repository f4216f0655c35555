// Kerberos over the slave link, against real MIT KDCs on loopback (Debian's
// krb5-kdc, through test/helpers/kdc.ts). This process is the master (one
// service keytab); every slave runs test/fixtures/link-slave.ts in a child
// process, since MIT selects a slave's keytab process-wide.
//
// Realms, as in kerberos-kdc.test.ts:
//   MAIN.TEST   the master's realm: abs/127.0.0.1 and the slaves.
//   ROGUE.TEST  another realm whose abs/127.0.0.1 key sits in the master's
//               keytab too: GSSAPI accepts its tickets, and only the realm
//               check refuses them.

import path from "node:path";
import t from "tap";
import type { ConnectOptions } from "../../src/auth/link-client.js";
import { connectToMaster } from "../../src/auth/link-client.js";
import type { MasterSideConnection } from "../../src/auth/link-connection.js";
import { kerberosTestOptions, startMainAndRogue } from "../helpers/kdc.js";
import {
  rejection,
  runSlaveChild as runSlave,
  startMaster,
  startRelay,
  type TestMaster,
} from "../fixtures/link-harness.js";

const SERVICE = "abs/127.0.0.1";

/** Answers every heartbeat of every authenticated slave. */
function echoHeartbeats(master: TestMaster): void {
  master.server.on("connection", (conn: MasterSideConnection) =>
    conn.onMessage((message) => {
      if (message.type === "heartbeat") conn.send({ type: "heartbeat", time: 2 });
    }),
  );
}

const options = await kerberosTestOptions(t);

t.test("Kerberos over the slave link, against real MIT KDCs", options, async (t) => {
  const { main, rogue, masterKeytab } = await startMainAndRogue(t, SERVICE);
  const slave1 = await main.addPrincipal("slave1");
  const slave2 = await main.addPrincipal("slave2");
  const rogueSlave = await rogue.addPrincipal("slave1");

  const master = await startMaster(t, {
    realmKey: undefined,
    kerberos: { keytab: masterKeytab, realm: "MAIN.TEST", servicePrincipal: SERVICE },
  });
  echoHeartbeats(master);
  const slaveOptions = (
    keytab: string,
    overrides: Partial<ConnectOptions> = {},
  ): ConnectOptions => ({
    host: "127.0.0.1",
    port: master.port,
    name: "slave1",
    auth: { mode: "kerberos", servicePrincipal: SERVICE, keytab },
    tls: { pin: master.tls.fingerprint },
    ...overrides,
  });
  const refusals = (): string[] =>
    master.logger.messages().filter((m) => m.startsWith("slave link: refused"));

  t.test("a slave and the master authenticate each other", async (t) => {
    const result = await runSlave(slaveOptions(slave1), main.env);
    t.same(result, {
      ok: {
        identity: "slave1@MAIN.TEST",
        name: "slave1",
        master: "master.test",
        mode: "kerberos",
        heartbeat: 2,
      },
    });
    t.match(master.logger.messages("info"), [
      /^slave link: slave1@MAIN\.TEST authenticated from 127\.0\.0\.1:\d+ \(kerberos, name slave1\)$/,
    ]);
  });

  t.test("a second slave identity, in another process", async (t) => {
    const result = await runSlave(slaveOptions(slave2, { name: "slave2" }), main.env);
    t.equal(result.ok?.identity, "slave2@MAIN.TEST");
  });

  t.test("a principal of another realm is refused", async (t) => {
    const before = refusals().length;
    const result = await runSlave(slaveOptions(rogueSlave, { name: "rogue" }), rogue.env);
    t.equal(result.error?.code, "AUTH_FAILED");
    t.match(
      result.error?.message,
      /^master refused authentication: Kerberos: refused slave principal slave1@ROGUE\.TEST from 127\.0\.0\.1:\d+: its realm ROGUE\.TEST is not the master's realm MAIN\.TEST$/,
    );
    const lines = refusals().slice(before);
    t.equal(lines.length, 1);
    t.match(
      lines[0],
      /^slave link: refused 127\.0\.0\.1:\d+ \(identity rogue\): Kerberos: refused slave principal slave1@ROGUE\.TEST/,
    );
  });

  t.test("a missing keytab gives a clear error on both sides", async (t) => {
    const before = refusals().length;
    const missing = path.join(main.dir, "nope.keytab");
    const result = await runSlave(slaveOptions(missing, { name: "lost" }), main.env);
    t.same(result.error, {
      code: "AUTH_FAILED",
      message: `slave keytab ${missing} does not exist`,
    });
    const lines = refusals().slice(before);
    t.equal(lines.length, 1);
    t.equal(
      lines[0].replace(/:\d+ /, ":PORT "),
      `slave link: refused 127.0.0.1:PORT (identity lost): the slave gave up: slave keytab ${missing} does not exist (AUTH_FAILED)`,
    );
  });

  t.test("a stopped KDC gives a clear error", async (t) => {
    await main.stopServer();
    t.teardown(() => main.restart());
    const result = await runSlave(slaveOptions(slave2, { name: "slave2" }), main.env);
    t.equal(result.error?.code, "KDC_UNREACHABLE");
    t.match(
      result.error?.message,
      /^Kerberos authentication of slave2@MAIN\.TEST \(keytab .*slave2\.keytab\) to abs\/127\.0\.0\.1 failed: no KDC of realm MAIN\.TEST answered/,
    );
    t.match(
      refusals().at(-1),
      /\(identity slave2\): the slave gave up: Kerberos authentication .* no KDC of realm MAIN\.TEST answered .*\(KDC_UNREACHABLE\)$/,
    );
  });

  t.test("a relay is refused by the slave's certificate check", async (t) => {
    const relay = await startRelay(t, master.port);
    // The pin fails before any Kerberos work, so this can run in this process.
    const err = await rejection(connectToMaster(slaveOptions(slave1, { port: relay.port })));
    t.equal(err.code, "TLS");
    t.match(
      err.message,
      `has fingerprint ${relay.fingerprint}, not the pinned master fingerprint ${master.tls.fingerprint}`,
    );

    const unpinned = await rejection(
      connectToMaster(slaveOptions(slave1, { port: relay.port, tls: {} })),
    );
    t.equal(unpinned.code, "CONFIG", "Kerberos without pin or CA is refused before connecting");
    t.match(unpinned.message, /needs master_fingerprint or master_ca/);
  });

  t.test("a realm-key slave at a Kerberos master", async (t) => {
    const err = await rejection(
      connectToMaster({
        ...slaveOptions(slave1),
        auth: { mode: "realm-key", realmKey: master.key },
      }),
    );
    t.equal(
      err.message,
      "master refused authentication: this master does not accept realm-key authentication (it is configured for kerberos)",
    );
  });

  t.test("a master whose keytab is missing blames itself", async (t) => {
    const broken = await startMaster(t, {
      realmKey: undefined,
      kerberos: {
        keytab: path.join(main.dir, "gone.keytab"),
        realm: "MAIN.TEST",
        servicePrincipal: SERVICE,
      },
    });
    const result = await runSlave(
      slaveOptions(slave1, { port: broken.port, tls: { pin: broken.tls.fingerprint } }),
      main.env,
    );
    t.same(result.error, {
      code: "AUTH_FAILED",
      message:
        "master refused authentication: the master cannot authenticate slaves now (see the master's log)",
    });
    t.match(broken.logger.messages("error"), [
      /^slave link: refused 127\.0\.0\.1:\d+ \(identity slave1\): master keytab .*gone\.keytab does not exist$/,
    ]);
    t.equal(broken.server.limiter.size, 0, "not counted against the slave's address");
  });
});
