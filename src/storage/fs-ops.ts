// The file operations the daemons' own directories need (the master's jobs
// directory, the slave's state directory), behind one small interface so
// tests can make a write fail (ENOSPC, EIO) at a chosen moment. Production
// uses `realFsOps`.

import { promises as fsp, readFileSync } from "node:fs";
import path from "node:path";
import { fsyncDir } from "./fsync-dir.js";
import { linkFdFor, writeSyncedFile } from "./unnamed-files.js";

export interface FsOps {
  readFile(file: string): Promise<string>;
  /** Synchronous read, for loading many small files at startup. */
  readFileNow(file: string): string;
  readdir(dir: string): Promise<{ name: string; isFile: boolean; isDirectory: boolean }[]>;
  /**
   * Creates `file` (which must not exist), writes `data`, fsyncs and closes
   * it. On ext4 without a journal, realFsOps creates it unnamed and names it
   * once written (unnamed-files.ts).
   */
  writeSynced(file: string, data: string): Promise<void>;
  /** Appends `data` to `file` (which must exist) and fdatasyncs it. */
  appendSynced(file: string, data: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(file: string): Promise<void>;
  mkdir(dir: string): Promise<void>;
  /** fsync of a directory, so that renames and unlinks in it survive a crash. */
  fsyncDir(dir: string): Promise<void>;
  /** Hard link: fails with EEXIST when `to` exists, which makes it an atomic create. */
  link(from: string, to: string): Promise<void>;
}

export const realFsOps: FsOps = {
  readFile: (file) => fsp.readFile(file, "utf8"),
  readFileNow: (file) => readFileSync(file, "utf8"),
  async readdir(dir) {
    const entries = await fsp.readdir(dir, { withFileTypes: true });
    return entries.map((e) => ({ name: e.name, isFile: e.isFile(), isDirectory: e.isDirectory() }));
  },
  writeSynced: (file, data) => writeSyncedFile(file, data, linkFdFor(path.dirname(file))),
  async appendSynced(file, data) {
    // "r+" and not "a": the file must exist already (its directory entry
    // made durable by whoever created it); O_APPEND would create it.
    const handle = await fsp.open(file, "r+");
    try {
      const { size } = await handle.stat();
      await handle.write(data, size, "utf8");
      await handle.datasync();
    } finally {
      await handle.close();
    }
  },
  rename: (from, to) => fsp.rename(from, to),
  unlink: (file) => fsp.unlink(file),
  mkdir: async (dir) => {
    await fsp.mkdir(dir, { recursive: true, mode: 0o750 });
  },
  fsyncDir,
  link: (from, to) => fsp.link(from, to),
};

// hasCode lives in errors.ts (config and protocol code use it without
// reaching for node:fs); re-exported for the storage layer's users.
export { hasCode } from "../errors.js";

/**
 * realFsOps with temp files always named from the start: for the slave's
 * state directory, which writes a few files per job, too few for unnamed
 * ones (unnamed-files.ts) to pay for their extra step.
 */
export const namedFsOps: FsOps = {
  ...realFsOps,
  writeSynced: (file, data) => writeSyncedFile(file, data, null),
};
