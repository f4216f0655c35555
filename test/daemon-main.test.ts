// The daemons' command lines as processes: --help ends with examples, and
// bad usage (an unknown option, an extra argument) is refused by name with
// exit status 2 before any config is read.

import t from "tap";
import { MASTER_BIN, runNode } from "./helpers/master-process.js";
import { SLAVE_BIN } from "./helpers/slave-process.js";

for (const [name, bin] of [
  ["abs-master", MASTER_BIN],
  ["abs-slave", SLAVE_BIN],
] as const) {
  t.test(`${name} --help ends with examples`, async (t) => {
    const run = await runNode([bin, "--help"]);
    t.equal(run.status, 0);
    t.match(run.stdout, new RegExp(`^Usage: ${name} `));
    t.match(run.stdout, new RegExp(`\\nExamples:\\n( {2}${name}\\b.*\\n)+$`));
  });

  t.test(`${name}: bad usage is 2 and names what was wrong`, async (t) => {
    // A config that does not exist: had the daemon gone on, it would fail with 1.
    const env = { ABS_CONFIG: "/nonexistent/abs.conf", ABS_SLAVE_CONFIG: "/nonexistent/abs.conf" };
    const cases: [string[], string][] = [
      [["--frob"], "error: unknown option '--frob'\n"],
      [["-t", "--frob"], "error: unknown option '--frob'\n"],
      [["start"], "error: too many arguments. Expected 0 arguments but got 1.\n"],
      [["-c"], "error: option '-c, --config <file>' argument missing\n"],
    ];
    for (const [args, stderr] of cases) {
      const run = await runNode([bin, ...args], env);
      t.equal(run.status, 2, args.join(" "));
      t.equal(run.stderr, stderr, args.join(" "));
      t.equal(run.stdout, "");
    }
  });
}
