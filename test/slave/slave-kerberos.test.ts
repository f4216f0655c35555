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
