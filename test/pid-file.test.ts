import { readFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { removePidFile, writePidFile } from "../src/pid-file.js";
import { tempDir } from "./helpers/tmp.js";

t.test("the pid file names this process, and goes when it is removed", async (t) => {
  const file = path.join(tempDir(t), "abs-master.pid");
  await writePidFile(file);
  t.equal(readFileSync(file, "utf8"), `${process.pid}\n`);
  await removePidFile(file);
  t.throws(() => readFileSync(file), { code: "ENOENT" });
});

t.test("a pid file that cannot be written is an I/O failure naming the file", async (t) => {
  const file = path.join(tempDir(t), "no-such-dir", "abs-master.pid");
  await t.rejects(writePidFile(file), {
    code: "FILE_IO",
    message: new RegExp(`^cannot write the pid file ${file}: .*ENOENT`),
    context: { file },
  });
});
