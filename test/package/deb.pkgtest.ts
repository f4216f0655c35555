// The Debian package, built, checked and installed on this machine: lintian
// finds no errors or warnings; once installed, from the installed files only
// (no clone): the sample configs fail -t with their lines to fill in, the
// man pages and units are found and verify, a master run as abs and a slave
// run as root (as the units would, without systemd) run a backup, the admin
// socket lets abs-admin in and keeps others out; then purge leaves no file
// of the package behind, nor its users.
//
// It installs into the system (/usr, /etc, users), so it is not part of
// `npm test`: .ci/run runs it (npm run test:package) on CI's own machine,
// where it must run (CI=true: a missing condition fails). Elsewhere it runs
// only as root on a machine without ABS installed, and skips otherwise.

import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t, { type Test } from "tap";
import { InstalledDaemon, type RunAs, run } from "../helpers/installed-program.js";
import { tempDir } from "../helpers/tmp.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** Why this machine cannot take the test, or null. */
function unfit(): string | null {
  if (process.getuid?.() !== 0) return "not root (dpkg -i needs it)";
  for (const tool of ["dpkg-deb", "dpkg", "lintian", "systemd-analyze", "setpriv", "man"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) return `${tool} is missing`;
  }
  if (spawnSync("dpkg-query", ["-W", "abs"]).status === 0) {
    return "package abs is installed: the test would purge it";
  }
  if (existsSync("/etc/abs") || spawnSync("id", ["abs"]).status === 0) {
    return "/etc/abs or user abs exists: the test would remove them";
  }
  return null;
}

const why = unfit();
if (why !== null && process.env.CI === "true") {
  t.fail(`the package test must run in CI: ${why}`);
} else if (why !== null) {
  t.plan(0, `skipped: ${why}`);
} else {
  t.test("the Debian package", packageTest);
}

/** The line of `file` (1-based) that starts with `prefix`. */
function lineOf(file: string, prefix: string): number {
  const i = readFileSync(file, "utf8")
    .split("\n")
    .findIndex((l) => l.startsWith(prefix));
  if (i < 0) throw new Error(`${file} has no line starting ${prefix}`);
  return i + 1;
}

