// A slave's own key: the derivation against HKDF computed here by hand
// (RFC 5869 from HMAC), the file format with split, truncated and hostile
// text, and the files keygen writes.

import { createHmac, hkdfSync, randomBytes } from "node:crypto";
import { statSync, writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { realmKeyFromBytes } from "../../src/auth/realm-key.js";
import {
  DERIVATION_LABEL,
  deriveSlaveKey,
  formatSlaveKey,
  loadSlaveKey,
  parseSlaveKey,
  writeSlaveKey,
} from "../../src/auth/slave-key.js";
import { tempDir } from "../helpers/tmp.js";

/** HKDF-SHA256 with an empty salt and a 32-byte output, written out from RFC 5869. */
function hkdfByHand(ikm: Buffer, info: Buffer): Buffer {
  const prk = createHmac("sha256", Buffer.alloc(32)).update(ikm).digest();
  return createHmac("sha256", prk)
    .update(Buffer.concat([info, Buffer.from([1])]))
    .digest();
}

t.test("the key of a slave is HKDF-SHA256 of the realm key, the label and the name", (t) => {
  const realm = realmKeyFromBytes(Buffer.alloc(32, 7), "realm");
  const key = deriveSlaveKey(realm, "green-acres");
  const info = Buffer.from(`${DERIVATION_LABEL}\0green-acres`, "utf8");
  t.same(key.bytes, hkdfByHand(realm.bytes, info));
  t.same(
    key.bytes,
    Buffer.from(hkdfSync("sha256", realm.bytes, Buffer.alloc(0), info, 32)),
    "node's HKDF",
  );
  t.same(
    deriveSlaveKey(realm, "green-acres").bytes,
    key.bytes,
    "again, with the extract step kept",
  );
  t.equal(key.name, "green-acres");
  t.notSame(deriveSlaveKey(realm, "green-acre").bytes, key.bytes, "a name one letter shorter");
  t.notSame(deriveSlaveKey(realm, "green-acres.").bytes, key.bytes);
  t.notSame(
    deriveSlaveKey(realmKeyFromBytes(Buffer.alloc(32, 8)), "green-acres").bytes,
    key.bytes,
    "another realm",
  );
  t.notSame(key.bytes, realm.bytes, "never the realm key itself");
  t.end();
});

t.test("a key file round-trips; bad files are refused without echoing the key", (t) => {
  const key = deriveSlaveKey(realmKeyFromBytes(randomBytes(32)), "db1");
  const text = formatSlaveKey(key);
  t.match(text, /^abs-slave-key 1 db1 [A-Za-z0-9+/]{43}=\n$/);
  t.same(parseSlaveKey(text, "f"), { name: "db1", bytes: key.bytes, source: "f" });
  t.same(parseSlaveKey(text.trimEnd(), "f").bytes, key.bytes, "no final newline");
  const encoded = key.bytes.toString("base64");
  const cases: Array<[string, RegExp]> = [
    ["", /does not start with "abs-slave-key"/],
    [`abs-realm-key 1 ${encoded}\n`, /holds the realm key: a slave must hold only its own key/],
    [`abs-slave-key 1 db1\n`, /is not of the form "abs-slave-key 1 <name> <base64>"/],
    [`abs-slave-key 2 db1 ${encoded}\n`, /has format version "2"; this ABS reads version 1/],
    [`abs-slave-key 1 ../x ${encoded}\n`, /names no usable slave/],
    [`abs-slave-key 1 db1 ${encoded.slice(0, 20)}\n`, /holds a key of 15 bytes/],
    [`abs-slave-key 1 db1 ${encoded}\nsecond\n`, /has more than one line/],
    [`abs-slave-key 1 db1 ${encoded.replace(/.$/, "!")}\n`, /is not base64/],
    [`abs-slave-key 1 db1  ${encoded}\n`, /is not of the form/],
  ];
  for (const [bad, why] of cases) {
    t.throws(() => parseSlaveKey(bad, "/etc/abs/slave.key"), { code: "CONFIG", message: why }, bad);
    try {
      parseSlaveKey(bad, "/etc/abs/slave.key");
    } catch (err) {
      t.notMatch((err as Error).message, encoded, "the key is not in the message");
    }
  }
  // Every prefix of a good file is refused or is the good file itself.
  for (let i = 0; i < text.length - 1; i++) {
    t.throws(() => parseSlaveKey(text.slice(0, i), "f"), { code: "CONFIG" });
  }
  t.end();
});

t.test(
  "writeSlaveKey writes mode 0600, never over a file; loadSlaveKey checks the name",
  async (t) => {
    const dir = tempDir(t);
    const realm = realmKeyFromBytes(randomBytes(32), "realm");
    const file = path.join(dir, "db1.key");
    await writeSlaveKey(realm, "db1", file);
    t.equal(statSync(file).mode & 0o777, 0o600);
    t.same((await loadSlaveKey(file, "db1")).bytes, deriveSlaveKey(realm, "db1").bytes);
    await t.rejects(writeSlaveKey(realm, "db1", file), {
      message: /already exists; it was not overwritten/,
    });
    await t.rejects(loadSlaveKey(file, "db2"), {
      code: "CONFIG",
      message: /is the key of slave "db1", but this slave is named "db2"/,
    });
    await t.rejects(writeSlaveKey(realm, "no/slash", path.join(dir, "x.key")), {
      message: /slave name "no\/slash"/,
    });
    const open = path.join(dir, "open.key");
    writeFileSync(open, formatSlaveKey(deriveSlaveKey(realm, "db1")), { mode: 0o644 });
    await t.rejects(loadSlaveKey(open, "db1"), { message: /has mode 0644.*chmod 600/ });
  },
);
