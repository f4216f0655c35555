// Whether a file the daemons take orders or secrets from may be trusted, as
// sshd's StrictModes decides for authorized_keys: master.conf, jobs.d and its
// files, slave.conf, key files (realm key, keytab, TLS key, the disaster
// log's key) and a disaster log to import. Anyone who can change one of these
// can make the daemon run what they like, or pose as a slave, so one that
// someone else could have changed is refused rather than read:
//
// - owned by anyone but root or the user the daemon runs as (a file of
//   `nobody` in jobs.d would be that user's orders to a root daemon);
// - writable by its group or by others (mode & 0o022), whoever owns it.
//
// Every loader calls trustProblem (through assertTrusted or
// checkTrustedPath) on the fstat of the descriptor it then reads from, or
// on a stat just before, so the check and the read see the same file.
// Parent directories are not walked: only jobs.d, a directory ABS itself
// reads entries from, is checked as a directory.

import type { Stats } from "node:fs";
import { stat } from "node:fs/promises";
import { ConfigError, describeError, hasCode } from "../errors.js";

/** What the check needs of a file's metadata. */
export interface OwnerAndMode {
  uid: number;
  mode: number;
}

/** The user the daemon runs as: root when the platform has no uids. */
export function daemonUid(): number {
  return process.geteuid?.() ?? 0;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/**
 * Why a file of this owner and mode must not be trusted by a daemon running
 * as `uid`, or null if it may be. Pure. The reason says how to fix it.
 */
export function trustProblem(file: string, info: OwnerAndMode, uid = daemonUid()): string | null {
  if (info.uid !== 0 && info.uid !== uid) {
    const owners = uid === 0 ? "root" : `root or uid ${uid} (this daemon's user)`;
    return `owned by uid ${info.uid}, not by ${owners}: anyone with that uid could change it; run \`chown ${uid === 0 ? "root" : uid} ${file}\` if its content is right`;
  }
  const writable = info.mode & 0o022;
  if (writable !== 0) {
    const who = writable === 0o022 ? "group and others" : writable === 0o020 ? "group" : "others";
    return `writable by ${who} (mode ${octal(info.mode)}): anyone among them could change it; run \`chmod go-w ${file}\``;
  }
  return null;
}

/** Throws ConfigError `WHAT FILE: why` when trustProblem finds one. */
export function assertTrusted(file: string, info: OwnerAndMode, what: string): void {
  const why = trustProblem(file, info);
  if (why !== null) {
    throw new ConfigError(`${what} ${file} is refused: ${why}`, { file });
  }
}

/**
 * stat()s `file` and asserts it is trusted. With `missingOk`, a file that
 * does not exist passes (abs-master -t and abs-slave -t check configs before
 * the keys are installed); whatever reads it later reports it missing.
 */
export async function checkTrustedPath(
  file: string,
  what: string,
  opts: { missingOk?: boolean } = {},
): Promise<Stats | null> {
  let info: Stats;
  try {
    info = await stat(file);
  } catch (err) {
    if (opts.missingOk === true && hasCode(err, "ENOENT")) return null;
    throw new ConfigError(`${what} ${file} cannot be checked: ${describeError(err)}`, { file });
  }
  assertTrusted(file, info, what);
  return info;
}
