// Temp files created unnamed (O_TMPFILE) and linked once written, on ext4
// without a journal, with the named fallback: the real C module, sysfs trees
// of the test's own for where it is used, and stand-ins for a file system
// that refuses it.

import { execFileSync } from "node:child_process";
import { constants, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import t from "tap";
import {
  type LinkFd,
  linkFdFor,
  linkFdNative,
  tempFilesIn,
  writeSyncedFile,
} from "../../src/storage/unnamed-files.js";
import { fakeSysfs } from "../helpers/fake-sysfs.js";
import { tempDir } from "../helpers/tmp.js";

const { EEXIST, ENOENT, EPERM } = os.constants.errno;

/** The native linkFd; the module must be built here (CI builds it with `npm ci`). */
function native(): LinkFd {
  if (linkFdNative === null) throw new Error("native/build/Release/link_fd.node is not loaded");
  return linkFdNative;
}

/** `linkFd` with O_TMPFILE `flag`, counting its calls in `calls`. */
function counting(linkFd: LinkFd, calls: { n: number }, flag = linkFd.O_TMPFILE): LinkFd {
  return Object.assign(
    (fd: number, name: string) => {
      calls.n++;
      return linkFd(fd, name);
    },
    { O_TMPFILE: flag },
  );
}

t.test("the C module is built, and used on ext4 without a journal only", (t) => {
  t.not(linkFdNative, null, "link_fd.node loaded");
  t.equal(linkFdNative?.O_TMPFILE, 0o20000000 | constants.O_DIRECTORY, "Linux's O_TMPFILE");

  const none = tempDir(t);
  const noneSysfs = fakeSysfs(t, none, "vdb", "<none>\n");
  t.match(tempFilesIn(none, noneSysfs), {
    how: "unnamed",
    why: /^temp files are created unnamed \(O_TMPFILE\), outside the directory's lock \(.*link_fd\.node\)$/,
  });
  t.equal(linkFdFor(none, noneSysfs), linkFdNative);

  const journaled = tempDir(t);
  const journaledSysfs = fakeSysfs(t, journaled, "sda1", "812\n");
  t.strictSame(tempFilesIn(journaled, journaledSysfs), {
    how: "named",
    why: "temp files are created named (not ext4 without a journal)",
  });
  t.equal(linkFdFor(journaled, journaledSysfs), null);

  const unknown = tempDir(t);
  t.equal(linkFdFor(unknown, tempDir(t, "abs-sysfs-")), null, "no sysfs: named");
  t.end();
});

t.test("a file is written with no name, then linked to its name, then synced", async (t) => {
  const linkFd = native();
  const dir = tempDir(t);
  const file = path.join(dir, ".tmp-job-1.json");
  const seenBeforeLink: string[][] = [];
  const watching: LinkFd = Object.assign(
    (fd: number, name: string) => {
      seenBeforeLink.push(readdirSync(dir));
      // The data is there before the name: read it through the descriptor.
      t.equal(readFileSync(`/proc/self/fd/${fd}`, "utf8"), '{"id":1}', "written before the link");
      return linkFd(fd, name);
    },
    { O_TMPFILE: linkFd.O_TMPFILE },
  );
  // What the directory holds at each fsync: the name must be there, since the
  // fsync after the link is what makes the link count durable.
  const probe = await open(dir, "r");
  const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
  await probe.close();
  const sync = proto.sync;
  const seenAtSync: string[][] = [];
  proto.sync = function (this: unknown) {
    seenAtSync.push(readdirSync(dir));
    return sync.call(this);
  };
  t.teardown(() => {
    proto.sync = sync;
  });
  await writeSyncedFile(file, '{"id":1}', watching);
  proto.sync = sync;
  t.strictSame(seenBeforeLink, [[]], "no name in the directory until the link");
  t.strictSame(seenAtSync, [[".tmp-job-1.json"]], "one fsync, after the link");
  t.equal(readFileSync(file, "utf8"), '{"id":1}');
  t.equal(statSync(file).mode & 0o777, 0o640 & ~process.umask(), "mode 0640 less the umask");
  t.equal(statSync(file).nlink, 1);
  t.strictSame(readdirSync(dir), [".tmp-job-1.json"]);
});

t.test("an existing name is refused as link(2) refuses it, and kept", async (t) => {
  const linkFd = native();
  const dir = tempDir(t);
  const file = path.join(dir, "taken");
  writeFileSync(file, "before");
  await t.rejects(writeSyncedFile(file, "after", linkFd), {
    code: "EEXIST",
    errno: -EEXIST,
    syscall: "link",
    dest: file,
    message: new RegExp(`^EEXIST: file already exists, link '/proc/self/fd/\\d+' -> '${file}'$`),
  });
  t.equal(readFileSync(file, "utf8"), "before", "the existing file is untouched");
  t.strictSame(readdirSync(dir), ["taken"], "and nothing else is left");
});

t.test("errors a named file would meet too are thrown as they are", async (t) => {
  const linkFd = native();
  const dir = path.join(tempDir(t), "missing");
  await t.rejects(writeSyncedFile(path.join(dir, "f"), "x", linkFd), {
    code: "ENOENT",
    syscall: "open",
  });
});

t.test("without the C module, the file is named from the start", async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, "f");
  await writeSyncedFile(file, "data", null);
  t.equal(readFileSync(file, "utf8"), "data");
  t.equal(statSync(file).mode & 0o777, 0o640 & ~process.umask());
  await t.rejects(writeSyncedFile(file, "again", null), { code: "EEXIST", syscall: "open" });
  t.equal(readFileSync(file, "utf8"), "data");
});

