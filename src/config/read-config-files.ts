// The only file of src/config that touches the file system: it reads the
// text that the pure loaders check. master.conf comes first, then every
// jobs.d/*.conf next to it in name order (byte order of the names, the same
// on every host, whatever the locale), so "the first definition" and "the
// duplicate" are always the same files.
//
// Skipped in jobs.d: names starting with "." (editor lock and swap files such
// as .#home.conf), names not ending in .conf (home.conf~, home.conf.orig),
// and anything that is not a regular file (after following symlinks).
// A missing jobs.d is fine: no definitions outside master.conf.
//
// What the daemons read is checked first (storage/trusted-file.ts, as sshd's
// StrictModes): master.conf, jobs.d itself and each of its files, slave.conf
// and the key files a config names are refused when owned by anyone but
// root or the daemon's user, or writable by group or others. A symlink in
// jobs.d is followed only to a file directly in jobs.d (the link of one
// definition file to another): one leading out of it is refused, since
// whoever may write where it points would be writing the master's orders.
// Every refusal in jobs.d is reported, not only the first.

import { constants, type Stats } from "node:fs";
import { lstat, open, readdir, realpath, stat } from "node:fs/promises";
import path from "node:path";
import { ConfigError, describeError, hasCode } from "../errors.js";
import { assertTrusted, checkTrustedPath } from "../storage/trusted-file.js";
import type { ConfigFile } from "./master-config.js";

/** Files larger than this are refused before being read: no config file is that big. */
export const MAX_CONFIG_FILE_BYTES = 16 * 1024 * 1024;

/** The jobs.d directory that goes with a master.conf path. */
export function jobsDirOf(masterConfPath: string): string {
  return path.join(path.dirname(masterConfPath), "jobs.d");
}

export interface ReadOptions {
  /**
   * Refuse a file that is not trusted (storage/trusted-file.ts). Default
   * true; false only for `abs`, which reads master.conf for admin_socket as
   * whatever user runs it and takes no orders from it.
   */
  strict?: boolean;
  /** What the file is, in the refusal ("config file", "job definition file"). */
  what?: string;
}

/**
 * Reads one config file as UTF-8 text (bytes that are not UTF-8 become
 * U+FFFD, which the tokenizer reports with the line). Throws ConfigError
 * naming the file when it cannot be read or is not trusted. The check is on
 * the descriptor that is then read, so it is of the file that is read.
 */
export async function readConfigFile(file: string, opts: ReadOptions = {}): Promise<ConfigFile> {
  let handle;
  try {
    // Non-blocking: a FIFO put in the file's place must not hang the daemon.
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new ConfigError(`${file}: cannot read: ${describeError(err)}`, { file });
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new ConfigError(`${file}: not a regular file`, { file });
    if (opts.strict !== false) assertTrusted(file, info, opts.what ?? "config file");
    if (info.size > MAX_CONFIG_FILE_BYTES) {
      throw new ConfigError(
        `${file}: ${info.size} bytes, more than a config file may hold (${MAX_CONFIG_FILE_BYTES})`,
        { file },
      );
    }
    const bytes = await handle.readFile();
    return { file, text: bytes.toString("utf8") };
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${file}: cannot read: ${describeError(err)}`, { file });
  } finally {
    await handle.close();
  }
}

/**
 * The file a jobs.d entry stands for: itself, or the target of a symlink if
 * that lies directly in jobs.d. Null when there is nothing to read (gone,
 * a dangling link). Throws ConfigError for a link out of jobs.d.
 */
async function entryFile(file: string, realDir: string): Promise<string | null> {
  let info: Stats;
  try {
    info = await lstat(file);
  } catch (err) {
    // Removed between readdir and lstat (chokidar reloads race with edits): skip it.
    if (hasCode(err, "ENOENT")) return null;
    throw new ConfigError(`${file}: cannot read: ${describeError(err)}`, { file });
  }
  if (!info.isSymbolicLink()) return file;
  let target: string;
  try {
    target = await realpath(file);
  } catch (err) {
    if (hasCode(err, "ENOENT")) return null; // dangling
    throw new ConfigError(`${file}: cannot follow the link: ${describeError(err)}`, { file });
  }
  if (path.dirname(target) !== realDir) {
    throw new ConfigError(
      `job definition file ${file} is refused: a symlink to ${target}, outside ${path.dirname(file)}; ABS follows links in jobs.d only to files in jobs.d: copy the file in`,
      { file },
    );
  }
  return target;
}

/** master.conf, then jobs.d/*.conf in name order. File names are as given, joined with jobs.d/. */
export async function readMasterConfigFiles(masterConfPath: string): Promise<ConfigFile[]> {
  const files = [await readConfigFile(masterConfPath)];
  const dir = jobsDirOf(masterConfPath);
  let dirInfo: Stats;
  let names: string[];
  try {
    dirInfo = await stat(dir);
    names = await readdir(dir);
  } catch (err) {
    if (hasCode(err, "ENOENT")) return files;
    throw new ConfigError(`${dir}: cannot list: ${describeError(err)}`, { file: dir });
  }
  // Whoever may write in jobs.d may add definitions.
  assertTrusted(dir, dirInfo, "the job definitions directory");
  const realDir = await realpath(dir);
  const confs = names
    .filter((n) => n.endsWith(".conf") && !n.startsWith("."))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const refused: string[] = [];
  for (const n of confs) {
    const file = path.join(dir, n);
    try {
      const real = await entryFile(file, realDir);
      if (real === null) continue;
      let isFile: boolean;
      try {
        isFile = (await stat(real)).isFile();
      } catch (err) {
        if (hasCode(err, "ENOENT")) continue;
        throw new ConfigError(`${file}: cannot read: ${describeError(err)}`, { file });
      }
      if (!isFile) continue;
      const read = await readConfigFile(real, { what: "job definition file" });
      files.push({ file, text: read.text });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      refused.push(err.message);
    }
  }
  if (refused.length > 0) {
    throw new ConfigError(refused.join("\n"), { file: dir });
  }
  return files;
}

/** The key files a daemon's config names, each with what it is, for checkKeyFiles. */
export interface KeyFile {
  file: string;
  what: string;
}

/**
 * Refuses key files that are not trusted (storage/trusted-file.ts), every
 * one named. With `missingOk` (the daemons' -t), a file that does not exist
 * yet passes: the start reports it.
 */
export async function checkKeyFiles(
  keys: readonly KeyFile[],
  opts: { missingOk?: boolean } = {},
): Promise<void> {
  const refused: string[] = [];
  for (const { file, what } of keys) {
    try {
      await checkTrustedPath(file, what, opts);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      refused.push(err.message);
    }
  }
  if (refused.length > 0) throw new ConfigError(refused.join("\n"), { file: keys[0]?.file });
}
