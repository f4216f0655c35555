// A real abs-master in Kerberos mode against a real MIT KDC on loopback:
// a slave's principal must vouch for the name it registers under, or one
// host's keytab could report another host's jobs. Slaves run in child
// processes (link-harness.ts runSlaveChild), since MIT selects a keytab
// process-wide.

import path from "node:path";
import t, { type Test } from "tap";
import type { ConnectOptions } from "../../src/auth/link-client.js";
import { readCertificateFingerprint } from "../../src/auth/tls.js";
import { runSlaveChild as runSlave } from "../fixtures/link-harness.js";
import { kerberosTestOptions, startKdc } from "../helpers/kdc.js";
import { MasterProcess } from "../helpers/master-process.js";

const SERVICE = "abs/127.0.0.1";

const options = await kerberosTestOptions(t);

/**
 * A real KDC of `realm` with the master's service principal and `host`'s,
 * and a real master on it (heartbeats every 100 ms: what a slave child
 * waits for), with the pin of its certificate.
 */
async function kerberosMaster(t: Test, realm: string, host: string) {
  const kdc = await startKdc({ realm });
  t.teardown(() => kdc.stop());
  const keytab = await kdc.addPrincipal(SERVICE);
  const hostKeytab = await kdc.addPrincipal(host);
  const m = await MasterProcess.start(t, {
    kerberos: { realm, keytab, servicePrincipal: SERVICE },
    master: "heartbeat_interval = 100ms",
    env: kdc.env,
  });
  const pin = await readCertificateFingerprint(path.join(m.dir, "state", "tls-cert.pem"));
  return { kdc, keytab, hostKeytab, m, pin };
}

