// The startup warning for a directory on ext4 without a journal: the pure
// parts, then journalOf on a sysfs tree of the test's own (so that every case
// runs whatever this machine's disk is), then the real /sys.

import {
  mkdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import t, { type Test } from "tap";
import {
  deviceNumbers,
  journalOf,
  noJournalWarning,
  parseJournalTask,
  warnIfNoJournal,
} from "../../src/storage/file-system-journal.js";
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
  t.same(deviceNumbers(0xfe00n), { major: 254, minor: 0 }, "virtio disk vda");
  t.same(deviceNumbers(0x801n), { major: 8, minor: 1 }, "sda1");
  t.same(
    deviceNumbers(0x10010305n),
    { major: 259, minor: 65541 },
    "NVMe partition, minor over 255",
  );
  for (const [major, minor] of [
    [0n, 0n],
    [253n, 3n],
    [4095n, 255n],
    [4096n, 256n],
    [0xfffffn, 0xfffffn],
    [0xffffffffn, 0xffffffffn],
  ]) {
    t.same(
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

t.test("noJournalWarning names the directory, the device and what to do", (t) => {
  t.equal(
    noJournalWarning("jobs directory", "/var/lib/abs/jobs", { kind: "none", device: "vda" }),
    "jobs directory /var/lib/abs/jobs is on ext4 without a journal (device vda): " +
      "a crash while a file there is being replaced can lose it, and creating files there " +
      "slows down while files are being replaced; move it to a journaled file system " +
      "(ext4 with its journal, XFS)",
  );
  t.equal(noJournalWarning("jobs directory", "/j", { kind: "journaled", device: "sda1" }), null);
  t.equal(noJournalWarning("jobs directory", "/j", { kind: "unknown" }), null);
  t.end();
});

/**
 * A sysfs tree in a temp dir for the device `dir` is really on: the
 * /sys/dev/block link and, if `journalTask` is given, ext4's journal_task.
 */
function fakeSysfs(t: Test, dir: string, device: string, journalTask: string | null): string {
  const sysfs = tempDir(t, "abs-sysfs-");
  const { major, minor } = deviceNumbers(statSync(dir, { bigint: true }).dev);
  mkdirSync(path.join(sysfs, "dev", "block"), { recursive: true });
  symlinkSync(
    `../../devices/pci0000:00/virtio1/block/${device}`,
    path.join(sysfs, "dev", "block", `${major}:${minor}`),
  );
  if (journalTask !== null) {
    mkdirSync(path.join(sysfs, "fs", "ext4", device), { recursive: true });
    writeFileSync(path.join(sysfs, "fs", "ext4", device, "journal_task"), journalTask);
  }
  return sysfs;
}

t.test("journalOf follows st_dev to ext4's journal_task", (t) => {
  const dir = tempDir(t);
  t.same(journalOf(dir, fakeSysfs(t, dir, "vdb", "<none>\n")), { kind: "none", device: "vdb" });
  t.same(journalOf(dir, fakeSysfs(t, dir, "sda1", "731\n")), {
    kind: "journaled",
    device: "sda1",
  });
  t.same(journalOf(dir, fakeSysfs(t, dir, "dm-0", null)), { kind: "unknown" }, "not ext4");
  t.same(
    journalOf(dir, fakeSysfs(t, dir, "vdb", "garbage")),
    { kind: "unknown" },
    "unreadable value",
  );
  t.same(journalOf(dir, tempDir(t, "abs-sysfs-")), { kind: "unknown" }, "no /sys/dev/block link");
  t.same(
    journalOf(path.join(dir, "missing"), fakeSysfs(t, dir, "vdb", "<none>\n")),
    {
      kind: "unknown",
    },
    "the directory does not exist",
  );
  t.end();
});

t.test("warnIfNoJournal logs one warning, and only without a journal", (t) => {
  const dir = tempDir(t);
  const without = new CollectingLogger();
  warnIfNoJournal(without, "state directory", dir, fakeSysfs(t, dir, "vdb", "<none>\n"));
  t.same(without.messages("warn"), [
    noJournalWarning("state directory", dir, { kind: "none", device: "vdb" }),
  ]);
  const journaled = new CollectingLogger();
  warnIfNoJournal(journaled, "state directory", dir, fakeSysfs(t, dir, "vdb", "88\n"));
  t.same(journaled.lines, [], "nothing logged with a journal");
  t.end();
});

t.test("journalOf on this machine's real /sys agrees with ext4's own file", (t) => {
  const dir = tempDir(t);
  const { major, minor } = deviceNumbers(statSync(dir, { bigint: true }).dev);
  let device: string;
  let task: string;
  try {
    device = path.basename(readlinkSync(`/sys/dev/block/${major}:${minor}`));
    task = readFileSync(`/sys/fs/ext4/${device}/journal_task`, "utf8").trim();
  } catch (err) {
    t.same(journalOf(dir), { kind: "unknown" }, `no ext4 journal_task here (${String(err)})`);
    t.end();
    return;
  }
  t.same(
    journalOf(dir),
    { kind: task === "<none>" ? "none" : "journaled", device },
    `${device}: ${task}`,
  );
  t.end();
});
