// The progress line of `abs watch` on a terminal: the bar against an
// estimate, the counts without one, and hostile input (zero or absurd
// totals, progress past the estimate, tiny widths, huge numbers, paths
// with escape sequences and wide characters).

import t from "tap";
import { columnsOf, formatProgressLine, fractionDone } from "../../src/cli/progress-bar.js";
import type { JobProgress } from "../../src/jobsdir/job.js";
import type { ExpectedTotals } from "../../src/protocol/admin-api.js";

const GiB = 1024 ** 3;
/** 1.2 GiB of 3 GiB is 40% (0.4000000001). */
const PROGRESS: JobProgress = { files: 3456, bytes: 1_288_490_189, path: "/home/x/file" };
const EXPECTED: ExpectedTotals = { files: 9000, bytes: 3 * GiB };
/** 100 s: 1.2 GiB at 12.3 MiB/s. */
const ELAPSED = 100_000;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

t.test("the line, exactly", (t) => {
  const cases: [string, JobProgress, ExpectedTotals | null, number | null, number, string][] = [
    [
      "a bar against the estimate",
      PROGRESS,
      EXPECTED,
      ELAPSED,
      120,
      "[########------------]   40%  1.2 GiB of 3.0 GiB  3,456 files  12.3 MiB/s  /home/x/file",
    ],
    [
      "no estimate: counts, rate and path",
      PROGRESS,
      null,
      ELAPSED,
      120,
      "1.2 GiB  3,456 files  12.3 MiB/s  /home/x/file",
    ],
    [
      "an estimate of nothing (zero totals) is no estimate",
      PROGRESS,
      { files: 0, bytes: 0 },
      ELAPSED,
      120,
      "1.2 GiB  3,456 files  12.3 MiB/s  /home/x/file",
    ],
    [
      "past the estimate: the counts, no bar and no percentage over 100",
      { files: 3456, bytes: 4 * GiB, path: null },
      EXPECTED,
      ELAPSED,
      120,
      "4.0 GiB  3,456 files  41.0 MiB/s",
    ],
    [
      "at the estimate while running: 99%, the bar one cell short",
      { files: 9000, bytes: 3 * GiB, path: null },
      EXPECTED,
      ELAPSED,
      120,
      "[###################-]   99%  3.0 GiB of 3.0 GiB  9,000 files  30.7 MiB/s",
    ],
    [
      "nothing done yet",
      { files: 0, bytes: 0, path: null },
      EXPECTED,
      0,
      120,
      "[--------------------]    0%  0 B of 3.0 GiB  0 files",
    ],
    [
      "an estimate in files only: the percentage by files",
      { files: 25, bytes: 0, path: null },
      { files: 100, bytes: 0 },
      ELAPSED,
      120,
      "[#####---------------]   25%  0 B  25 of 100 files  0 B/s",
    ],
    [
      "files past a files-only estimate",
      { files: 101, bytes: 0, path: null },
      { files: 100, bytes: 0 },
      ELAPSED,
      120,
      "0 B  101 files  0 B/s",
    ],
    [
      "huge numbers",
      { files: Number.MAX_SAFE_INTEGER, bytes: 2 ** 60, path: null },
      { files: Number.MAX_SAFE_INTEGER, bytes: 2 ** 62 },
      ELAPSED,
      120,
      "[#####---------------]   25%  1.0 EiB of 4.0 EiB  9,007,199,254,740,991 files  10.2 PiB/s",
    ],
    [
      "no start time: no rate",
      PROGRESS,
      EXPECTED,
      null,
      120,
      "[########------------]   40%  1.2 GiB of 3.0 GiB  3,456 files  /home/x/file",
    ],
    [
      "under a second since the start: no rate",
      PROGRESS,
      null,
      999,
      120,
      "1.2 GiB  3,456 files  /home/x/file",
    ],
    [
      "a clock behind the start: no rate",
      PROGRESS,
      null,
      -5000,
      120,
      "1.2 GiB  3,456 files  /home/x/file",
    ],
    [
      "a long path keeps its end",
      { ...PROGRESS, path: "/home/alice/projects/abs/src/cli/commands/watch.ts" },
      EXPECTED,
      ELAPSED,
      100,
      "[########------------]   40%  1.2 GiB of 3.0 GiB  3,456 files  12.3 MiB/s  ...cli/commands/watch.ts",
    ],
    [
      "too little room for the path: none",
      PROGRESS,
      EXPECTED,
      ELAPSED,
      80,
      "[########------------]   40%  1.2 GiB of 3.0 GiB  3,456 files  12.3 MiB/s",
    ],
    ["narrow: cut at the end", PROGRESS, EXPECTED, ELAPSED, 30, "[########------------]   40%"],
    ["width 1: nothing", PROGRESS, EXPECTED, ELAPSED, 1, ""],
    ["width 0: nothing", PROGRESS, EXPECTED, ELAPSED, 0, ""],
    ["a negative width: nothing", PROGRESS, EXPECTED, ELAPSED, -3, ""],
    ["a width that is not a number: nothing", PROGRESS, EXPECTED, ELAPSED, NaN, ""],
    [
      "escape sequences in the path are shown, not sent",
      { ...PROGRESS, path: "/tmp/\x1b[2J\x1b]0;owned\x07\nx\x9b" },
      null,
      ELAPSED,
      120,
      "1.2 GiB  3,456 files  12.3 MiB/s  /tmp/\\x1b[2J\\x1b]0;owned\\x07\\nx\\x9b",
    ],
  ];
  for (const [name, progress, expected, elapsed, width, line] of cases) {
    t.equal(formatProgressLine(progress, expected, elapsed, width), line, name);
  }
  t.end();
});

