// A sysfs tree in a temp dir, standing for /sys where the journal check
// (src/storage/file-system-journal.ts) reads it, so that tests choose what
// the kernel says whatever disk this machine has.

import { execFileSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Test } from "tap";
import { tempDir } from "./tmp.js";

/**
 * A sysfs for the device `dir` is really on (by its st_dev): the
 * /sys/dev/block link named `device` and, unless `journalTask` is null,
 * ext4's journal_task holding it. `numbers` names the link instead of
 * the real "major:minor".
 */
export function fakeSysfs(
  t: Test,
  dir: string,
  device: string,
  journalTask: string | null,
  numbers?: string,
): string {
  const sysfs = tempDir(t, "abs-sysfs-");
  const name = numbers ?? deviceOf(dir);
  mkdirSync(path.join(sysfs, "dev", "block"), { recursive: true });
  symlinkSync(
    `../../devices/pci0000:00/virtio1/block/${device}`,
    path.join(sysfs, "dev", "block", name),
  );
  if (journalTask !== null) {
    mkdirSync(path.join(sysfs, "fs", "ext4", device), { recursive: true });
    writeFileSync(path.join(sysfs, "fs", "ext4", device, "journal_task"), journalTask);
  }
  return sysfs;
}

/** "major:minor" of the device `dir` is on, as GNU stat prints it: not by the code under test. */
export function deviceOf(dir: string): string {
  return execFileSync("stat", ["-c", "%Hd:%Ld", dir], { encoding: "utf8" }).trim();
}
