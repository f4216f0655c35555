// A slave's own key: what a slave holds instead of the realm key.
//
// A master holds the realm key R and derives the key of slave N when N says
// hello; the slave holds only that key, made on the master's host by
// `abs keygen --slave N FILE` and copied to the slave. Both directions of
// the challenge-response (realm-key.ts) use it, so:
//   - a slave's key proves that slave's name and no other: a host that
//     holds green-acres's key cannot register as db1;
//   - the master's proof towards green-acres is made with green-acres's
//     key: a host holding db1's key cannot pose as the master to
//     green-acres, and one holding green-acres's key can pose as the master
//     to green-acres alone (the master's certificate pin, master_fingerprint,
//     closes that too).
//
//   key(N) = HKDF-SHA256(ikm = R, salt = "", info = DERIVATION_LABEL | 0x00 | N, 32 bytes)
//
// HKDF (RFC 5869), written out as its two HMACs: the extract step, PRK =
// HMAC(salt, R), depends on the realm key alone and is kept per loaded key,
// so a handshake pays for the expand step only, one HMAC of a few
// microseconds (node's hkdfSync costs some 55 us a call here, most of it
// looking up the algorithm; the test checks the two agree). The label is
// versioned so a later derivation can live beside this one. N is a slave
// name (letters, digits, "-", "_", "."), so the 0x00 cannot be part of it.
//
// File format, one line, the name in it so that a key copied to the wrong
// host is refused by name rather than failing every connection:
//
//   abs-slave-key 1 <name> <base64 of 32 bytes>\n
//
// Mode 0600 or stricter, as the realm key. Pure except writeSlaveKey and
// loadSlaveKey, which touch the file.

import { createHmac } from "node:crypto";
import { ConfigError } from "../errors.js";
import { Invalid, name as slaveNameParser } from "../config/values.js";
import { readSecretFile, writeSecretFile, type RealmKey } from "./realm-key.js";

/** The HKDF info label of the derivation, before the slave's name. */
export const DERIVATION_LABEL = "abs-slave-key-v1";
/** Bytes in a slave's key. */
export const SLAVE_KEY_BYTES = 32;

const MAGIC = "abs-slave-key";
const REALM_MAGIC = "abs-realm-key";
const FORMAT_VERSION = 1;

/** A slave's key. `source` names where it came from, for messages; the bytes are never logged. */
export interface SlaveKey {
  /** The slave the key belongs to. */
  readonly name: string;
  readonly bytes: Buffer;
  readonly source: string;
}

/** HKDF's extract step of each realm key loaded: HMAC-SHA256 with an empty salt (32 zero bytes). */
const extracted = new WeakMap<RealmKey, Buffer>();

/** The key of slave `name` in the realm of `realmKey`: HKDF-SHA256, one HMAC per call. */
export function deriveSlaveKey(realmKey: RealmKey, name: string): SlaveKey {
  let prk = extracted.get(realmKey);
  if (prk === undefined) {
    prk = createHmac("sha256", Buffer.alloc(32)).update(realmKey.bytes).digest();
    extracted.set(realmKey, prk);
  }
  // Expand: one block, T(1) = HMAC(PRK, info | 0x01), is the 32 bytes wanted.
  const bytes = createHmac("sha256", prk)
    .update(DERIVATION_LABEL, "utf8")
    .update(Buffer.from([0]))
    .update(name, "utf8")
    .update(Buffer.from([1]))
    .digest();
  return { name, bytes, source: `the key of slave ${name} derived from ${realmKey.source}` };
}

/** The text of a slave key file. */
export function formatSlaveKey(key: SlaveKey): string {
  return `${MAGIC} ${FORMAT_VERSION} ${key.name} ${key.bytes.toString("base64")}\n`;
}

/** How to make a slave's key, for messages: `file` is where the slave reads it. */
export function slaveKeyHowTo(name: string, file: string): string {
  return `on the master's host run \`abs keygen --slave ${name} ${name}.key\` and copy ${name}.key to this host as ${file} (mode 0600)`;
}

/**
 * Parses the text of a slave key file. Pure: throws ConfigError naming
 * `source` and what is wrong, never echoing key material. A realm key file
 * is refused with a message of its own: a slave must not hold it.
 */
export function parseSlaveKey(text: string, source: string, forName = "NAME"): SlaveKey {
  const line = text.endsWith("\n") ? text.slice(0, -1) : text;
  const parts = line.split(" ");
  if (parts[0] === REALM_MAGIC) {
    throw new ConfigError(
      `key file ${source} holds the realm key: a slave must hold only its own key, since whoever holds the realm key can pose as the master to every slave; ${slaveKeyHowTo(forName, source)}, then remove the realm key from this host`,
      { file: source },
    );
  }
  const bad = (why: string): ConfigError =>
    new ConfigError(
      `slave key file ${source} ${why}; make a new one: ${slaveKeyHowTo(forName, source)}`,
      { file: source },
    );
  if (line.includes("\n")) throw bad("has more than one line");
  if (parts[0] !== MAGIC) throw bad(`does not start with "${MAGIC}"`);
  if (parts.length !== 4) {
    throw bad(`is not of the form "${MAGIC} ${FORMAT_VERSION} <name> <base64>"`);
  }
  if (parts[1] !== String(FORMAT_VERSION)) {
    throw bad(
      `has format version ${JSON.stringify(parts[1]).slice(0, 20)}; this ABS reads version ${FORMAT_VERSION}`,
    );
  }
  const name = slaveNameParser(parts[2]);
  if (name instanceof Invalid) throw bad(`names no usable slave (${name.why})`);
  const encoded = parts[3];
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw bad("holds a key that is not base64");
  const bytes = Buffer.from(encoded, "base64");
  if (bytes.length !== SLAVE_KEY_BYTES || bytes.toString("base64") !== encoded) {
    throw bad(`holds a key of ${bytes.length} bytes; a slave key is ${SLAVE_KEY_BYTES} bytes`);
  }
  return { name, bytes, source };
}

/**
 * Writes the key of slave `name`, derived from `realmKey`, to `file`
 * (mode 0600, never over an existing file).
 */
export async function writeSlaveKey(realmKey: RealmKey, name: string, file: string): Promise<void> {
  const checked = slaveNameParser(name);
  if (checked instanceof Invalid) {
    throw new ConfigError(`slave name ${JSON.stringify(name)}: ${checked.why}`);
  }
  await writeSecretFile(
    file,
    formatSlaveKey(deriveSlaveKey(realmKey, checked)),
    "slave key file",
    `slave ${checked} holds a copy; it keeps working with it, since the same realm key and name give the same key`,
  );
}

/**
 * Reads the key file of slave `name`. Refuses a file of the wrong mode or
 * format, a realm key, and the key of another slave.
 */
export async function loadSlaveKey(file: string, name: string): Promise<SlaveKey> {
  const text = await readSecretFile(file, "slave key file", slaveKeyHowTo(name, file));
  const key = parseSlaveKey(text, file, name);
  if (key.name !== name) {
    throw new ConfigError(
      `slave key file ${file} is the key of slave "${key.name}", but this slave is named "${name}"; ${slaveKeyHowTo(name, file)}`,
      { file },
    );
  }
  return key;
}
