// The realm key: a secret per realm (`abs keygen`), held by the masters of
// the realm (and the fake master) only, and the MACs of the mutual
// challenge-response on the slave link. A slave holds its own key, derived
// from the realm key and its name (slave-key.ts), never the realm key: a
// slave's key proves that slave, and the master's proof towards it, and
// nothing else, so a slave host can pose neither as the master towards
// another slave nor as another slave.
//
// File format, one line of text so an operator can see what the file is:
//
//   abs-realm-key 1 <base64 of 32 random bytes>\n
//
// The file must be readable by its owner only (mode 0600 or stricter): a
// group- or world-readable key is refused rather than used, because anyone
// who can read it can pose as any slave and as the master.
//
// The exchange (slave-handshake.ts and master-handshake.ts drive it), with
// K = the slave's key (the master derives it from the realm key and name):
//
//   slave  → hello{name, mode: "realm-key"}
//   master → auth-challenge{Nm}                      Nm: 32 fresh random bytes
//   slave  → auth-response{Ns, MAC(SLAVE_LABEL)}     Ns: 32 fresh random bytes
//   master → auth-proof{MAC(MASTER_LABEL)}           after checking the slave's MAC
//   master → auth-ok
//
//   MAC(label) = HMAC-SHA256(K, lp(label) | lp(Nm) | lp(Ns) | lp(name) | lp(ekm))
//   lp(x)      = uint32 big-endian length of x, then x
//
// `ekm` is 32 bytes of TLS exported keying material (RFC 8446 section 7.5,
// label EKM_LABEL) of the connection the exchange runs on. Both ends of one
// TLS session compute the same value; a relay that terminates TLS towards
// the slave and opens its own TLS session to the master sees two different
// values, so the MACs it forwards do not verify on the other side. The
// length prefixes keep fields from sliding into each other (a name ending
// in bytes that look like the start of ekm, say). The two labels keep a
// slave's MAC from ever being usable as the master's proof, and each side's
// fresh nonce keeps an old MAC from being replayed.
//
// Pure except the functions that read and write files (loadRealmKey,
// generateRealmKey, readSecretFile, writeSecretFile).

import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { open, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { AbsError, BadArgumentError, ConfigError, describeError, errorCode } from "../errors.js";
import { fsyncDir } from "../storage/durable-file.js";

/** Bytes in a realm key. */
export const REALM_KEY_BYTES = 32;
/** Bytes in each nonce of the challenge-response. */
export const NONCE_BYTES = 32;
/** Bytes of TLS exported keying material the MACs are bound to. */
export const EKM_BYTES = 32;
/** The TLS exporter label (RFC 5705/8446) of the channel binding. */
export const EKM_LABEL = "EXPORTER-abs-realm-key-v1";
/** Domain separation of the slave's MAC. */
export const SLAVE_LABEL = "abs-slave-v1";
/** Domain separation of the master's proof. */
export const MASTER_LABEL = "abs-master-v1";

const MAGIC = "abs-realm-key";
const FORMAT_VERSION = 1;

/** A loaded realm key. `source` names where it came from, for messages; the bytes are never logged. */
export interface RealmKey {
  readonly bytes: Buffer;
  readonly source: string;
}

/** The text of a key file holding `bytes`. */
export function formatRealmKey(bytes: Buffer): string {
  if (bytes.length !== REALM_KEY_BYTES) {
    throw new BadArgumentError(`a realm key is ${REALM_KEY_BYTES} bytes, got ${bytes.length}`);
  }
  return `${MAGIC} ${FORMAT_VERSION} ${bytes.toString("base64")}\n`;
}

/**
 * Parses the text of a key file. Pure: throws ConfigError naming `source`
 * and what is wrong, never echoing key material.
 */
export function parseRealmKey(text: string, source: string): RealmKey {
  const bad = (why: string): ConfigError =>
    new ConfigError(
      `realm key file ${source} ${why}; make a new one with \`abs keygen FILE\` on the master's host (the realm key stays on masters; each slave gets its own key, \`abs keygen --slave NAME FILE\`)`,
      { file: source },
    );
  const line = text.endsWith("\n") ? text.slice(0, -1) : text;
  if (line.includes("\n")) throw bad("has more than one line");
  const parts = line.split(" ");
  if (parts[0] !== MAGIC) throw bad(`does not start with "${MAGIC}"`);
  if (parts.length !== 3) throw bad(`is not of the form "${MAGIC} ${FORMAT_VERSION} <base64>"`);
  if (parts[1] !== String(FORMAT_VERSION)) {
    throw bad(
      `has format version ${JSON.stringify(parts[1]).slice(0, 20)}; this ABS reads version ${FORMAT_VERSION}`,
    );
  }
  const encoded = parts[2];
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw bad("holds a key that is not base64");
  const bytes = Buffer.from(encoded, "base64");
  if (bytes.length !== REALM_KEY_BYTES || bytes.toString("base64") !== encoded) {
    throw bad(`holds a key of ${bytes.length} bytes; a realm key is ${REALM_KEY_BYTES} bytes`);
  }
  return { bytes, source };
}

/**
 * Writes a new realm key of 32 random bytes to `file`, mode 0600. Refuses
 * to overwrite an existing file: a new realm key changes every slave's key.
 */
export async function generateRealmKey(file: string): Promise<void> {
  await writeSecretFile(
    file,
    formatRealmKey(randomBytes(REALM_KEY_BYTES)),
    "realm key file",
    "every slave will need a new key made from the new realm key",
  );
}

/**
 * Reads a realm key file. Refuses, with a message saying what to do: a
 * missing or unreadable file, something other than a regular file, a file
 * readable or writable by group or others, and a file in the wrong format.
 */
export async function loadRealmKey(file: string): Promise<RealmKey> {
  const text = await readSecretFile(
    file,
    "realm key file",
    `create it with \`abs keygen ${file}\` on the master's host`,
  );
  return parseRealmKey(text, file);
}

/**
 * Reads a file holding a secret: a regular file, readable and writable by
 * its owner only. `what` names the kind of file in messages ("realm key
 * file"), `create` says how to make a missing one.
 */
export async function readSecretFile(file: string, what: string, create: string): Promise<string> {
  let info;
  try {
    info = await stat(file);
  } catch (err) {
    const code = errorCode(err);
    if (code === "ENOENT") {
      throw new ConfigError(`${what} ${file} does not exist; ${create}`, { file });
    }
    throw new ConfigError(`${what} ${file} cannot be read: ${describeError(err)}`, { file });
  }
  if (!info.isFile()) throw new ConfigError(`${what} ${file} is not a regular file`, { file });
  if ((info.mode & 0o077) !== 0) {
    throw new ConfigError(
      `${what} ${file} has mode ${(info.mode & 0o777).toString(8).padStart(4, "0")}: group or others can read or change it; refusing to use it. Run \`chmod 600 ${file}\``,
      { file },
    );
  }
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const code = errorCode(err);
    const why =
      code === "EACCES"
        ? `is not readable by this process (uid ${process.getuid?.() ?? "?"})`
        : `cannot be read: ${describeError(err)}`;
    throw new ConfigError(`${what} ${file} ${why}`, { file });
  }
}

