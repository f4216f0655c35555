// The slave across changes of its world, with real processes: the master
// moved to another directory and port by editing `master:` and SIGHUP while
// a job runs; the slave SIGKILLed mid-backup; the master away when a job
// ends; a bad slave.conf at startup and at runtime; two slaves on one
// state directory.

import { execFileSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import t from "tap";
import { MasterProcess, runNode } from "../helpers/master-process.js";
import { SLAVE_BIN, SlaveProcess } from "../helpers/slave-process.js";
import { runDefinition, waitForJob, waitForState } from "../helpers/admin-wait.js";
import { generateRealmKey, loadRealmKey } from "../../src/auth/realm-key.js";
import { writeSlaveKey } from "../../src/auth/slave-key.js";
import { freeLoopbackPort } from "../../src/free-port.js";
import { tempDir } from "../helpers/tmp.js";

/** The program of waitingJob, in the slave's allowed_programs. */
const HEAD = "/usr/bin/head";

/** A job that runs until the test writes a byte into `fifo`. */
function waitingJob(name: string, fifo: string): string {
  return [
    `[job ${name}]`,
    "slave = green-acres",
    "method = command",
    `command.program = ${HEAD}`,
    `command.args = -c 1 ${fifo}`,
    "",
  ].join("\n");
}

function makeFifo(dir: string): string {
  const fifo = path.join(dir, "go.fifo");
  execFileSync("mkfifo", [fifo]);
  return fifo;
}

/** The records in a slave's state directory. */
function records(stateDir: string): string[] {
  return readdirSync(stateDir)
    .filter((n) => /^(run|result)-/.test(n))
    .sort();
}

t.test(
  "master: edited and SIGHUP while a job runs: the slave registers with the new master, the job goes on, its result lands there once",
  async (t) => {
    const data = tempDir(t, "abs-data-");
    const fifo = makeFifo(data);
    const a = await MasterProcess.start(t, { jobs: waitingJob("long", fifo) });
    const s = await SlaveProcess.start(t, { master: a, programs: [HEAD] });
    const [id] = await runDefinition(a, "long");
    await waitForState(a, id, "running");

    // The move, as the man page says: stop the master, copy its jobs
    // directory and key, start it elsewhere, point the slave at it.
    await a.stop();
    const b = await MasterProcess.prepare(t, { jobs: waitingJob("long", fifo) });
    cpSync(a.jobsDir, b.jobsDir, { recursive: true });
    copyFileSync(a.keyFile, b.keyFile);
    await b.launch();
    t.not(b.port, a.port, "another port");
    const from = s.log.length;
    s.writeConfig({ master: b, programs: [HEAD] });
    s.signal("SIGHUP");
    const reg = await s.waitForOutput(
      new RegExp(`registered with master \\S+ at 127\\.0\\.0\\.1:${b.port}: (\\d+) running`),
      30_000,
      from,
    );
    t.equal(reg[1], "1", "the running job is reported to the new master");
    const reattached = await waitForState(b, id, "running");
    t.match(
      reattached.log[reattached.log.length - 1]?.message,
      /^reattached: green-acres reports it running/,
    );

    await writeFile(fifo, "x");
    const done = await waitForState(b, id, "succeeded");
    await s.waitForOutput(
      new RegExp(`job ${id}: the master has the result of attempt 1`),
      30_000,
      from,
    );
    t.equal(
      done.log.filter((e) => e.message.startsWith("succeeded on green-acres")).length,
      1,
      "one result in the job's log",
    );
    t.same(records(s.stateDir), [], "nothing left for the slave to report");

    // A restart of the slave reports nothing more: the result was delivered once.
    await s.stop();
    await s.launch(); // its output starts afresh
    await s.waitForOutput(/registered with master \S+ at .*: 0 running, 0 results reported/);
    const after = await waitForJob(b, id, () => true);
    t.equal(after.serial, done.serial, "the job did not change again");
  },
);

t.test(
  "SIGKILL of the slave mid-backup: restarted, it reports the job failed and removes the partial archive",
  async (t) => {
    const data = tempDir(t, "abs-data-");
    mkdirSync(path.join(data, "src"));
    const sparse = path.join(data, "src", "sparse.img");
    writeFileSync(sparse, "");
    truncateSync(sparse, 64 * 1024 ** 3);
    const m = await MasterProcess.start(t, {
      jobs: [
        "[job big]",
        "slave = green-acres",
        "method = tar",
        `tar.sources = ${data}/src`,
        `tar.destination = ${data}/backup`,
        "tar.gzip = true",
        "",
      ].join("\n"),
    });
    const s = await SlaveProcess.start(t, { master: m, allowedPaths: data });
    const [id] = await runDefinition(m, "big");
    await waitForState(m, id, "running");
    const backup = path.join(data, "backup");
    t.ok(
      readdirSync(backup).some((n) => n.endsWith(".partial")),
      "a partial archive is being written",
    );
    t.same(records(s.stateDir), [`run-${id}-1.json`], "the running job is recorded");

    s.signal("SIGKILL");
    await s.exit();
    await waitForState(m, id, "orphaned");
    await s.launch(); // its output starts afresh
    const failed = await waitForState(m, id, "failed");
    t.match(
      failed.result,
      /^slave restarted: the job was running when abs-slave pid \d+ stopped \(started .*\); removed 1 partial file\(s\)$/,
    );
    await s.waitForOutput(new RegExp(`job ${id}: the master has the result`));
    t.same(
      readdirSync(backup).filter((n) => n.includes(".tar")),
      [],
      "no partial and no archive left",
    );
    t.same(records(s.stateDir), [], "nothing left to report");
  },
);

t.test(
  "the master away when a job ends: the result waits in the state directory and lands once",
  async (t) => {
    const data = tempDir(t, "abs-data-");
    const fifo = makeFifo(data);
    // A fixed port: the slave finds the master where it was after the restart.
    const listen = `127.0.0.1:${await freeLoopbackPort()}`;
    const m = await MasterProcess.start(t, { listen, jobs: waitingJob("long", fifo) });
    const s = await SlaveProcess.start(t, { master: m, programs: [HEAD] });
    const [id] = await runDefinition(m, "long");
    await waitForState(m, id, "running");
    await m.stop();
    await writeFile(fifo, "x");
    await s.waitForOutput(new RegExp(`job ${id}: succeeded`));
    t.same(records(s.stateDir), [`result-${id}-1.json`], "the result waits on disk");

    const from = s.log.length;
    await m.launch();
    await s.waitForOutput(
      /registered with master \S+ at .*: 0 running, 1 results reported/,
      60_000,
      from,
    );
    const done = await waitForState(m, id, "succeeded");
    t.equal(done.log.filter((e) => e.message.startsWith("succeeded on")).length, 1);
    await s.waitForOutput(new RegExp(`job ${id}: the master has the result`), 30_000, from);
    t.same(records(s.stateDir), [], "removed once acknowledged");
  },
);

t.test(
  "slave.conf mistakes: -t names each one; a bad edit at runtime keeps the running config",
  async (t) => {
    const dir = tempDir(t, "abs-slave-conf-");
    const bad = path.join(dir, "slave.conf");
    writeFileSync(
      bad,
      [
        "master green-acres",
        "max_jobs: 0",
        "mastr_ca: /ca.pem",
        "allowed_paths: /home, srv",
        "",
      ].join("\n"),
    );
    const r = await runNode([SLAVE_BIN, "-t", "-c", bad]);
    t.equal(r.status, 1);
    t.equal(
      r.stderr,
      [
        `${bad}:1: line "master green-acres": expected "key: value" or "key = value", a [section] header or a comment`,
        `${bad}:1: file "${bad}": missing required key "master" (e.g. "master: green-acres")`,
        `${bad}:2: max_jobs "0": expected an integer from 1 to 10000`,
        `${bad}:3: mastr_ca "/ca.pem": unknown key; did you mean "master_ca"?`,
        `${bad}:4: allowed_paths "/home, srv": "srv": expected an absolute path (starting with /)`,
        "abs-slave: the config is invalid",
        "",
      ].join("\n"),
    );
    // A principal without its realm: GSSAPI would refuse every connection.
    const noRealm = path.join(dir, "no-realm.conf");
    writeFileSync(
      noRealm,
      [
        "master: green-acres",
        "auth: kerberos",
        `keytab: ${dir}/krb5.keytab`,
        "principal: host/green-acres.example.test",
        "master_ca: /ca.pem",
        "allowed_paths: /srv",
        "",
      ].join("\n"),
    );
    const r2 = await runNode([SLAVE_BIN, "-t", "-c", noRealm]);
    t.equal(r2.status, 1);
    t.equal(
      r2.stderr,
      `${noRealm}:4: principal "host/green-acres.example.test": has no realm: write it with the master's realm, as name@REALM (e.g. "host/green-acres.example.test@EXAMPLE.COM")\n` +
        "abs-slave: the config is invalid\n",
    );
    const missing = await runNode([SLAVE_BIN, "-t", "-c", path.join(dir, "nope.conf")]);
    t.equal(missing.status, 1);
    t.match(missing.stderr, /nope\.conf: cannot read: .*ENOENT/);
    const usage = await runNode([SLAVE_BIN, "--frobnicate"]);
    t.equal(usage.status, 2);
    t.match(usage.stderr, /unknown option '--frobnicate'/);

    // A slave key that group or others can read: -t checks the text only,
    // but the slave does not start (it used to start, then fail every
    // connection attempt in its log).
    const realm = path.join(dir, "realm.key");
    await generateRealmKey(realm);
    const key = path.join(dir, "green-acres.key");
    await writeSlaveKey(await loadRealmKey(realm), "green-acres", key);
    chmodSync(key, 0o640);
    const good = path.join(dir, "good.conf");
    const confWithKey = (file: string): string =>
      [
        "master: 127.0.0.1:9",
        "name: green-acres",
        `state_dir: ${path.join(dir, "state")}`,
        `log_dir: ${path.join(dir, "log")}`,
        `key_file: ${file}`,
        "allowed_paths: /",
        "",
      ].join("\n");
    writeFileSync(good, confWithKey(key));
    t.equal((await runNode([SLAVE_BIN, "-t", "-c", good])).status, 0, "-t: the text is good");
    const open = await runNode([SLAVE_BIN, "-f", "-c", good]);
    t.equal(open.status, 1);
    t.equal(
      open.stderr,
      `abs-slave: slave key file ${key} has mode 0640: group or others can read or change it; refusing to use it. Run \`chmod 600 ${key}\`\n`,
    );

    // The realm key itself as the slave's key, and another slave's key: refused at start.
    writeFileSync(good, confWithKey(realm));
    const holdsRealm = await runNode([SLAVE_BIN, "-f", "-c", good]);
    t.equal(holdsRealm.status, 1);
    t.match(
      holdsRealm.stderr,
      /^abs-slave: key file .*realm\.key holds the realm key: a slave must hold only its own key.*abs keygen --slave green-acres green-acres\.key/,
    );
    const other = path.join(dir, "db1.key");
    await writeSlaveKey(await loadRealmKey(realm), "db1", other);
    writeFileSync(good, confWithKey(other));
    const othersKey = await runNode([SLAVE_BIN, "-f", "-c", good]);
    t.equal(othersKey.status, 1);
    t.match(
      othersKey.stderr,
      /db1\.key is the key of slave "db1", but this slave is named "green-acres"/,
    );

    // At runtime: an edit with a mistake is refused (chokidar notices it); the slave keeps serving.
    const m = await MasterProcess.start(t, {
      jobs: "[job ok]\nslave = green-acres\nmethod = command\ncommand.program = /bin/true\n",
    });
    const s = await SlaveProcess.start(t, { master: m, programs: ["/bin/true"] });
    const from = s.log.length;
    s.writeConfig({ master: m, programs: ["/bin/true"], extra: "max_jobs: lots" });
    await s.waitForOutput(
      new RegExp(
        `reload refused: ${s.confPath.replace(/[.]/g, "\\.")}:10: max_jobs "lots": expected an integer from 1 to 10000`,
      ),
      30_000,
      from,
    );
    await s.waitForOutput(/reload refused: the running config is kept/, 30_000, from);
    const [id] = await runDefinition(m, "ok");
    await waitForState(m, id, "succeeded");
    t.pass("the slave still runs jobs");
  },
);

t.test("a second abs-slave on the same state directory is refused", async (t) => {
  const m = await MasterProcess.start(t);
  const s = await SlaveProcess.start(t, { master: m });
  const r = await runNode([SLAVE_BIN, "-f", "-c", s.confPath]);
  t.equal(r.status, 1);
  t.match(
    r.stderr,
    new RegExp(`abs-slave: state directory ${s.stateDir} is locked by abs-slave pid ${s.pid} on `),
  );
  t.ok(existsSync(path.join(s.stateDir, "abs-slave.pid")), "the first slave's pid file is kept");
});

t.test(
  "SIGTERM of the slave: its running job ends failed with the reason, reported before it exits",
  async (t) => {
    const data = tempDir(t, "abs-data-");
    const fifo = makeFifo(data);
    const m = await MasterProcess.start(t, { jobs: waitingJob("long", fifo) });
    const s = await SlaveProcess.start(t, { master: m, programs: [HEAD] });
    const [id] = await runDefinition(m, "long");
    await waitForState(m, id, "running");
    const exit = await s.stop();
    t.same(exit, { code: 0, signal: null }, "exits 0");
    const failed = await waitForState(m, id, "failed");
    t.match(failed.result, /^command ".*" canceled: slave stopped \(SIGTERM\)/);
    t.notOk(existsSync(path.join(s.stateDir, "abs-slave.pid")), "the pid file is removed");
  },
);

t.test(
  "a master that stops answering (SIGSTOP) is given up after three heartbeats; the slave comes back when it does",
  async (t) => {
    const m = await MasterProcess.start(t, { master: "heartbeat_interval = 200ms" });
    const s = await SlaveProcess.start(t, { master: m });
    const from = s.log.length;
    m.signal("SIGSTOP");
    t.teardown(() => m.signal("SIGCONT"));
    await s.waitForOutput(
      /lost the master at .*: no word from the master for 3 heartbeat intervals; running jobs go on/,
      30_000,
      from,
    );
    m.signal("SIGCONT");
    await s.waitForOutput(
      /registered with master/,
      60_000,
      s.log.indexOf("no word from the master"),
    );
    t.pass("registered again");
  },
);
