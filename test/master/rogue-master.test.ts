// The attack that per-slave keys end: a host that holds one slave's key
// sets up its own abs-master with it and makes a slave connect there (a
// moved DNS name, a hijacked address: here, the slave's master: line
// repointed). With the one realm key on every slave, the demo's slave
// accepted such a master and ran /bin/sh at its request. Now the slave
// refuses the rogue master, and nothing of the rogue's runs.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { parseSlaveKey } from "../../src/auth/slave-key.js";
import { runDefinition, showJobs, waitForState } from "../helpers/admin-wait.js";
import { MasterProcess } from "../helpers/master-process.js";
import { SlaveProcess } from "../helpers/slave-process.js";
import { tempDir } from "../helpers/tmp.js";

t.test("a master made from a slave's key is refused by the slaves", async (t) => {
  const marker = path.join(tempDir(t), "pwned");
  const jobs =
    "[job shell]\nslave = green-acres\nmethod = command\n" +
    `command.program = /bin/sh\ncommand.args = -c "id > ${marker}"\n`;
  const real = await MasterProcess.start(t, { jobs });
  // The slaves allow /bin/sh, so that only the keys stand in the rogue's way.
  const programs = ["/bin/sh"];
  const victim = await SlaveProcess.start(t, { master: real, name: "green-acres", programs });
  const thief = await SlaveProcess.start(t, { master: real, name: "red-barn", programs });

  // The thief's host copies its own key into a realm key file, byte for byte,
  // and starts a master with it: every slave's key is derived from a realm
  // key the thief does not have, so the rogue can prove nothing.
  const rogue = await MasterProcess.prepare(t, { jobs });
  const stolen = parseSlaveKey(readFileSync(path.join(thief.dir, "slave.key"), "utf8"), "stolen");
  writeFileSync(rogue.keyFile, `abs-realm-key 1 ${stolen.bytes.toString("base64")}\n`, {
    mode: 0o600,
  });
  await rogue.launch();

  for (const s of [victim, thief]) {
    const from = s.log.length;
    s.writeConfig({ master: rogue, keyFile: path.join(s.dir, "slave.key"), programs });
    s.signal("SIGHUP");
    await s.waitForOutput(/wrong key: the MAC of slave "[a-z-]+" does not verify/, 30_000, from);
  }
  const [id] = await runDefinition(rogue, "shell", "green-acres");
  const slaves = (await rogue.call("show-slaves")) as { slaves: unknown[] };
  t.same(slaves.slaves, [], "no slave registered with the rogue master");
  t.match(await showJobs(rogue), [{ id, state: "queued" }], "its job waits for a slave");
  t.notOk(existsSync(marker), "the rogue's program never ran");

  // Back to the real master: both slaves register there again.
  for (const s of [victim, thief]) {
    const from = s.log.length;
    s.writeConfig({ master: real, keyFile: path.join(s.dir, "slave.key"), programs });
    s.signal("SIGHUP");
    await s.waitForOutput(/registered with master/, 30_000, from);
  }
  // The same job from the real master runs: only the keys stopped the rogue.
  const [ok] = await runDefinition(real, "shell", "green-acres");
  await waitForState(real, ok, "succeeded");
  t.ok(existsSync(marker), "the real master's job ran");
});
