// The jobs directory's journal check: the pure parts, then journalOf on a
// sysfs tree of the test's own (so that every case runs whatever this
// machine's disk is), then on the real /sys against GNU stat's reading.

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";
import t from "tap";
import {
  deviceNumbers,
  journalOf,
  noJournalWarning,
  parseJournalTask,
  warnIfNoJournal,
} from "../../src/storage/file-system-journal.js";
import { deviceOf, fakeSysfs } from "../helpers/fake-sysfs.js";
import { CollectingLogger } from "../helpers/log.js";
import { tempDir } from "../helpers/tmp.js";

/** glibc's makedev, to build st_dev values from known numbers. */
function makedev(major: bigint, minor: bigint): bigint {
  return (
    ((major & 0xfffn) << 8n) |
    ((major & 0xfffff000n) << 32n) |
    (minor & 0xffn) |
    ((minor & 0xffffff00n) << 12n)
  );
}

t.test("deviceNumbers decodes Linux st_dev", (t) => {
  t.strictSame(deviceNumbers(0xfe00n), { major: 254, minor: 0 }, "virtio disk vda");
  t.strictSame(deviceNumbers(0x801n), { major: 8, minor: 1 }, "sda1");
  t.strictSame(deviceNumbers(0x10301n), { major: 259, minor: 1 }, "nvme0n1p1");
  t.strictSame(deviceNumbers(0x1000fd05n), { major: 253, minor: 65536 + 5 }, "dm minor over 255");
  for (const [major, minor] of [
    [0n, 0n],
    [253n, 3n],
    [4095n, 255n],
    [4096n, 256n],
    [0xfffffn, 0xfffffn],
    [0xffffffffn, 0xffffffffn],
  ]) {
    t.strictSame(
      deviceNumbers(makedev(major, minor)),
      { major: Number(major), minor: Number(minor) },
      `${major}:${minor} round-trips`,
    );
  }
  t.end();
});

t.test("parseJournalTask reads what ext4's sysfs file says", (t) => {
  t.equal(parseJournalTask("<none>\n"), "none");
  t.equal(parseJournalTask("<none>"), "none");
  t.equal(parseJournalTask("812\n"), "journaled", "the journal thread's pid");
  t.equal(parseJournalTask("0\n"), "journaled", "pid 0 from another pid namespace");
  for (const text of ["", "\n", "none", "<none", "-1", "12a", "<none>\n<none>\n"]) {
    t.equal(parseJournalTask(text), null, `${JSON.stringify(text)} is neither`);
  }
  t.end();
});

t.test("noJournalWarning names the directory, the evidence and what to do", (t) => {
  t.equal(
    noJournalWarning("/var/lib/abs/jobs", { kind: "none", device: "vda" }),
    "jobs directory /var/lib/abs/jobs (jobs_dir) is on ext4 without a journal " +
      "(/sys/fs/ext4/vda/journal_task: <none>): after a power loss or an OS crash, " +
      "a job file that was being replaced can be lost, and creating files there costs more " +
      "the more files were replaced in the last minutes; move jobs_dir to a file system " +
      "that journals its metadata, such as ext4 with its journal or XFS",
  );
  t.match(
    noJournalWarning("/j", { kind: "none", device: "dm-0" }, "/tmp/sys"),
    /\(\/tmp\/sys\/fs\/ext4\/dm-0\/journal_task: <none>\)/,
    "the sysfs it read",
  );
  t.equal(noJournalWarning("/j", { kind: "journaled", device: "sda1" }), null);
  t.equal(noJournalWarning("/j", { kind: "unknown" }), null);
  t.end();
});

t.test("journalOf follows st_dev to ext4's journal_task", (t) => {
  const dir = tempDir(t);
  t.strictSame(journalOf(dir, fakeSysfs(t, dir, "vdb", "<none>\n")), {
    kind: "none",
    device: "vdb",
  });
  t.strictSame(journalOf(dir, fakeSysfs(t, dir, "sda1", "731\n")), {
    kind: "journaled",
    device: "sda1",
  });
  t.strictSame(journalOf(dir, fakeSysfs(t, dir, "dm-0", null)), { kind: "unknown" }, "not ext4");
  t.strictSame(
    journalOf(dir, fakeSysfs(t, dir, "vdb", "garbage")),
    { kind: "unknown" },
    "unreadable value",
  );
  t.strictSame(
    journalOf(dir, fakeSysfs(t, dir, "vdb", "<none>\n", "1:2")),
    { kind: "unknown" },
    "the link is for another device",
  );
  t.strictSame(
    journalOf(path.join(dir, "missing"), fakeSysfs(t, dir, "vdb", "<none>\n")),
    { kind: "unknown" },
    "the directory does not exist",
  );
  t.end();
});

t.test("warnIfNoJournal logs one warning, and only without a journal", (t) => {
  const dir = tempDir(t);
  const without = new CollectingLogger();
  const sysfs = fakeSysfs(t, dir, "vdb", "<none>\n");
  warnIfNoJournal(without, dir, sysfs);
  t.strictSame(without.messages("warn"), [
    noJournalWarning(dir, { kind: "none", device: "vdb" }, sysfs),
  ]);
  const journaled = new CollectingLogger();
  warnIfNoJournal(journaled, dir, fakeSysfs(t, dir, "vdb", "88\n"));
  t.strictSame(journaled.lines, [], "nothing logged with a journal");
  t.end();
});

t.test("journalOf on this machine's real /sys agrees with GNU stat and ext4's file", (t) => {
  const dir = tempDir(t);
  const fsType = execFileSync("stat", ["-f", "-c", "%T", dir], { encoding: "utf8" }).trim();
  const link = `/sys/dev/block/${deviceOf(dir)}`;
  const device = existsSync(link) ? path.basename(readlinkSync(link)) : null;
  const taskFile = device === null ? null : `/sys/fs/ext4/${device}/journal_task`;
  if (taskFile === null || !existsSync(taskFile)) {
    t.not(fsType, "ext2/ext3", "an ext4 here would have its journal_task");
    t.strictSame(journalOf(dir), { kind: "unknown" }, `${fsType}: no ext4 journal_task`);
    t.end();
    return;
  }
  const task = readFileSync(taskFile, "utf8").trim();
  t.equal(fsType, "ext2/ext3", "GNU stat's name for the ext4 magic number");
  t.strictSame(
    journalOf(dir),
    { kind: task === "<none>" ? "none" : "journaled", device },
    `${taskFile}: ${task}`,
  );
  t.end();
});