t.test("a directory that refuses O_TMPFILE gets named files, and is remembered", async (t) => {
  const linkFd = native();
  const dir = tempDir(t);
  t.equal(linkFdFor(dir), linkFd, "this machine's temp dirs: ext4 without a journal");
  // O_DIRECTORY alone, opened for writing, fails with EISDIR: what a kernel
  // before 3.11 answers to O_TMPFILE.
  const links = { n: 0 };
  await writeSyncedFile(path.join(dir, "a"), "1", counting(linkFd, links, constants.O_DIRECTORY));
  t.equal(links.n, 0, "never linked: the file was named from the start");
  t.strictSame(readdirSync(dir), ["a"]);
  t.equal(readFileSync(path.join(dir, "a"), "utf8"), "1");
  t.equal(linkFdFor(dir), null, "the directory's next files are named");

  const other = tempDir(t);
  const otherLinks = { n: 0 };
  await writeSyncedFile(path.join(other, "c"), "3", counting(linkFd, otherLinks));
  t.equal(otherLinks.n, 1, "another directory's file was still linked");
  t.equal(linkFdFor(other), linkFd);
});

t.test("a link refused for a reason of its own (EPERM) falls back to a named file", async (t) => {
  const linkFd = native();
  const dir = tempDir(t);
  // The C module rejects with the errno, a number, and so does this stand-in.
  // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
  const refusing: LinkFd = Object.assign(() => Promise.reject(EPERM), {
    O_TMPFILE: linkFd.O_TMPFILE,
  });
  await writeSyncedFile(path.join(dir, "f"), "data", refusing);
  t.strictSame(readdirSync(dir), ["f"], "written, under its name, once");
  t.equal(readFileSync(path.join(dir, "f"), "utf8"), "data");
  t.equal(linkFdFor(dir), null, "remembered");
});

t.test("linkFd refuses bad arguments, and a descriptor that is not open", async (t) => {
  const linkFd = native();
  const dir = tempDir(t);
  const call = linkFd as unknown as (...args: unknown[]) => Promise<void>;
  t.throws(() => call(), TypeError);
  t.throws(() => call("3", path.join(dir, "x")), TypeError);
  t.throws(() => call(-1, path.join(dir, "x")), TypeError);
  t.throws(() => call(NaN, path.join(dir, "x")), TypeError, "NaN is not descriptor 0");
  t.throws(() => call(3.7, path.join(dir, "x")), TypeError, "nor 3.7 descriptor 3");
  t.throws(() => call(2 ** 32 + 5, path.join(dir, "x")), TypeError, "nor 2^32 + 5 descriptor 5");
  t.throws(() => call(3, 42), TypeError);
  t.throws(() => call(3, ""), TypeError);
  t.throws(() => call(3, `${dir}/x\0y`), TypeError, "a NUL inside the path");
  const rejected = await linkFd(1_000_000, path.join(dir, "x")).then(
    () => "linked",
    (errno: unknown) => errno,
  );
  t.equal(rejected, ENOENT, "no such descriptor: rejected with the errno");
  t.strictSame(readdirSync(dir), []);
});

t.test("a writer killed before the link leaves nothing in the directory", (t) => {
  const dir = tempDir(t);
  const module = new URL("../../src/storage/unnamed-files.js", import.meta.url).href;
  // The child writes an unnamed file, then kills itself with
  // SIGKILL where the link would come.
  const script = `
    const { linkFdNative, writeSyncedFile } = await import(${JSON.stringify(module)});
    const dying = Object.assign(() => process.kill(process.pid, "SIGKILL"), { O_TMPFILE: linkFdNative.O_TMPFILE });
    await writeSyncedFile(${JSON.stringify(path.join(dir, ".tmp-job-7.json"))}, "{}", dying);
  `;
  let signal: string | null = null;
  try {
    execFileSync(process.execPath, ["--input-type=module", "-e", script], { stdio: "pipe" });
  } catch (err) {
    signal = (err as { signal: string | null }).signal;
  }
  t.equal(signal, "SIGKILL", "the child died at the link");
  t.strictSame(readdirSync(dir), [], "no temp file left behind");
  t.end();
});
