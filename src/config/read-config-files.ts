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

import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { ConfigError, describeError } from "../errors.js";
import type { ConfigFile } from "./master-config.js";

/** Files larger than this are refused before being read: no config file is that big. */
export const MAX_CONFIG_FILE_BYTES = 16 * 1024 * 1024;

/** The jobs.d directory that goes with a master.conf path. */
export function jobsDirOf(masterConfPath: string): string {
  return path.join(path.dirname(masterConfPath), "jobs.d");
}

/**
 * Reads one config file as UTF-8 text (bytes that are not UTF-8 become
 * U+FFFD, which the tokenizer reports with the line). Throws ConfigError
 * naming the file when it cannot be read.
 */
export async function readConfigFile(file: string): Promise<ConfigFile> {
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new ConfigError(`${file}: not a regular file`, { file });
    if (info.size > MAX_CONFIG_FILE_BYTES) {
      throw new ConfigError(
        `${file}: ${info.size} bytes, more than a config file may hold (${MAX_CONFIG_FILE_BYTES})`,
        { file },
      );
    }
    const bytes = await readFile(file);
    return { file, text: bytes.toString("utf8") };
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${file}: cannot read: ${describeError(err)}`, { file });
  }
}

/** master.conf, then jobs.d/*.conf in name order. File names are as given, joined with jobs.d/. */
export async function readMasterConfigFiles(masterConfPath: string): Promise<ConfigFile[]> {
  const files = [await readConfigFile(masterConfPath)];
  const dir = jobsDirOf(masterConfPath);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return files;
    throw new ConfigError(`${dir}: cannot list: ${describeError(err)}`, { file: dir });
  }
  const confs = names
    .filter((n) => n.endsWith(".conf") && !n.startsWith("."))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const n of confs) {
    const file = path.join(dir, n);
    let isFile: boolean;
    try {
      isFile = (await stat(file)).isFile();
    } catch (err) {
      // Removed between readdir and stat (chokidar reloads race with edits): skip it.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw new ConfigError(`${file}: cannot read: ${describeError(err)}`, { file });
    }
    if (isFile) files.push(await readConfigFile(file));
  }
  return files;
}