/**
 * Creates `file` with `text`, mode 0600, durably. Refuses to overwrite an
 * existing file (O_EXCL): replacing a key locks out whoever holds the old
 * one, so that must be a deliberate `rm` first (`replacing` says who).
 */
export async function writeSecretFile(
  file: string,
  text: string,
  what: string,
  replacing: string,
): Promise<void> {
  let handle;
  try {
    handle = await open(
      file,
      fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL,
      0o600,
    );
  } catch (err) {
    const code = errorCode(err);
    if (code === "EEXIST") {
      throw new ConfigError(
        `${what} ${file} already exists; it was not overwritten (remove it first if you really mean to replace it: ${replacing})`,
        { file },
      );
    }
    if (code === "ENOENT") {
      throw new ConfigError(
        `cannot create ${what} ${file}: directory ${path.dirname(file)} does not exist`,
        { file },
      );
    }
    throw new ConfigError(`cannot create ${what} ${file}: ${describeError(err)}`, { file });
  }
  try {
    // The umask may have narrowed the mode further, never widened it; chmod
    // anyway so the file is exactly 0600 whatever the umask.
    await handle.chmod(0o600);
    await handle.writeFile(text);
    await handle.sync();
  } catch (err) {
    throw new ConfigError(`cannot write ${what} ${file}: ${describeError(err)}`, { file });
  } finally {
    await handle.close();
  }
  // Created in place, not renamed (O_EXCL is the refusal to overwrite), so
  // the new name is durable only once its directory is fsynced.
  try {
    await fsyncDir(path.dirname(file));
  } catch (err) {
    throw new ConfigError(
      `cannot fsync directory ${path.dirname(file)} of ${what} ${file}: ${describeError(err)}`,
      { file },
    );
  }
}

/** A realm key given as bytes (e.g. by a test or an embedding program). */
export function realmKeyFromBytes(bytes: Buffer, source = "(given key)"): RealmKey {
  if (bytes.length !== REALM_KEY_BYTES) {
    throw new BadArgumentError(
      `a realm key is ${REALM_KEY_BYTES} bytes, got ${bytes.length} (${source})`,
      "key",
    );
  }
  return { bytes: Buffer.from(bytes), source };
}

/** What each MAC covers, besides its label. */
export interface MacInput {
  /** The master's nonce (auth-challenge). */
  masterNonce: Buffer;
  /** The slave's nonce (auth-response). */
  slaveNonce: Buffer;
  /** The slave's name as claimed in hello. */
  name: string;
  /** TLS exported keying material of the connection (EKM_LABEL, EKM_BYTES). */
  ekm: Buffer;
}

function lengthPrefixed(part: Buffer): Buffer[] {
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(part.length);
  return [length, part];
}

/** The key a link MAC is made with: a slave's key (slave-key.ts). */
export interface MacKey {
  readonly bytes: Buffer;
}

/** HMAC-SHA256 of the length-prefixed fields under `label`. */
export function realmKeyMac(
  key: MacKey,
  label: typeof SLAVE_LABEL | typeof MASTER_LABEL,
  input: MacInput,
): Buffer {
  if (input.ekm.length !== EKM_BYTES) {
    throw new AbsError("INTERNAL", `channel binding must be ${EKM_BYTES} bytes`);
  }
  const hmac = createHmac("sha256", key.bytes);
  for (const part of [
    Buffer.from(label, "utf8"),
    input.masterNonce,
    input.slaveNonce,
    Buffer.from(input.name, "utf8"),
    input.ekm,
  ]) {
    for (const piece of lengthPrefixed(part)) hmac.update(piece);
  }
  return hmac.digest();
}

/** Constant-time comparison of a received MAC with the expected one (any length received). */
export function macMatches(expected: Buffer, received: Buffer): boolean {
  // timingSafeEqual needs equal lengths; the length of a MAC is no secret.
  return received.length === expected.length && timingSafeEqual(expected, received);
}