function packageTest(t: Test): void {
  const built = spawnSync("bash", [path.join(repo, "scripts/package-deb.sh")], {
    encoding: "utf8",
  });
  t.equal(built.status, 0, `npm run package:deb: ${built.stderr}`);
  const deb = built.stdout.trim();
  t.match(deb, /\/dist-deb\/abs_[^/]+\.deb$/);

  // lintian: tags at error or warning level fail; the overrides say why.
  const lint = run(["lintian", "--fail-on", "error,warning", deb]);
  t.equal(lint.status, 0, `lintian:\n${lint.stdout}${lint.stderr}`);
  t.notMatch(lint.stdout, /^[EW]: /m, "no errors or warnings");

  t.teardown(() => {
    // A failed run does not leave the package on the machine.
    if (spawnSync("dpkg-query", ["-W", "abs"]).status === 0) run(["dpkg", "--purge", "abs"]);
  });
  let installed = run(["dpkg", "-i", deb]);
  if (installed.status !== 0) {
    // Dependencies missing: apt installs them and configures abs.
    installed = run(["apt-get", "install", "-f", "-y", "-q"], {
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", DEBIAN_FRONTEND: "noninteractive" },
    });
  }
  t.equal(installed.status, 0, `dpkg -i:\n${installed.stdout}${installed.stderr}`);

  t.test("the sample configs name what to fill in", (t) => {
    const master = run(["/usr/sbin/abs-master", "-t", "-c", "/etc/abs/master.conf"]);
    t.equal(master.status, 1);
    const realmLine = lineOf(path.join(repo, "packaging/debian/master.conf"), "realm =");
    t.equal(
      master.stderr,
      `/etc/abs/master.conf:${realmLine}: realm "": expected a realm name without spaces, "@" or "/" (e.g. EXAMPLE.COM)\n` +
        "abs-master: 1 error(s) in the config\n",
    );
    const slave = run(["/usr/sbin/abs-slave", "-t", "-c", "/etc/abs/slave.conf"]);
    t.equal(slave.status, 1);
    const sample = path.join(repo, "packaging/debian/slave.conf");
    t.equal(
      slave.stderr,
      `/etc/abs/slave.conf:${lineOf(sample, "master:")}: master "": the host is empty\n` +
        `/etc/abs/slave.conf:${lineOf(sample, "allowed_paths:")}: allowed_paths "": expected at least one item\n` +
        "abs-slave: the config is invalid\n",
    );
    const conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "abs"]).stdout;
    for (const f of ["/etc/abs/master.conf", "/etc/abs/slave.conf", "/etc/logrotate.d/abs"]) {
      t.match(conffiles, new RegExp(`^ ${f} [0-9a-f]{32}$`, "m"), `${f} is a conffile`);
    }
    t.end();
  });

  t.test("man finds the pages; the units verify", (t) => {
    for (const [section, page] of [
      ["8", "abs"],
      ["8", "abs-master"],
      ["8", "abs-slave"],
      ["5", "abs.conf"],
    ]) {
      const where = run(["man", "-w", section, page]);
      t.equal(where.stdout, `/usr/share/man/man${section}/${page}.${section}.gz\n`, where.stderr);
    }
    const opened = run(["man", "-P", "cat", "8", "abs"], { env: { PATH: "/usr/bin:/bin" } });
    t.equal(opened.status, 0, opened.stderr);
    t.match(opened.stdout, /abs-master/, "man 8 abs opens the page");
    const units = [
      "/lib/systemd/system/abs-master.service",
      "/lib/systemd/system/abs-slave.service",
    ];
    const verify = run(["systemd-analyze", "verify", ...units]);
    t.equal(verify.status, 0, verify.stderr);
    t.equal(verify.stderr, "", "no complaint about the units");
    for (const unit of units) {
      const security = run(["systemd-analyze", "security", "--offline=true", unit]);
      const score = /Overall exposure level for \S+: ([0-9.]+)/.exec(security.stdout);
      if (score === null) t.comment(`${security.stdout}${security.stderr}`);
      t.ok(score, `systemd-analyze security scores ${path.basename(unit)}`);
      t.comment(`${path.basename(unit)}: exposure ${score?.[1]}`);
    }
    t.end();
  });

  t.test("users, groups and directories", (t) => {
    const abs = run(["id", "-nG", "abs"]);
    t.same(abs.stdout.trim().split(" ").sort(), ["abs", "abs-admin"]);
    t.equal(run(["getent", "passwd", "abs"]).stdout.split(":")[6], "/usr/sbin/nologin\n");
    const uid = Number(run(["id", "-u", "abs"]).stdout);
    for (const dir of [
      "/var/lib/abs/jobs",
      "/var/lib/abs/master",
      "/var/log/abs/master",
      "/run/abs",
    ]) {
      t.equal(statSync(dir).uid, uid, `${dir} is abs's`);
    }
    // Root's: the master's user must not put links where the slave (root)
    // opens its files.
    t.equal(statSync("/var/log/abs").uid, 0);
    t.equal(statSync("/var/log/abs").mode & 0o022, 0);
    t.equal(statSync("/var/lib/abs").uid, 0);
    t.equal(statSync("/var/lib/abs/slave").uid, 0);
    t.equal(statSync("/var/lib/abs/slave").mode & 0o777, 0o700);
    const kerberos = run([
      "node",
      "-e",
      "const k = require('/usr/lib/abs/node_modules/kerberos'); console.log(typeof k.initializeClient)",
    ]);
    t.equal(kerberos.stdout, "function\n", `the kerberos addon loads: ${kerberos.stderr}`);
    t.end();
  });

  t.test("a master as abs and a slave as root run a backup", (t) => backupTest(t));

  t.test("an upgrade and remove keep configs and data", (t) => {
    // An admin's edit of a conffile survives an upgrade (here: the same
    // version again, through the upgrade path of the maintainer scripts),
    // without a question (no terminal: dpkg would fail if it asked).
    const conf = "/etc/abs/master.conf";
    const edited = readFileSync(conf, "utf8").replace(/^realm =$/m, "realm = EXAMPLE.COM");
    writeFileSync(conf, edited);
    const again = run(["dpkg", "-i", deb]);
    t.equal(again.status, 0, `dpkg -i again:\n${again.stdout}${again.stderr}`);
    t.equal(readFileSync(conf, "utf8"), edited, "the edited master.conf is kept");
    writeFileSync("/var/lib/abs/jobs/kept", "");
    const removed = run(["dpkg", "-r", "abs"]);
    t.equal(removed.status, 0, removed.stderr);
    t.notOk(existsSync("/usr/sbin/abs-master"), "the programs are gone");
    t.equal(readFileSync(conf, "utf8"), edited, "remove keeps master.conf");
    t.ok(existsSync("/var/lib/abs/jobs/kept"), "remove keeps the jobs directory");
    t.equal(run(["id", "-u", "abs"]).status, 0, "remove keeps user abs");
    // Installed again, so that purge is checked against the full file list.
    const back = run(["dpkg", "-i", deb]);
    t.equal(back.status, 0, back.stderr);
    t.end();
  });

  t.test("purge leaves nothing of the package behind", (t) => {
    const files = run(["dpkg", "-L", "abs"]).stdout.trim().split("\n");
    t.ok(files.includes("/usr/sbin/abs-master"), "dpkg -L lists the files");
    const purged = run(["dpkg", "--purge", "abs"]);
    t.equal(purged.status, 0, purged.stderr);
    const left = files.filter((f) => {
      if (!existsSync(f) && !isLink(f)) return false;
      // A directory others' files are in too (/usr/bin, /lib) stays.
      if (f === "/.") return false;
      if (statSync(f).isDirectory()) return run(["dpkg", "-S", f]).status !== 0;
      return true;
    });
    t.same(left, [], "no file of the package is left");
    for (const dir of ["/etc/abs", "/var/lib/abs", "/var/log/abs", "/run/abs"]) {
      t.notOk(existsSync(dir), `${dir} is gone`);
    }
    t.not(run(["id", "abs"]).status, 0, "user abs is gone");
    t.not(run(["getent", "group", "abs-admin"]).status, 0, "group abs-admin is gone");
    t.not(run(["getent", "group", "abs"]).status, 0, "group abs is gone");
    t.end();
  });
  t.end();
}