t.test(
  "Kerberos slaves at a real master: the principal vouches for the name",
  options,
  async (t) => {
    const { kdc, hostKeytab, m, pin } = await kerberosMaster(
      t,
      "MAIN.TEST",
      "host/green-acres.main.test",
    );
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
    t.match(status, { auth: "kerberos", servicePrincipal: "abs/127.0.0.1@MAIN.TEST" });
    const shown = await m.abs(["status"]);
    t.match(shown.stdout, /\nauth: {5}kerberos, service principal abs\/127\.0\.0\.1@MAIN\.TEST\n/);
    t.match(
      m.log,
      /abs-master pid \d+ serving \(auth kerberos, service principal abs\/127\.0\.0\.1@MAIN\.TEST; /,
    );
    await m.stop();
  },
);

t.test(
  "Kerberos: only host/<fqdn> (or the map) names a slave; each loose form is refused",
  options,
  async (t) => {
    const kdc = await startKdc({ realm: "MAIN.TEST" });
    t.teardown(() => kdc.stop());
    const keytab = await kdc.addPrincipal(SERVICE);
    // Each of these registered as db1 before: a web server's keytab on db1,
    // a user's instance, a user named like the host.
    const loose = ["HTTP/db1.main.test", "alice/db1", "db1"];
    const keytabs = new Map<string, string>();
    for (const p of [...loose, "host/db1.main.test", "backup/db2.main.test"]) {
      keytabs.set(p, await kdc.addPrincipal(p));
    }
    const start = (master: string): Promise<MasterProcess> =>
      MasterProcess.start(t, {
        kerberos: { realm: "MAIN.TEST", keytab, servicePrincipal: SERVICE },
        master: `heartbeat_interval = 100ms\n${master}`,
        env: kdc.env,
      });
    const connect = async (m: MasterProcess, principal: string, name: string) => {
      const pin = await readCertificateFingerprint(path.join(m.dir, "state", "tls-cert.pem"));
      return runSlave(
        {
          host: "127.0.0.1",
          port: m.port,
          name,
          auth: {
            mode: "kerberos",
            servicePrincipal: SERVICE,
            keytab: keytabs.get(principal) ?? "",
          },
          tls: { pin },
        },
        kdc.env,
      );
    };

    // The defaults: allowed_principals = host/*, so the acceptor refuses them.
    const m = await start("slave_principal.db2 = backup/db2.main.test");
    for (const p of loose) {
      const r = await connect(m, p, "db1");
      t.equal(r.error?.code, "AUTH_FAILED", p);
      t.match(
        r.error?.message,
        `refused slave principal ${p}@MAIN.TEST from 127.0.0.1:`,
        `${p}: refused by the acceptor`,
      );
      t.match(
        r.error?.message,
        /it matches none of the allowed principals \(host\/\*, backup\/db2\.main\.test@MAIN\.TEST, abs\/\*\)/,
      );
    }
    const host = await connect(m, "host/db1.main.test", "db1");
    t.equal(host.ok?.identity, "host/db1.main.test@MAIN.TEST", "the host's principal: accepted");
    const mapped = await connect(m, "backup/db2.main.test", "db2");
    t.equal(
      mapped.ok?.identity,
      "backup/db2.main.test@MAIN.TEST",
      "the mapped principal: accepted",
    );
    const mappedElsewhere = await connect(m, "backup/db2.main.test", "db1");
    t.match(
      mappedElsewhere.error?.message,
      /backup\/db2\.main\.test@MAIN\.TEST may register under no slave name/,
    );
    await m.stop();

    // Every principal let through: the name check still refuses them.
    const open = await start("allowed_principals = *");
    for (const p of loose) {
      const r = await connect(open, p, "db1");
      t.same(
        r.error,
        {
          code: "AUTH_FAILED",
          message: `master refused authentication: principal ${p}@MAIN.TEST may register under no slave name: only a host's principal host/<host>@MAIN.TEST names a slave (its host, or the host's first label), or a slave_principal.NAME entry in master.conf`,
        },
        `${p}: no slave name`,
      );
    }
    await open.stop();
  },
);

t.test("a KDC outage does not lock slaves out once the KDC is back", options, async (t) => {
  const { kdc, hostKeytab, m, pin } = await kerberosMaster(
    t,
    "OUTAGE.TEST",
    "host/green-acres.outage.test",
  );
  const slave: ConnectOptions = {
    host: "127.0.0.1",
    port: m.port,
    name: "green-acres",
    auth: { mode: "kerberos", servicePrincipal: SERVICE, keytab: hostKeytab },
    tls: { pin },
  };

  // With the KDC stopped, fresh slaves (no ticket yet) give up, twelve
  // times from 127.0.0.1: more than the rate limit's ten a minute.
  await kdc.stopServer();
  for (let round = 0; round < 3; round++) {
    const outcomes = await Promise.all([1, 2, 3, 4].map(() => runSlave(slave, kdc.env)));
    for (const o of outcomes) t.equal(o.error?.code, "KDC_UNREACHABLE", "the slave gave up");
  }
  // The master logged each one (the last may come after the child's exit).
  let from = 0;
  for (let i = 0; i < 12; i++) {
    const line = await m.waitForOutput(
      /\(identity green-acres\): the slave gave up: .*no KDC of realm OUTAGE\.TEST answered/,
      10_000,
      from,
    );
    from += (line.index ?? 0) + line[0].length;
  }
  t.notMatch(m.log, /failed to authenticate/, "none counted against the address");

  // Once the KDC is back, a slave with a correct keytab is accepted at once.
  await kdc.restart();
  const back = await runSlave(slave, kdc.env);
  t.same(back.error, undefined);
  t.equal(back.ok?.identity, "host/green-acres.outage.test@OUTAGE.TEST");
  await m.stop();
});

t.test(
  "a fault of the master's own keytab reaches the slave only as such; the log keeps the detail",
  options,
  async (t) => {
    const { kdc, keytab, hostKeytab, m, pin } = await kerberosMaster(
      t,
      "MAIN.TEST",
      "host/green-acres.main.test",
    );
    const connect = () =>
      runSlave(
        {
          host: "127.0.0.1",
          port: m.port,
          name: "green-acres",
          auth: { mode: "kerberos", servicePrincipal: SERVICE, keytab: hostKeytab },
          tls: { pin },
        },
        kdc.env,
      );

    // The KDC's key moves on, but the new keytab never reaches the master:
    // each new slave's ticket is of a version the master's keytab lacks.
    const kvno = await kdc.rotateKey(SERVICE, path.join(kdc.dir, "never-deployed.keytab"));
    const r = await connect();
    t.same(r.error, {
      code: "AUTH_FAILED",
      message:
        "master refused authentication: the master cannot authenticate slaves now (see the master's log)",
    });
    t.notMatch(r.error?.message, keytab, "not the master's keytab path");
    const logged = await m.waitForOutput(
      /slave link: refused 127\.0\.0\.1:\d+ \(identity [^)]*\): (.*)/,
    );
    t.match(logged[1], keytab, "the master's log names its keytab");
    t.match(logged[1], `kvno ${kvno}`, "and the ticket's key version");

    // A token that does not verify is the slave's fault, and it is told so.
    await m.stop();
  },
);
