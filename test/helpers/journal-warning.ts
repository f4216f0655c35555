// abs-master's startup warning about a jobs directory on ext4 without a
// journal (src/storage/file-system-journal.ts), checked in a real daemon's
// output against what this machine's /sys says: the line is there when the
// temp dirs' file system has no journal, absent otherwise.
// test/master/master-journal.test.ts covers both on a sysfs of its own.

import type { Test } from "tap";
import { journalOf, noJournalWarning } from "../../src/storage/file-system-journal.js";

export function checkJournalWarning(t: Test, output: string, jobsDir: string): void {
  const state = journalOf(jobsDir);
  const warning = noJournalWarning(jobsDir, state);
  if (warning === null) {
    t.notMatch(output, /without a journal/, `no journal warning (${state.kind})`);
    t.notMatch(output, /temp files are created/, "nor a word on temp files");
  } else {
    t.ok(output.includes(warning), `warned: ${warning}`);
    t.match(
      output,
      /jobs directory: temp files are created unnamed \(O_TMPFILE\), outside the directory's lock \(.+\/link_fd\.node\)/,
      "and the temp files are created unnamed there",
    );
  }
}
