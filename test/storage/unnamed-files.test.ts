// Temp files created unnamed (O_TMPFILE) and linked once written, with the
// named fallback: the real C module, and stand-ins for a file system that
// refuses O_TMPFILE.

import { execFileSync } from "node:child_process";
import { constants, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import t, { type Test } from "tap";
import {
  type LinkFd,
  linkFdNative,
  unnamedFilesUsed,
  writeSyncedFile,
} from "../../src/storage/unnamed-files.js";
import { tempDir } from "../helpers/tmp.js";

const { EEXIST, ENOENT } = os.constants.errno;

/** The native linkFd; the module must be built here (CI builds it with `npm ci`). */
function native(t: Test): LinkFd {
  if (linkFdNative === null) throw new Error(unnamedFilesUsed);
  t.pass("the C module is loaded");
  return linkFdNative;
}

t.test("the C module is built and is what the daemons use", (t) => {
  t.not(linkFdNative, null, unnamedFilesUsed);
  t.match(
    unnamedFilesUsed,
    /^temp files are created unnamed \(O_TMPFILE\), outside the directory's lock \(.*link_fd\.node\)$/,
  );
  t.equal(linkFdNative?.O_TMPFILE, 0o20000000 | constants.O_DIRECTORY, "Linux's O_TMPFILE");
  t.end();
});

t.test("a file is written with no name, then linked to its name", async (t) => {
  const linkFd = native(t);
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
  await writeSyncedFile(file, '{"id":1}', watching);
  t.strictSame(seenBeforeLink, [[]], "no name in the directory until the link");
  t.equal(readFileSync(file, "utf8"), '{"id":1}');
  t.equal(statSync(file).mode & 0o777, 0o640 & ~process.umask(), "mode 0640 less the umask");
  t.equal(statSync(file).nlink, 1);
  t.strictSame(readdirSync(dir), [".tmp-job-1.json"]);
});

t.test("an existing name is refused as link(2) refuses it, and kept", async (t) => {
  const linkFd = native(t);
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

t.test("errors other than 'no O_TMPFILE here' are thrown as they are", async (t) => {
  const linkFd = native(t);
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
  const linkFd = native(t);
  const dir = tempDir(t);
  // O_DIRECTORY alone, opened for writing, fails with EISDIR: what a kernel
  // before 3.11 answers to O_TMPFILE.
  let links = 0;
  const refused: LinkFd = Object.assign(
    (fd: number, name: string) => {
      links++;
      return linkFd(fd, name);
    },
    { O_TMPFILE: constants.O_DIRECTORY },
  );
  await writeSyncedFile(path.join(dir, "a"), "1", refused);
  await writeSyncedFile(path.join(dir, "b"), "2", refused);
  t.equal(links, 0, "never linked: both files were named from the start");
  t.strictSame(readdirSync(dir).sort(), ["a", "b"]);
  t.equal(readFileSync(path.join(dir, "b"), "utf8"), "2");
  // Another directory still gets unnamed files with the real flag.
  const other = tempDir(t);
  let otherLinks = 0;
  await writeSyncedFile(
    path.join(other, "c"),
    "3",
    Object.assign(
      (fd: number, name: string) => {
        otherLinks++;
        return linkFd(fd, name);
      },
      { O_TMPFILE: linkFd.O_TMPFILE },
    ),
  );
  t.equal(otherLinks, 1, "the other directory's file was linked");
});

t.test("linkFd refuses bad arguments, and a descriptor that is not open", async (t) => {
  const linkFd = native(t);
  const dir = tempDir(t);
  const call = linkFd as unknown as (...args: unknown[]) => Promise<void>;
  t.throws(() => call(), TypeError);
  t.throws(() => call("3", path.join(dir, "x")), TypeError);
  t.throws(() => call(-1, path.join(dir, "x")), TypeError);
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
