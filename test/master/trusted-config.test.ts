// The files abs-master and abs-slave take orders and secrets from are
// refused when someone other than root or the daemon's user could have
// changed them (storage/trusted-file.ts, as sshd's StrictModes): at -t, at
// the start, and at a reload, which keeps the running config and serving.
// Each attack is carried out: a world-writable file and a file of `nobody`
// dropped into jobs.d, a symlink from jobs.d to a file outside it, a loose
// master.conf, jobs.d, slave.conf and realm key. (The unit-level messages
// are in test/storage/trusted-file.test.ts.)

import {
  chmodSync,
  chownSync,
  mkdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import t from "tap";
import { MASTER_BIN, MasterProcess, runNode } from "../helpers/master-process.js";
import { NOBODY, runningAsRoot } from "../helpers/as-nobody.js";
import { SLAVE_BIN, SlaveProcess } from "../helpers/slave-process.js";

const HOME = [
  "[job home]",
  "slave = green-acres",
  "method = command",
  "command.program = /bin/true",
  "",
].join("\n");
const EVIL = [
  "[job evil]",
  "slave = green-acres",
  "method = command",
  "command.program = /bin/sh",
  "command.args = -c id",
  "",
].join("\n");

interface ScheduleResult {
  definitions: { definition: string }[];
}

async function definitions(m: MasterProcess): Promise<string[]> {
  const r = (await m.call("show-schedule", {})) as unknown as ScheduleResult;
  return r.definitions.map((d) => d.definition);
}

/** tap options, made anew for each test (tap writes into the object it is given). */
const asRoot = (): { skip: string | false } => ({
  skip: runningAsRoot() ? false : "needs root to chown files to nobody",
});

/**
 * Puts a definition file into jobs.d already with its mode and owner: made
 * aside and renamed in, so the master's watcher never sees it otherwise.
 */
function dropInto(m: MasterProcess, name: string, opts: { mode?: number; uid?: number }): string {
  const aside = path.join(m.dir, `${name}.aside`);
  writeFileSync(aside, EVIL);
  if (opts.mode !== undefined) chmodSync(aside, opts.mode);
  if (opts.uid !== undefined) chownSync(aside, opts.uid, opts.uid);
  const file = path.join(m.dir, "jobs.d", name);
  renameSync(aside, file);
  return file;
}

t.test(
  "a jobs.d file others could change is refused at reload, -t and start; the master keeps serving",
  asRoot(),
  async (t) => {
    const m = await MasterProcess.start(t, { jobs: HOME });
    t.same(await definitions(m), ["home"]);

    const cases: [string, { mode?: number; uid?: number }, RegExp][] = [
      [
        "loose.conf",
        { mode: 0o666 },
        /writable by group and others \(mode 0666\): anyone among them could change it; run `chmod go-w \S+loose\.conf`/,
      ],
      [
        "nobody.conf",
        { uid: NOBODY },
        new RegExp(`owned by uid ${NOBODY}, not by root: anyone with that uid could change it`),
      ],
    ];
    for (const [name, opts, why] of cases) {
      const file = dropInto(m, name, opts);
      const message = new RegExp(`job definition file ${file} is refused: ${why.source}`);
      // Reload, as the jobs.d watcher or an admin starts it: refused, and the
      // running definitions stay (on main, "evil" was loaded within a second).
      await t.rejects(m.call("reload"), { code: "CONFIG", message }, `${name}: reload`);
      t.same(await definitions(m), ["home"], `${name}: still the running definitions`);
      t.match(await m.call("status"), { mode: "real" }, `${name}: still serving`);

      const checked = await runNode([MASTER_BIN, "-t", "-c", m.confPath]);
      t.equal(checked.status, 1, `${name}: -t`);
      t.match(checked.stderr, message);
      rmSync(file);
    }

    // A symlink out of jobs.d: whoever may write where it points would
    // write the master's orders.
    const outside = path.join(m.dir, "elsewhere");
    mkdirSync(outside);
    writeFileSync(path.join(outside, "evil.conf"), EVIL);
    const link = path.join(m.dir, "jobs.d", "evil.conf");
    symlinkSync(path.join(outside, "evil.conf"), link);
    const out = new RegExp(
      `job definition file ${link} is refused: a symlink to ${outside}/evil\\.conf, outside ${m.dir}/jobs\\.d`,
    );
    await t.rejects(m.call("reload"), { code: "CONFIG", message: out }, "symlink: reload");
    t.same(await definitions(m), ["home"]);
    const checked = await runNode([MASTER_BIN, "-t", "-c", m.confPath]);
    t.equal(checked.status, 1);
    t.match(checked.stderr, out);

    // And at the start: the master does not start on it.
    await m.stop();
    const started = await runNode([MASTER_BIN, "-f", "-c", m.confPath]);
    t.equal(started.status, 1);
    t.match(started.stderr, out);
    rmSync(link);
    dropInto(m, "nobody.conf", { uid: NOBODY });
    const again = await runNode([MASTER_BIN, "-f", "-c", m.confPath]);
    t.equal(again.status, 1);
    t.match(again.stderr, new RegExp(`nobody\\.conf is refused: owned by uid ${NOBODY}`));
  },
);

t.test(
  "master.conf, jobs.d itself and the realm key: refused at -t and start when others could change them",
  asRoot(),
  async (t) => {
    const m = await MasterProcess.prepare(t, { jobs: HOME });
    const jobsD = path.join(m.dir, "jobs.d");
    const check = async (why: RegExp): Promise<void> => {
      const checked = await runNode([MASTER_BIN, "-t", "-c", m.confPath]);
      t.equal(checked.status, 1, checked.stdout);
      t.match(checked.stderr, why);
      const started = await runNode([MASTER_BIN, "-f", "-c", m.confPath]);
      t.equal(started.status, 1);
      t.match(started.stderr, why);
    };
    chmodSync(m.confPath, 0o664);
    await check(
      new RegExp(`config file ${m.confPath} is refused: writable by group \\(mode 0664\\)`),
    );
    chmodSync(m.confPath, 0o644);
    chmodSync(jobsD, 0o777);
    await check(
      new RegExp(`the job definitions directory ${jobsD} is refused: writable by group and others`),
    );
    chmodSync(jobsD, 0o755);
    chownSync(m.keyFile, NOBODY, NOBODY);
    await check(
      new RegExp(
        `realm key file \\(realm_key_file\\) ${m.keyFile} is refused: owned by uid ${NOBODY}`,
      ),
    );
    chownSync(m.keyFile, 0, 0);
    const ok = await runNode([MASTER_BIN, "-t", "-c", m.confPath]);
    t.equal(ok.status, 0, ok.stderr);
  },
);

t.test(
  "slave.conf and its key file: refused at -t, start and reload when others could change them",
  asRoot(),
  async (t) => {
    const m = await MasterProcess.start(t, { jobs: HOME });
    const s = SlaveProcess.prepare(t, { master: m });
    const run = (args: string[]): ReturnType<typeof runNode> =>
      runNode([SLAVE_BIN, ...args, "-c", s.confPath]);
    const loose = new RegExp(
      `config file ${s.confPath} is refused: writable by group and others \\(mode 0666\\)`,
    );
    chmodSync(s.confPath, 0o666);
    const checked = await run(["-t"]);
    t.equal(checked.status, 1);
    t.match(checked.stderr, loose);
    const started = await run(["-f"]);
    t.equal(started.status, 1);
    t.match(started.stderr, loose);
    chmodSync(s.confPath, 0o644);
    const slaveKey = path.join(s.dir, "slave.key");
    chownSync(slaveKey, NOBODY, NOBODY);
    const key = await run(["-t"]);
    t.equal(key.status, 1);
    t.match(key.stderr, new RegExp(`slave key file \\(key_file\\) ${slaveKey} is refused`));
    chownSync(slaveKey, 0, 0);

    // A reload that finds slave.conf loose keeps the running config.
    await s.launch();
    await s.waitForOutput(/registered with master/);
    const from = s.log.length;
    chmodSync(s.confPath, 0o666);
    s.signal("SIGHUP");
    await s.waitForOutput(/reload refused: the running config is kept/, 10_000, from);
    t.match(s.log.slice(from), new RegExp(`reload refused: ${loose.source}`));
    chmodSync(s.confPath, 0o644);
    t.match(await s.stop(), { code: 0 }, "it was still running, and stops cleanly");
    await m.stop();
  },
);
