// abs-master's warning about a jobs directory on ext4 without a journal,
// with the whole master in this process reading a sysfs of the test's own:
// said once at startup without a journal, not at all with one.

import t from "tap";
import { generateRealmKey } from "../../src/auth/realm-key.js";
import path from "node:path";
import { noJournalWarning } from "../../src/storage/file-system-journal.js";
import { fakeSysfs } from "../helpers/fake-sysfs.js";
import { inProcessConfig, startInProcess } from "../helpers/master-in-process.js";
import { tempDir } from "../helpers/tmp.js";

for (const [journalTask, expected] of [
  ["<none>\n", "warns"],
  ["2412\n", "says nothing"],
] as const) {
  t.test(`with journal_task ${JSON.stringify(journalTask)} the master ${expected}`, async (t) => {
    const dir = tempDir(t);
    await generateRealmKey(path.join(dir, "realm.key"));
    const config = inProcessConfig(dir, [], "");
    const sysfs = fakeSysfs(t, dir, "vdc", journalTask);
    const { master, logger } = await startInProcess(t, dir, config, { sysfs });
    t.equal(master.state, "running");
    const warnings = logger.messages("warn").filter((m) => m.includes("journal"));
    const tempFiles = logger.messages().filter((m) => m.includes("temp files"));
    if (expected === "warns") {
      t.strictSame(warnings, [
        noJournalWarning(config.jobsDir, { kind: "none", device: "vdc" }, sysfs),
      ]);
      t.match(tempFiles, [/^jobs directory: temp files are created unnamed \(O_TMPFILE\)/]);
    } else {
      t.strictSame(warnings, [], "no warning with a journal");
      t.strictSame(tempFiles, [], "nor a word on temp files");
    }
  });
}
