// A daemon's startup warning about a directory on ext4 without a journal
// (src/storage/file-system-journal.ts), checked in its real output: the line
// is there when this machine's file system has no journal, absent otherwise.
// Which of the two a run checks depends on the disk the temp dirs are on;
// test/storage/file-system-journal.test.ts covers both on a sysfs of its own.

import type { Test } from "tap";
import { journalOf, noJournalWarning } from "../../src/storage/file-system-journal.js";

export function checkJournalWarning(t: Test, output: string, what: string, dir: string): void {
  const state = journalOf(dir);
  const warning = noJournalWarning(what, dir, state);
  if (warning === null) {
    t.notMatch(output, /without a journal/, `no journal warning (${state.kind})`);
  } else {
    t.ok(output.includes(warning), `warned: ${warning}`);
  }
}
