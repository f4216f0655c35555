// npm run bench -- failover
//
// The slave's half of a master move: a real abs-slave registered with one
// real abs-master has `master:` in its slave.conf edited to point at a
// second master, and gets SIGHUP. Measured: from the signal to the slave's
// registration with the new master (the bench sees the slave print it),
// ROUNDS times back and forth between the two masters; median and worst.
//
// The other half of the scenario (1,000 slaves re-registering with a
// fake master started in the old one's place) needs disaster mode, which
// does not exist yet; this scenario will grow it.

import { copyFileSync } from "node:fs";
import { MasterProcess } from "../test/helpers/master-process.js";
import { SlaveProcess } from "../test/helpers/slave-process.js";
import { median, report, round } from "./report.js";
import { Teardowns } from "./teardowns.js";

const ROUNDS = 10;

export async function runFailoverBench(): Promise<void> {
  const td = new Teardowns();
  try {
    const a = await MasterProcess.start(td);
    const b = await MasterProcess.prepare(td);
    copyFileSync(a.keyFile, b.keyFile); // one realm
    await b.launch();
    const s = await SlaveProcess.start(td, { master: a });
    const samples: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const to = r % 2 === 0 ? b : a;
      s.writeConfig({ master: to });
      const from = s.log.length;
      const start = process.hrtime.bigint();
      s.signal("SIGHUP");
      await s.waitForOutput(
        new RegExp(`registered with master \\S+ at 127\\.0\\.0\\.1:${to.port}:`),
        30_000,
        from,
      );
      samples.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    report({
      bench: "failover.repoint",
      value: round(median(samples), 1),
      unit: "ms",
      target: "<= 1000 ms from SIGHUP to registration with the new master",
      worst: round(Math.max(...samples), 1),
      rounds: ROUNDS,
      samples: samples.map((v) => round(v, 1)),
    });
    await s.stop();
    await a.stop();
    await b.stop();
  } finally {
    await td.run();
  }
}
