import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import t from "tap";
import { nodeFlagsOf, shebangFlags } from "../src/shebang-flags.js";
import { MasterProcess } from "./helpers/master-process.js";
import { SLAVE_BIN, SlaveProcess } from "./helpers/slave-process.js";

t.test("the node options of a first line", (t) => {
  t.same(shebangFlags("#!/usr/bin/env -S node --max-semi-space-size=2\n// rest"), [
    "--max-semi-space-size=2",
  ]);
  t.same(shebangFlags("#!/usr/bin/env -S node --a --b=1 \nx"), ["--a", "--b=1"]);
  t.same(shebangFlags("#!/usr/bin/env node\n"), [], "plain node: none");
  t.same(shebangFlags(""), []);
  t.same(shebangFlags("// no first-line command\n#!/usr/bin/env -S node --a"), []);
  // Anything that is not plainly an option is not passed on.
  t.same(shebangFlags("#!/usr/bin/env -S node --a; rm -rf /\n"), []);
  t.same(shebangFlags("#!/usr/bin/env -S node --eval=x$(id)\n"), []);
  t.same(shebangFlags("#!/usr/bin/env -S node -e 1\n"), []);
  t.same(shebangFlags("#!/usr/bin/env -S python3 --a\n"), []);
  t.end();
});

t.test("abs-slave asks for a small young generation and gc, and runs with them", async (t) => {
  t.same(nodeFlagsOf(SLAVE_BIN), ["--max-semi-space-size=2", "--expose-gc"]);
  // Run as the installed command is (by its first line): env -S and the
  // option work, and --help answers.
  const out = execFileSync(SLAVE_BIN, ["--help"], { encoding: "utf8" });
  t.match(out, /abs-slave/);
  // A slave started by the tests (or abs demo) gets the same option.
  const m = await MasterProcess.start(t);
  const s = await SlaveProcess.start(t, { master: m });
  const cmdline = readFileSync(`/proc/${String(s.pid)}/cmdline`, "utf8").split("\0");
  t.ok(cmdline.includes("--max-semi-space-size=2"), cmdline.join(" "));
  t.ok(cmdline.includes("--expose-gc"), cmdline.join(" "));
});
