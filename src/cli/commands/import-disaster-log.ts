// abs import-disaster-log FILE: the fake master's log, merged into the real
// master's jobs directory (src/master/disaster-import.ts decides what each
// report does). The master reads the file, so `abs` sends an absolute path.

import path from "node:path";
import {
  type ImportDisasterLogResult,
  type ImportVerdictName,
  countVerdicts,
} from "../../protocol/admin-api.js";
import { AbsError } from "../../errors.js";
import type { CliContext } from "../context.js";
import { EXIT, ExitError } from "../exit-status.js";
import { plural } from "../format.js";
import { renderTable } from "../table.js";

/** How long abs waits for an import: some 10 ms per attempt on a slow disk, 100,000 attempts. */
export const IMPORT_TIMEOUT_MS = 20 * 60 * 1000;

/** What each verdict means, for the line under the table. */
const VERDICT_TEXT: Record<ImportVerdictName, string> = {
  merged: "outcome applied",
  corrected: "outcome in place of lost",
  noted: "log line added, state kept",
  unchanged: "nothing to change",
  recorded: "new (disaster) job",
  archived: "archived, left alone",
};

export function formatImport(r: ImportDisasterLogResult): string {
  const head = `imported ${r.file}: ${plural(r.lines, "line")}, ${plural(r.attempts.length, "reported attempt")}\n`;
  const unfinished =
    r.unfinishedLine === null
      ? ""
      : `line ${r.unfinishedLine} is unfinished (the fake master stopped while writing it) and was skipped: it was never acknowledged, so its slave still holds that report\n`;
  if (r.attempts.length === 0) return head + unfinished;
  const table = renderTable(
    [
      { title: "JOB", align: "right" },
      { title: "STATE" },
      { title: "VERDICT" },
      { title: "SLAVE" },
      { title: "REPORTED AS" },
      { title: "LINE", align: "right" },
    ],
    r.attempts.map((a) => [
      String(a.jobId),
      a.state,
      a.verdict,
      a.slave,
      `job ${a.reportedJobId} attempt ${a.attempt}`,
      String(a.line),
    ]),
  );
  const summary = countVerdicts(r.attempts)
    .map(([verdict, n]) => `${n} ${verdict} (${VERDICT_TEXT[verdict]})`)
    .join(", ");
  return head + table + summary + "\n" + unfinished;
}

/** The refused lines, `FILE:LINE: why` each, and how many more were not shown. */
export function formatRefused(r: ImportDisasterLogResult): string {
  const lines = r.refused.map((x) => `${r.file}:${x.line}: ${x.reason}`);
  const more = r.refusedCount - r.refused.length;
  if (more > 0) lines.push(`(${more} more; the master's log has the count only)`);
  return lines.join("\n");
}

export async function importDisasterLog(
  ctx: CliContext,
  file: string,
  o: { json?: boolean; cwd: string },
): Promise<void> {
  // Each reported attempt costs a durable write on the master: a long log
  // takes a while, and the import goes on if abs stops waiting.
  const result = await ctx.call(
    "import-disaster-log",
    { file: path.resolve(o.cwd, file) },
    { timeoutMs: IMPORT_TIMEOUT_MS },
  );
  ctx.out.write(o.json === true ? JSON.stringify(result) + "\n" : formatImport(result));
  if (result.refusedCount > 0) {
    // What could be trusted is imported (above); the rest is an error, so
    // that a script notices, with every refused line named.
    throw new ExitError(
      EXIT.FAILURE,
      new AbsError(
        "BAD_ARGUMENT",
        `${result.file}: ${result.refusedCount} line(s) refused, the rest imported:\n${formatRefused(result)}`,
      ),
    );
  }
}
