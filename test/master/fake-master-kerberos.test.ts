// Disaster mode in Kerberos mode, with real processes and real MIT KDCs on
// loopback: the real master (which allows only green-acres's principal) is
// stopped while a job runs, and the fake master starts on its address. It
// takes any principal of its realm (green-acres, and blue-sky, whom the real
// master refuses) and none of another realm (ROGUE.TEST, whose tickets its
// keytab could even decrypt: only the realm check refuses them). The job's
// result goes to the disaster log; the real master, back, fails the job as
// lost until the log is imported.
//
// Realms, as in test/auth/link-kerberos.test.ts:
//   MAIN.TEST   the master's realm: abs/127.0.0.1 and the slaves' hosts.
//   ROGUE.TEST  another realm whose abs/127.0.0.1 key sits in the master's
//               keytab too.

import { execFileSync } from "node:child_process";
import { copyFileSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import t from "tap";
import { readCertificateFingerprint } from "../../src/auth/tls.js";
import { freeLoopbackPort } from "../../src/free-port.js";
import { DISASTER_LOG_FILE } from "../../src/master/fake-master.js";
import { runDefinition, waitForState } from "../helpers/admin-wait.js";
import { kerberosTestOptions, startMainAndRogue } from "../helpers/kdc.js";
import { generateRealmKey } from "../../src/auth/realm-key.js";
import { MASTER_BIN, MasterProcess, runNode } from "../helpers/master-process.js";
import { SlaveProcess } from "../helpers/slave-process.js";
import { tempDir } from "../helpers/tmp.js";

const SERVICE = "abs/127.0.0.1";
const options = await kerberosTestOptions(t);

t.test(
  "the fake master in Kerberos mode: any principal of its realm, none of another",
  options,
  async (t) => {
    const { main, rogue, masterKeytab } = await startMainAndRogue(t, SERVICE);
    const greenKeytab = await main.addPrincipal("host/green-acres.main.test");
    const blueKeytab = await main.addPrincipal("host/blue-sky.main.test");
    const rogueKeytab = await rogue.addPrincipal("host/red-barn.rogue.test");

    const data = tempDir(t, "abs-data-");
    const fifo = path.join(data, "go.fifo");
    execFileSync("mkfifo", [fifo]);
    const setup = {
      listen: `127.0.0.1:${await freeLoopbackPort()}`,
      kerberos: { realm: "MAIN.TEST", keytab: masterKeytab, servicePrincipal: SERVICE },
      master: "allowed_principals = host/green-acres.main.test@MAIN.TEST",
      jobs: [
        "[job long]",
        "slave = green-acres",
        "method = command",
        "command.program = /usr/bin/head",
        `command.args = -c 1 ${fifo}`,
        "",
      ].join("\n"),
      env: main.env,
    };
    const m = await MasterProcess.start(t, setup);
    const pin = await readCertificateFingerprint(path.join(m.dir, "state", "tls-cert.pem"));
    const kerberos = (
      keytab: string,
    ): { keytab: string; masterPrincipal: string; masterFingerprint: string } => ({
      keytab,
      masterPrincipal: SERVICE,
      masterFingerprint: pin,
    });
    const green = await SlaveProcess.start(t, {
      master: m,
      programs: ["/usr/bin/head"],
      kerberos: kerberos(greenKeytab),
      env: main.env,
    });
    const [id] = await runDefinition(m, "long");
    await waitForState(m, id, "running");

    // The real master refuses blue-sky: not in allowed_principals.
    const blue = SlaveProcess.prepare(t, {
      master: m,
      name: "blue-sky",
      kerberos: kerberos(blueKeytab),
      env: main.env,
    });
    await blue.launch();
    await blue.waitForOutput(
      /master refused authentication: .*host\/blue-sky\.main\.test@MAIN\.TEST/,
    );

    // Disaster: the fake master takes the real one's address. With Kerberos
    // there is no realm key to MAC the disaster log with: without
    // disaster_log_key_file the fake master does not start (nor pass -t).
    await m.stop();
    for (const args of [["-t"], ["-f"]]) {
      const refused = await runNode(
        [MASTER_BIN, ...args, "--disaster", "-c", m.confPath],
        main.env,
      );
      t.equal(refused.status, 1, `${args[0]} --disaster`);
      t.match(
        refused.stderr,
        `${m.confPath}: auth = kerberos has no realm key to authenticate the disaster log with: set disaster_log_key_file`,
      );
    }
    const logKey = path.join(data, "disaster-log.key");
    await generateRealmKey(logKey);
    m.writeConfig({ ...setup, master: `${setup.master}\ndisaster_log_key_file = ${logKey}` });
    const from = green.log.length;
    const blueFrom = blue.log.length;
    await m.launch(["--disaster"]);
    t.match(
      m.log,
      /serving as the fake master \(disaster mode; auth kerberos, service principal abs\/127\.0\.0\.1@MAIN\.TEST\)/,
    );
    await green.waitForOutput(
      /registered with master \S+ at .*: 1 running, 0 results reported/,
      60_000,
      from,
    );
    await blue.waitForOutput(
      /registered with master \S+ at .*: 0 running, 0 results reported/,
      60_000,
      blueFrom,
    );

    // ROGUE.TEST's principal is refused, though the keytab holds that realm's key.
    const rogueSlave = SlaveProcess.prepare(t, {
      master: m,
      name: "red-barn",
      kerberos: kerberos(rogueKeytab),
      env: rogue.env,
    });
    await rogueSlave.launch();
    await rogueSlave.waitForOutput(/master refused authentication: .*ROGUE\.TEST/);
    t.equal((await rogueSlave.stop()).code, 0);

    await writeFile(fifo, "x");
    await green.waitForOutput(
      new RegExp(`job ${id}: the master has the result of attempt 1`),
      30_000,
      from,
    );
    const disasterLog = path.join(m.dir, "state", DISASTER_LOG_FILE);
    const lines = readFileSync(disasterLog, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    t.match(
      lines.find((l) => l["report"] === "result"),
      {
        slave: "green-acres",
        identity: "host/green-acres.main.test@MAIN.TEST",
        jobId: id,
        outcome: "succeeded",
      },
    );
    const status = JSON.parse((await m.abs(["status", "--json"])).stdout) as Record<
      string,
      unknown
    >;
    t.match(status, {
      mode: "disaster",
      slavesConnected: 2,
      auth: "kerberos",
      servicePrincipal: "abs/127.0.0.1@MAIN.TEST",
    });

    // The real master is back: the job is lost, until the log is imported.
    const copy = path.join(data, "disaster-log.jsonl");
    copyFileSync(disasterLog, copy);
    await m.stop();
    await m.launch();
    const lost = await waitForState(m, id, "failed");
    t.match(lost.result, /^lost: green-acres no longer runs it/);
    const imported = await m.abs(["import-disaster-log", copy, "--json"]);
    t.equal(imported.status, 0, imported.stderr);
    t.match(JSON.parse(imported.stdout), {
      attempts: [{ reportedJobId: id, jobId: id, verdict: "corrected", state: "succeeded" }],
    });
    const done = await waitForState(m, id, "succeeded");
    t.match(done.result, /exited with status 0/);
    await green.stop();
    await blue.stop();
    await m.stop();
  },
);