function isLink(f: string): boolean {
  try {
    return lstatSync(f).isSymbolicLink();
  } catch {
    return false;
  }
}

async function backupTest(t: Test): Promise<void> {
  const d = tempDir(t, "abs-deb-");
  chmodSync(d, 0o755); // abs goes through it to its files
  const uid = Number(run(["id", "-u", "abs"]).stdout);
  const gid = Number(run(["id", "-g", "abs"]).stdout);
  const adminGid = run(["getent", "group", "abs-admin"]).stdout.split(":")[2];
  for (const sub of ["jobs", "state", "log", "run"]) {
    mkdirSync(path.join(d, sub), { mode: 0o755 });
    chownSync(path.join(d, sub), uid, gid);
  }
  mkdirSync(path.join(d, "jobs.d"));
  mkdirSync(path.join(d, "src"));
  mkdirSync(path.join(d, "backups"));
  writeFileSync(path.join(d, "src", "a.txt"), "what the backup keeps\n");

  const realmKey = path.join(d, "realm.key");
  const keygen = run(["/usr/bin/abs", "keygen", realmKey]);
  t.equal(keygen.status, 0, keygen.stderr);
  chownSync(realmKey, uid, gid); // as README.Debian says: the master reads it as abs
  const socket = path.join(d, "run", "admin.sock");
  const masterConf = path.join(d, "master.conf");
  writeFileSync(
    masterConf,
    [
      "[master]",
      "realm = TEST.ABS",
      "listen = 127.0.0.1:0",
      `jobs_dir = ${d}/jobs`,
      `state_dir = ${d}/state`,
      `log_dir = ${d}/log`,
      `admin_socket = ${socket}`,
      "admin_socket_group = abs-admin",
      `realm_key_file = ${realmKey}`,
      "",
      "[job sample]",
      "slave = deb-slave",
      "method = tar",
      `tar.sources = ${d}/src`,
      `tar.destination = ${d}/backups`,
      "tar.level = full",
      "",
    ].join("\n"),
  );
  const asAbs: RunAs = { user: "abs", group: "abs" };
  const master = new InstalledDaemon(t, ["/usr/sbin/abs-master", "-f", "-c", masterConf], asAbs);
  const port = (await master.waitFor(/slave link listening on 127\.0\.0\.1:(\d+)/))[1];
  await master.waitFor(/abs-master pid \d+ serving/);
  t.equal(statSync(socket).gid, Number(adminGid), "the socket is abs-admin's");

  const slaveKey = path.join(d, "slave.key");
  const slaveKeygen = run([
    "/usr/bin/abs",
    "keygen",
    "--slave",
    "deb-slave",
    "--realm-key",
    realmKey,
    slaveKey,
  ]);
  t.equal(slaveKeygen.status, 0, slaveKeygen.stderr);
  const slaveConf = path.join(d, "slave.conf");
  writeFileSync(
    slaveConf,
    [
      `master: 127.0.0.1:${port}`,
      "name: deb-slave",
      `state_dir: ${d}/slave-state`,
      `log_dir: ${d}/slave-log`,
      `key_file: ${slaveKey}`,
      `allowed_paths: ${d}`,
      "",
    ].join("\n"),
  );
  const slave = new InstalledDaemon(t, ["/usr/sbin/abs-slave", "-f", "-c", slaveConf]);
  await slave.waitFor(/registered with master/);
  t.match(slave.log, /tar scans lstat in C \(\/usr\/lib\/abs\/native\//, "the C scan is used");

  // An admin: nobody, with abs-admin among its groups; and nobody without.
  const admin: RunAs = { user: "nobody", group: "nogroup", groups: [adminGid] };
  const other: RunAs = { user: "nobody", group: "nogroup", groups: "none" };
  const queued = run(["/usr/bin/abs", "-s", socket, "run", "sample"], { as: admin });
  t.equal(queued.status, 0, queued.stderr);
  const id = /^job (\d+) queued: sample on deb-slave$/m.exec(queued.stdout)?.[1];
  t.ok(id, `abs run: ${queued.stdout}`);
  const watched = run(["/usr/bin/abs", "-s", socket, "watch", String(id)], { as: admin });
  t.equal(watched.status, 0, `abs watch: ${watched.stdout}${watched.stderr}`);
  const archive = /^job \d+ succeeded: full backup (sample-\S+-full\.tar): /m.exec(watched.stdout);
  t.ok(archive, watched.stdout);
  t.ok(readdirSync(path.join(d, "backups")).includes(archive?.[1] ?? "?"), "the archive is there");

  const refused = run(["/usr/bin/abs", "-s", socket, "status"], { as: other });
  t.equal(refused.status, 3);
  t.equal(
    refused.stderr,
    `abs: cannot reach the master on ${socket}: permission denied: the socket's mode decides who may administer; socket path from --socket\n`,
  );

  t.equal(await slave.stop(), 0, "the slave stops on SIGTERM");
  t.equal(await master.stop(), 0, "the master stops on SIGTERM");
}
