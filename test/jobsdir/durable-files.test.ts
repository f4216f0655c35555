import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { JobsDirIoError } from "../../src/errors.js";
import { commitFiles, prepareFiles, publishFiles } from "../../src/jobsdir/durable-files.js";
import { type FsOps, realFsOps } from "../../src/storage/fs-ops.js";
import { tempDir } from "../helpers/tmp.js";

function failing(code: string, when: (op: string, file: string) => boolean): FsOps {
  const fail = (op: string, file: string): void => {
    if (when(op, file))
      throw Object.assign(new Error(`${code}: simulated ${op} '${file}'`), { code });
  };
  return {
    ...realFsOps,
    writeSynced: async (file, data) => (fail("write", file), realFsOps.writeSynced(file, data)),
    rename: async (from, to) => (fail("rename", to), realFsOps.rename(from, to)),
    fsyncDir: async (dir) => (fail("fsyncDir", dir), realFsOps.fsyncDir(dir)),
  };
}

t.test("files replace their old content atomically, one directory fsync for all", async (t) => {
  const dir = tempDir(t);
  let dirSyncs = 0;
  const fs: FsOps = { ...realFsOps, fsyncDir: (d) => ((dirSyncs += 1), realFsOps.fsyncDir(d)) };
  const writes = Array.from({ length: 10 }, (_, i) => ({ name: `f${i}`, data: `v1 ${i}\n` }));
  t.same(await commitFiles(fs, dir, writes), {
    gate: null,
    gateRenamed: false,
    writes: writes.map(() => null),
    journal: null,
  });
  await commitFiles(fs, dir, [{ name: "f3", data: "v2\n" }]);
  t.equal(readFileSync(path.join(dir, "f3"), "utf8"), "v2\n");
  t.equal(dirSyncs, 2);
  t.same(
    readdirSync(dir).filter((n) => n.startsWith(".tmp-")),
    [],
  );
});

t.test("a gate that fails abandons the writes that depend on it, not the others", async (t) => {
  const dir = tempDir(t);
  const fs = failing("ENOSPC", (op, file) => op === "write" && file.includes("serial"));
  const out = await commitFiles(
    fs,
    dir,
    [
      { name: "job-1.json", data: "new\n", gated: true },
      { name: "job-0.json", data: "update\n" },
    ],
    { name: "serial", data: "1\n" },
  );
  t.match(out.gate, { code: "JOBSDIR_IO", message: /cannot write .*serial: ENOSPC/ });
  t.equal(out.writes[0], out.gate, "the gated write fails with the gate's error");
  t.equal(out.writes[1], null, "the ungated write goes through");
  t.notOk(existsSync(path.join(dir, "job-1.json")));
  t.ok(existsSync(path.join(dir, "job-0.json")));
  t.same(
    readdirSync(dir).filter((n) => n.startsWith(".tmp-")),
    [],
    "no temp file left",
  );
});

t.test("a covered gate is not renamed over what covers it; its writes go on", async (t) => {
  const dir = tempDir(t);
  const gate = { name: "serial", data: "2\n" };
  const later = await commitFiles(
    realFsOps,
    dir,
    [{ name: "job-2.json", data: "2\n", gated: true }],
    gate,
  );
  t.same(later, { gate: null, gateRenamed: true, writes: [null], journal: null });
  const earlier = await prepareFiles(
    realFsOps,
    dir,
    [{ name: "job-1.json", data: "1\n", gated: true }],
    { name: "serial", data: "1\n" },
  );
  t.same(await publishFiles(realFsOps, earlier, true), {
    gate: null,
    gateRenamed: false,
    writes: [null],
    journal: null,
  });
  t.equal(readFileSync(path.join(dir, "serial"), "utf8"), "2\n", "the higher serial stays");
  t.equal(readFileSync(path.join(dir, "job-1.json"), "utf8"), "1\n");
  t.same(
    readdirSync(dir).filter((n) => n.startsWith(".tmp-")),
    [],
    "the covered gate's temp file is removed",
  );
});

t.test("a failed rename or directory fsync is reported, never success", async (t) => {
  const dir = tempDir(t);
  const renameFails = failing("EIO", (op, file) => op === "rename" && file.endsWith("b"));
  const out = await commitFiles(renameFails, dir, [
    { name: "a", data: "a\n" },
    { name: "b", data: "b\n" },
  ]);
  t.equal(out.writes[0], null);
  t.match(out.writes[1], { code: "JOBSDIR_IO", message: /cannot rename into .*b: EIO/ });

  const syncFails = failing("EIO", (op) => op === "fsyncDir");
  const all = await commitFiles(syncFails, dir, [{ name: "c", data: "c\n" }]);
  t.match(all.writes[0], { code: "JOBSDIR_IO", message: /cannot fsync directory .*: EIO/ });
});

t.test(
  "the step before the renames runs after the gate's; if it fails, the journaled writes are abandoned",
  async (t) => {
    const dir = tempDir(t);
    const failure = new JobsDirIoError(
      "the requests file is full",
      path.join(dir, "requests"),
      null,
    );
    for (const fails of [false, true]) {
      const n = fails ? 2 : 1;
      const prepared = await prepareFiles(
        realFsOps,
        dir,
        [
          { name: `job-${n}.json`, data: "new\n", gated: true, journaled: true },
          { name: `other-${n}`, data: "other\n" },
        ],
        { name: "serial", data: `${n}\n` },
      );
      let seen: { renamed: boolean; serial: string; jobThere: boolean } | undefined;
      const outcome = await publishFiles(realFsOps, prepared, false, (gate) => {
        seen = {
          renamed: gate.renamed,
          serial: readFileSync(path.join(dir, "serial"), "utf8"),
          jobThere: existsSync(path.join(dir, `job-${n}.json`)),
        };
        return Promise.resolve(fails ? failure : null);
      });
      t.same(
        seen,
        { renamed: true, serial: `${n}\n`, jobThere: false },
        "after the gate, before the job",
      );
      t.equal(outcome.journal, fails ? failure : null);
      t.equal(outcome.writes[0], fails ? failure : null, "the journaled write follows the step");
      t.equal(outcome.writes[1], null, "the other write goes on");
      t.equal(existsSync(path.join(dir, `job-${n}.json`)), !fails);
    }
    t.same(
      readdirSync(dir).filter((n) => n.startsWith(".tmp-")),
      [],
      "no temp file is left behind",
    );
  },
);
