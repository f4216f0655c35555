// `abs keygen` and `abs fingerprint`, run as the built executable.

import { execFile } from "node:child_process";
import { access, constants, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import t from "tap";
import { loadRealmKey } from "../../src/auth/realm-key.js";
import { deriveSlaveKey, loadSlaveKey } from "../../src/auth/slave-key.js";
import { loadOrCreateMasterTls } from "../../src/auth/tls.js";
import { tempDir } from "../helpers/tmp.js";

const ABS = fileURLToPath(new URL("../../bin/abs.js", import.meta.url));
const execFileP = promisify(execFile);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function abs(...args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileP(ABS, args, { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

t.test("the built abs is executable", async (t) => {
  await access(ABS, constants.X_OK);
  t.match(await readFile(ABS, "utf8"), /^#!\/usr\/bin\/env node\n/);
});

t.test("abs keygen", async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, "realm.key");
  const made = await abs("keygen", file);
  t.equal(made.code, 0);
  t.match(made.stdout, `wrote a new realm key to ${file} (mode 0600)`);
  t.equal((await stat(file)).mode & 0o777, 0o600);
  const text = await readFile(file, "utf8");
  t.match(text, /^abs-realm-key 1 \S{44}\n$/);

  const again = await abs("keygen", file);
  t.equal(again.code, 1, "refuses to overwrite");
  t.equal(
    again.stderr,
    `abs: realm key file ${file} already exists; it was not overwritten (remove it first if you really mean to replace it: every slave will need a new key made from the new realm key)\n`,
  );
  t.equal(await readFile(file, "utf8"), text);

  const unknown = await abs("keygen", "--force", path.join(dir, "x"));
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown option '--force'/);

  const missing = await abs("keygen");
  t.equal(missing.code, 2);
  t.match(missing.stderr, /missing required argument 'file'/);

  const extra = await abs("keygen", path.join(dir, "a"), path.join(dir, "b"));
  t.equal(extra.code, 2);
  t.match(extra.stderr, /too many arguments/);
});

t.test("abs keygen --slave: the slave's own key, from the realm key", async (t) => {
  const dir = tempDir(t);
  const realm = path.join(dir, "realm.key");
  t.equal((await abs("keygen", realm)).code, 0);
  const file = path.join(dir, "db1.key");
  const made = await abs("keygen", "--slave", "db1", "--realm-key", realm, file);
  t.equal(made.code, 0, made.stderr);
  t.equal(
    made.stdout,
    `wrote the key of slave db1 (from ${realm}) to ${file} (mode 0600); copy it to db1 over a secure channel, as its key_file (default /etc/abs/slave.key), and remove it from here\n`,
  );
  t.equal((await stat(file)).mode & 0o777, 0o600);
  const key = await loadSlaveKey(file, "db1");
  t.same(key.bytes, deriveSlaveKey(await loadRealmKey(realm), "db1").bytes);
  t.match(await readFile(file, "utf8"), /^abs-slave-key 1 db1 \S{44}\n$/);

  const again = await abs("keygen", "--slave", "db1", "--realm-key", realm, file);
  t.equal(again.code, 1, "refuses to overwrite");
  t.match(again.stderr, /slave key file .* already exists; it was not overwritten/);

  const noRealm = await abs(
    "keygen",
    "--slave",
    "db1",
    "--realm-key",
    path.join(dir, "no.key"),
    path.join(dir, "x.key"),
  );
  t.equal(noRealm.code, 1);
  t.match(noRealm.stderr, /^abs: realm key file .*no\.key does not exist/);

  const badName = await abs(
    "keygen",
    "--slave",
    "../db1",
    "--realm-key",
    realm,
    path.join(dir, "y.key"),
  );
  t.equal(badName.code, 2);
  t.match(badName.stderr, /\.\.\/db1/);

  const alone = await abs("keygen", "--realm-key", realm, path.join(dir, "z.key"));
  t.equal(alone.code, 2);
  t.match(alone.stderr, /--realm-key is used only with --slave/);
});

t.test("abs fingerprint", async (t) => {
  const dir = tempDir(t);
  const material = await loadOrCreateMasterTls({ stateDir: dir, hostName: "m" });
  const run = await abs("fingerprint", material.certFile);
  t.equal(run.code, 0);
  t.equal(run.stdout, `${material.fingerprint}\n`);

  const bad = await abs("fingerprint", path.join(dir, "nope.pem"));
  t.equal(bad.code, 1);
  t.equal(bad.stderr, `abs: certificate ${path.join(dir, "nope.pem")} does not exist\n`);
  t.notMatch(bad.stderr, /\bat .*\.js:\d+/, "no stack trace");

  const unknown = await abs("frobnicate");
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown command 'frobnicate'/);
});
