// Realm key files (format, mode, refusals) and the MAC layout.

import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { refusal } from "../helpers/refusal.js";
import t from "tap";
import { callAsNobody, runningAsRoot } from "../helpers/as-nobody.js";
import {
  MASTER_LABEL,
  SLAVE_LABEL,
  formatRealmKey,
  generateRealmKey,
  loadRealmKey,
  macMatches,
  parseRealmKey,
  realmKeyFromBytes,
  realmKeyMac,
} from "../../src/auth/realm-key.js";
import { tempDir } from "../helpers/tmp.js";

t.test("generateRealmKey writes 32 random bytes, mode 0600, and never overwrites", async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, "realm.key");
  await generateRealmKey(file);
  t.equal((await stat(file)).mode & 0o777, 0o600);
  const text = await readFile(file, "utf8");
  t.match(text, /^abs-realm-key 1 [A-Za-z0-9+/]{43}=\n$/);
  const key = await loadRealmKey(file);
  t.equal(key.bytes.length, 32);
  t.equal(key.source, file);

  const err = await refusal(generateRealmKey(file));
  t.equal(err.code, "CONFIG");
  t.match(err.message, /realm key file .*realm\.key already exists; it was not overwritten/);
  t.equal(await readFile(file, "utf8"), text, "the old key is untouched");

  const other = path.join(dir, "other.key");
  await generateRealmKey(other);
  t.not(
    (await loadRealmKey(other)).bytes.toString("hex"),
    key.bytes.toString("hex"),
    "keys are random",
  );

  const missingDir = await refusal(generateRealmKey(path.join(dir, "nope", "k")));
  t.match(missingDir.message, /directory .*nope does not exist/);
});

t.test("generateRealmKey ignores a permissive umask", async (t) => {
  const dir = tempDir(t);
  const old = process.umask(0o000);
  try {
    await generateRealmKey(path.join(dir, "k"));
  } finally {
    process.umask(old);
  }
  t.equal((await stat(path.join(dir, "k"))).mode & 0o777, 0o600);
});

t.test("loadRealmKey refusals", async (t) => {
  const dir = tempDir(t);
  const good = formatRealmKey(randomBytes(32));
  const write = async (name: string, text: string, mode = 0o600): Promise<string> => {
    const file = path.join(dir, name);
    await writeFile(file, text, { mode });
    await chmod(file, mode);
    return file;
  };
  const cases: Array<[string, () => Promise<string>, RegExp]> = [
    [
      "missing",
      () => Promise.resolve(path.join(dir, "absent.key")),
      /absent\.key does not exist; create it with `abs keygen .*absent\.key`/,
    ],
    [
      "group-readable",
      () => write("group.key", good, 0o640),
      /group\.key has mode 0640: group or others can read or change it; refusing to use it\. Run `chmod 600 .*group\.key`$/,
    ],
    ["world-readable", () => write("world.key", good, 0o604), /has mode 0604.*chmod 600/],
    [
      "wrong magic",
      () => write("magic.key", "ssh-rsa AAAA\n"),
      /does not start with "abs-realm-key"/,
    ],
    [
      "wrong version",
      () => write("version.key", good.replace(" 1 ", " 2 ")),
      /has format version "2"; this ABS reads version 1/,
    ],
    [
      "short key",
      () => write("short.key", `abs-realm-key 1 ${randomBytes(16).toString("base64")}\n`),
      /holds a key of 16 bytes; a realm key is 32 bytes/,
    ],
    [
      "not base64",
      () => write("b64.key", "abs-realm-key 1 !!!!\n"),
      /holds a key that is not base64/,
    ],
    ["two lines", () => write("lines.key", `${good}${good}`), /has more than one line/],
    ["extra field", () => write("extra.key", good.replace("\n", " x\n")), /is not of the form/],
    [
      "a directory",
      async () => {
        const d = path.join(dir, "dir.key");
        await mkdir(d, { mode: 0o700 });
        return d;
      },
      /dir\.key is not a regular file/,
    ],
  ];
  for (const [name, make, message] of cases) {
    const err = await refusal(loadRealmKey(await make()));
    t.equal(err.code, "CONFIG", name);
    t.match(err.message, message, name);
    t.notMatch(err.message, good.split(" ")[2].trim(), `${name}: no key material in the message`);
  }
  t.equal(
    (await loadRealmKey(await write("ok.key", good))).bytes.toString("base64"),
    good.split(" ")[2].trim(),
  );
  t.equal(parseRealmKey(good.trimEnd(), "x").bytes.length, 32, "the final newline is optional");
});

t.test("an unreadable key file", async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, "locked.key");
  await writeFile(file, formatRealmKey(randomBytes(32)), { mode: 0o000 });
  if (runningAsRoot()) {
    // Root reads any file: try it as nobody.
    await chmod(dir, 0o755);
    const outcome = callAsNobody(
      new URL("../../src/auth/realm-key.js", import.meta.url),
      "loadRealmKey",
      [file],
    );
    t.match(outcome, /is not readable by this process/);
  } else {
    const err = await refusal(loadRealmKey(file));
    t.match(err.message, /is not readable by this process/);
  }
});

t.test("the MACs: labels, fields and lengths all count", (t) => {
  const key = realmKeyFromBytes(randomBytes(32));
  const input = {
    masterNonce: randomBytes(32),
    slaveNonce: randomBytes(32),
    name: "slave1",
    ekm: randomBytes(32),
  };
  const mac = realmKeyMac(key, SLAVE_LABEL, input);
  t.equal(mac.length, 32);
  t.ok(macMatches(mac, realmKeyMac(key, SLAVE_LABEL, { ...input })), "deterministic");
  t.notOk(macMatches(mac, realmKeyMac(key, MASTER_LABEL, input)), "the labels differ");
  t.notOk(
    macMatches(mac, realmKeyMac(realmKeyFromBytes(randomBytes(32)), SLAVE_LABEL, input)),
    "the key counts",
  );
  t.notOk(
    macMatches(mac, realmKeyMac(key, SLAVE_LABEL, { ...input, name: "slave2" })),
    "the name counts",
  );
  t.notOk(
    macMatches(mac, realmKeyMac(key, SLAVE_LABEL, { ...input, ekm: randomBytes(32) })),
    "the binding counts",
  );
  t.notOk(
    macMatches(
      mac,
      realmKeyMac(key, SLAVE_LABEL, {
        ...input,
        masterNonce: input.slaveNonce,
        slaveNonce: input.masterNonce,
      }),
    ),
    "the nonces' order counts",
  );
  // Length prefixes: moving a byte from one field to the next changes the MAC.
  const a = realmKeyMac(key, SLAVE_LABEL, {
    ...input,
    masterNonce: Buffer.from("ab"),
    slaveNonce: Buffer.from("c"),
  });
  const b = realmKeyMac(key, SLAVE_LABEL, {
    ...input,
    masterNonce: Buffer.from("a"),
    slaveNonce: Buffer.from("bc"),
  });
  t.notOk(macMatches(a, b), "fields cannot shift");
  t.notOk(macMatches(mac, mac.subarray(0, 16)), "a short MAC does not match");
  t.throws(() => realmKeyFromBytes(randomBytes(31)), /a realm key is 32 bytes, got 31/);
  t.end();
});