t.test("values no master sends do not throw, and never make a bar", (t) => {
  const odd = [NaN, Infinity, -Infinity, -1];
  for (const v of odd) {
    const line = formatProgressLine({ files: v, bytes: v, path: null }, EXPECTED, ELAPSED, 120);
    t.notMatch(line, /\[|%/, `progress ${v}`);
    t.notMatch(line, CONTROL);
    const against = formatProgressLine(PROGRESS, { files: v, bytes: v }, v, 120);
    t.notMatch(against, /\[|%/, `estimate ${v}`);
  }
  t.equal(fractionDone({ files: 0, bytes: 0, path: null }, { files: 0, bytes: 0 }), null);
  t.same(fractionDone({ files: 5, bytes: 0, path: null }, { files: 10, bytes: 0 }), {
    fraction: 0.5,
    by: "files",
  });
  t.end();
});

t.test("at every width, the line fits in width - 1 columns and holds no control", (t) => {
  const paths = [
    "/home/x/file",
    "/home/" + "a".repeat(300),
    "/srv/日本語のファイル名/とても長いディレクトリ/ファイル.txt",
    "/emoji/" + "😀".repeat(40),
    "/bidi/\u202eevil\u202c/\u200b/e\u0301",
    "/ctl/\x00\x01\x1b[31m\x7f\x85",
  ];
  for (const path of paths) {
    for (const expected of [EXPECTED, null]) {
      for (let width = 0; width <= 140; width++) {
        const line = formatProgressLine({ ...PROGRESS, path }, expected, ELAPSED, width);
        const where = `${JSON.stringify(path)} at ${width}`;
        if (columnsOf(line) > Math.max(0, width - 1)) t.fail(`too wide: ${where}: ${line}`);
        if (CONTROL.test(line)) t.fail(`a control character: ${where}`);
        if (LONE_SURROGATE.test(line)) t.fail(`a character cut in half: ${where}`);
      }
    }
  }
  t.pass("checked");
  t.end();
});

t.test("columnsOf counts a character outside ASCII as two columns", (t) => {
  t.equal(columnsOf("abc"), 3);
  t.equal(columnsOf("日本"), 4);
  t.equal(columnsOf("😀"), 2, "one code point, two UTF-16 units");
  t.equal(columnsOf(""), 0);
  t.end();
});
