// The key that authenticates each record of the disaster log, and the MAC
// that seals a record's line. The fake master writes every record with its
// MAC; `abs import-disaster-log` on the real master refuses a line whose MAC
// does not verify, so a line written by hand (or changed since) cannot mark
// a job succeeded.
//
//   key  = HKDF-SHA256(ikm = the key file's 32 bytes, salt = none,
//                      info = DISASTER_LOG_LABEL, 32 bytes)
//   line = <the record's JSON, without its closing brace>,"mac":"<hex>"}
//   mac  = HMAC-SHA256(key, the record's JSON)
//
// The key file is the realm key in realm-key mode, or `disaster_log_key_file`
// (made by `abs keygen`) when master.conf names one; with Kerberos there is
// no realm key, so it is required there. The label keeps the derived key
// apart from every other use of the same bytes (the handshake's MACs, the
// per-slave keys): no MAC of one kind verifies as another. The MAC is over
// the exact bytes the fake master wrote, so nothing has to be re-serialized
// to check it. Each record stands alone: lines may be lost or removed (a
// crash, an admin), never added or changed.
//
// Pure except loadDisasterLogKey, which reads the key file.

import { createHmac, hkdfSync } from "node:crypto";
import type { MasterConfig } from "../config/master-config.js";
import { ConfigError } from "../errors.js";
import { checkTrustedPath } from "../storage/trusted-file.js";
import { loadRealmKey, macMatches } from "./realm-key.js";

/** The HKDF info of the derivation; a new format of the log takes a new label. */
export const DISASTER_LOG_LABEL = "abs-disaster-log-v1";
/** Bytes of the derived key (the HMAC-SHA256 block's natural key size). */
export const DISASTER_LOG_KEY_BYTES = 32;

/** The derived key, and the file it comes from for messages. Never logged. */
export interface DisasterLogKey {
  readonly bytes: Buffer;
  readonly source: string;
}

/** Derives the disaster log's key from a key file's bytes. */
export function deriveDisasterLogKey(ikm: Buffer, source: string): DisasterLogKey {
  const bytes = Buffer.from(
    hkdfSync("sha256", ikm, Buffer.alloc(0), DISASTER_LOG_LABEL, DISASTER_LOG_KEY_BYTES),
  );
  return { bytes, source };
}

function macOf(key: DisasterLogKey, recordJson: string): string {
  return createHmac("sha256", key.bytes).update(recordJson, "utf8").digest("hex");
}

/** The line (without its newline) that records `recordJson`, a JSON object's text. */
export function sealRecord(key: DisasterLogKey, recordJson: string): string {
  if (!recordJson.startsWith("{") || !recordJson.endsWith("}") || recordJson === "{}") {
    throw new ConfigError("a disaster-log record must be a non-empty JSON object");
  }
  return `${recordJson.slice(0, -1)},"mac":"${macOf(key, recordJson)}"}`;
}

const MAC_SUFFIX = /,"mac":"([0-9a-f]{64})"\}$/;

/**
 * The record's JSON text of a sealed line, or why the line is refused
 * (no MAC, or one that does not verify under `key`).
 */
export function openRecord(
  key: DisasterLogKey,
  line: string,
): { recordJson: string } | { why: string } {
  const m = MAC_SUFFIX.exec(line);
  if (m === null) {
    return {
      why: 'no MAC (a record of the fake master ends with ,"mac":"<64 hex digits>"}): written by hand, or by an ABS that did not sign its disaster log',
    };
  }
  const recordJson = `${line.slice(0, m.index)}}`;
  const expected = Buffer.from(macOf(key, recordJson), "hex");
  if (!macMatches(expected, Buffer.from(m[1] ?? "", "hex"))) {
    return {
      why: `the MAC does not verify with the key derived from ${key.source}: the line was changed or written by hand, or by a fake master with another key`,
    };
  }
  return { recordJson };
}

/**
 * The key file whose bytes the disaster log's key derives from:
 * disaster_log_key_file, else the realm key. Throws ConfigError when there
 * is none (Kerberos without disaster_log_key_file).
 */
export function disasterLogKeyFile(config: MasterConfig): string {
  const file = config.disasterLogKeyFile ?? config.realmKeyFile;
  if (file === null) {
    throw new ConfigError(
      `${config.file}: auth = kerberos has no realm key to authenticate the disaster log with: set disaster_log_key_file to a key made with \`abs keygen FILE\` (the same file on the fake master and on the real master, which checks the records when it imports them)`,
      { file: config.file, field: "disaster_log_key_file" },
    );
  }
  return file;
}

/** Reads the key file the config names (trusted files only) and derives the key. */
export async function loadDisasterLogKey(config: MasterConfig): Promise<DisasterLogKey> {
  const file = disasterLogKeyFile(config);
  const what =
    config.disasterLogKeyFile === null
      ? "realm key file (realm_key_file)"
      : "disaster log key file (disaster_log_key_file)";
  // A missing file is reported by loadRealmKey, with how to make one.
  await checkTrustedPath(file, what, { missingOk: true });
  const ikm = await loadRealmKey(file);
  return deriveDisasterLogKey(ikm.bytes, file);
}
