// `abs keygen` and `abs fingerprint`, run as the built executable.

import { execFile } from "node:child_process";
import { access, constants, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import t from "tap";
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
    `abs: realm key file ${file} already exists; it was not overwritten (remove it first if you really mean to replace the realm key: every slave will need the new one)\n`,
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
