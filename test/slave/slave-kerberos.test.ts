// A real abs-slave in Kerberos mode against a real abs-master and a real
// MIT KDC on loopback: it authenticates with its host keytab, checks the
// master's certificate pin, registers and runs a job; with the keytab of
// another host it is refused, says why, and keeps trying.

import path from "node:path";
import t from "tap";
import { readCertificateFingerprint } from "../../src/auth/tls.js";
import { runDefinition, waitForState } from "../helpers/admin-wait.js";
import { kerberosTestOptions, startKdc } from "../helpers/kdc.js";
import { MasterProcess } from "../helpers/master-process.js";
import { SlaveProcess } from "../helpers/slave-process.js";
import { freeLoopbackPort } from "../../src/free-port.js";

const SERVICE = "abs/127.0.0.1";

const options = await kerberosTestOptions(t);

t.test("an abs-slave authenticates with its keytab and runs a job", options, async (t) => {
  const kdc = await startKdc({ realm: "SLAVE.TEST" });
  t.teardown(() => kdc.stop());
  const keytab = await kdc.addPrincipal(SERVICE);
  const hostKeytab = await kdc.addPrincipal("host/green-acres.slave.test");
  const otherKeytab = await kdc.addPrincipal("host/red-barn.slave.test");
  const m = await MasterProcess.start(t, {
    kerberos: { realm: "SLAVE.TEST", keytab, servicePrincipal: SERVICE },
    jobs: "[job hello]\nslave = green-acres\nmethod = command\ncommand.program = /bin/true\n",
    env: kdc.env,
  });
  const pin = await readCertificateFingerprint(path.join(m.dir, "state", "tls-cert.pem"));
  const kerberos = { keytab: hostKeytab, masterPrincipal: SERVICE, masterFingerprint: pin };

  const s = await SlaveProcess.start(t, {
    master: m,
    programs: ["/bin/true"],
    kerberos,
    env: kdc.env,
  });
  t.match(s.log, /registered with master \S+ at 127\.0\.0\.1:\d+: 0 running, 0 results reported/);
  const [id] = await runDefinition(m, "hello");
  const done = await waitForState(m, id, "succeeded");
  t.match(done.log.map((e) => e.message).join("\n"), /succeeded on green-acres/);
  await s.stop();

  // Another host's keytab cannot register as green-acres.
  const impostor = SlaveProcess.prepare(t, {
    master: m,
    kerberos: { ...kerberos, keytab: otherKeytab },
    env: kdc.env,
  });
  await impostor.launch();
  await impostor.waitForOutput(
    /cannot reach the master at 127\.0\.0\.1:\d+: master refused authentication: principal host\/red-barn\.slave\.test@SLAVE\.TEST may register as "red-barn\.slave\.test" or "red-barn", not "green-acres"/,
  );
  t.equal((await impostor.stop()).code, 0, "refused, it keeps trying until stopped");
  await m.stop();
});

t.test(
  "a rotated master key: the running slave drops its old ticket and gets a new one at once",
  options,
  async (t) => {
    const kdc = await startKdc({ realm: "ROTATE.TEST" });
    t.teardown(() => kdc.stop());
    const keytab = await kdc.addPrincipal(SERVICE);
    const hostKeytab = await kdc.addPrincipal("host/green-acres.rotate.test");
    // A fixed port: the slave finds the master where it was after the restart.
    const listen = `127.0.0.1:${await freeLoopbackPort()}`;
    const m = await MasterProcess.start(t, {
      kerberos: { realm: "ROTATE.TEST", keytab, servicePrincipal: SERVICE },
      listen,
      jobs: "[job hello]\nslave = green-acres\nmethod = command\ncommand.program = /bin/true\n",
      env: kdc.env,
    });
    const pin = await readCertificateFingerprint(path.join(m.dir, "state", "tls-cert.pem"));
    const s = await SlaveProcess.start(t, {
      master: m,
      programs: ["/bin/true"],
      kerberos: { keytab: hostKeytab, masterPrincipal: SERVICE, masterFingerprint: pin },
      env: kdc.env,
    });
    // The slave holds a ticket of the old key; the master's keytab now holds
    // only the new one (a rotation: kadmin ktadd, keytab deployed).
    const kvno = await kdc.rotateKey(SERVICE, keytab);
    await m.stop();
    const from = s.log.length;
    await m.launch();
    const refused = await s.waitForOutput(
      /the master at \S+ refused our Kerberos ticket: (.*); dropped (\d+) cached ticket\(s\) for abs\/127\.0\.0\.1 from (\S+), asking the KDC for a new one/,
      30_000,
      from,
    );
    t.equal(
      refused[1],
      `master refused authentication: the master has no key for this ticket's version (kvno ${kvno - 1}): get a new ticket`,
      "the slave is told what to do, without the master's detail",
    );
    t.notMatch(refused[1], keytab, "not the master's keytab path");
    t.ok(Number(refused[2]) >= 1, "the old ticket was in the cache and is gone");
    await s.waitForOutput(/registered with master \S+ at /, 30_000, from);
    const [id] = await runDefinition(m, "hello");
    await waitForState(m, id, "succeeded");
    t.match(m.log, `kvno ${kvno - 1} not found in keytab; ticket is likely out of date`);
    await s.stop();
    await m.stop();
  },
);

t.test(
  "master: an IP address and no master_principal: the failure says what to write",
  options,
  async (t) => {
    const kdc = await startKdc({ realm: "BYIP.TEST" });
    t.teardown(() => kdc.stop());
    // The master's service principal names its host; the slave's default,
    // abs/ and master: as written, would be abs/127.0.0.1.
    const keytab = await kdc.addPrincipal("abs/backup.byip.test");
    const hostKeytab = await kdc.addPrincipal("host/green-acres.byip.test");
    const m = await MasterProcess.start(t, {
      kerberos: { realm: "BYIP.TEST", keytab, servicePrincipal: "abs/backup.byip.test" },
      env: kdc.env,
    });
    const pin = await readCertificateFingerprint(path.join(m.dir, "state", "tls-cert.pem"));
    const s = SlaveProcess.prepare(t, {
      master: m,
      kerberos: { keytab: hostKeytab, masterFingerprint: pin },
      env: kdc.env,
    });
    await s.launch();
    const conf = s.confPath.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    await s.waitForOutput(
      new RegExp(
        `warn cannot reach the master at 127\\.0\\.0\\.1:\\d+: Kerberos authentication of host/green-acres\\.byip\\.test@BYIP\\.TEST \\(keytab \\S+\\) to abs/127\\.0\\.0\\.1 failed: the KDC has no service principal abs/127\\.0\\.0\\.1@BYIP\\.TEST: .*; ${conf} sets no master_principal, so the slave asks for abs/ followed by the host of master: \\(127\\.0\\.0\\.1, an IP address\\); write master: as the host name of the master's service principal, or set master_principal \\[GSSAPI: `,
      ),
    );
    t.equal((await s.stop()).code, 0, "refused, it keeps trying until stopped");
  },
);
