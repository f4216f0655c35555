// `npm run test:unit`: runs the unit tests named in test/unit-tests.txt
// (after the build, from dist/) with test/helpers/unit-guard.ts loaded, which
// makes starting a process or opening a real socket throw. `npm test` runs
// every test, these included.

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const list = path.join(root, "test", "unit-tests.txt");
const files = [];
readFileSync(list, "utf8")
  .split("\n")
  .forEach((line, i) => {
    const test = line.replace(/#.*/, "").trim();
    if (test === "") return;
    if (!/^test\/.+\.test\.ts$/.test(test) || !existsSync(path.join(root, test))) {
      console.error(`test/unit-tests.txt:${i + 1}: "${test}" is not a test file under test/`);
      process.exit(2);
    }
    files.push(path.join("dist", test.replace(/\.ts$/, ".js")));
  });
const tap = spawnSync(
  path.join(root, "node_modules", ".bin", "tap"),
  ["--node-arg=--import=./dist/test/helpers/unit-guard.js", ...files, ...process.argv.slice(2)],
  { cwd: root, stdio: "inherit" },
);
if (tap.error) throw tap.error;
process.exit(tap.status ?? 1);
