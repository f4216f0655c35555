import {
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import t from "tap";
import {
  type ArchiveOutput,
  openArchiveOutput,
  writesDirectlyTo,
} from "../../../src/slave/methods/archive-output.js";
import {
  borrowSharedBuffer,
  leaseWriterThread,
  returnSharedBuffer,
  returnWriterThread,
} from "../../../src/slave/methods/archive-writer-thread.js";
import { tempDir } from "../../helpers/tmp.js";

const O_DIRECT_CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT;

/** `n` bytes counting from `from`, so a misplaced piece shows in a comparison. */
function pattern(n: number, from: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (from + i) % 251;
  return b;
}

t.test("a plain archive holds every buffer in order, shared or not, reused or not", async (t) => {
  const file = path.join(tempDir(t), "a.tar");
  const out = openArchiveOutput(file, false);
  const expected: Buffer[] = [];
  // Sizes around the writer thread's 16 KiB pieces, 0 and odd ones included.
  const sizes = [0, 1, 16 << 10, (16 << 10) + 1, 3 << 20, 7];
  const shared = borrowSharedBuffer(3 << 20);
  let from = 0;
  for (const [i, n] of sizes.entries()) {
    const bytes = pattern(n, from);
    from += n;
    expected.push(bytes);
    if (i % 2 === 0) {
      // The same shared buffer every time: reusable once write resolves.
      bytes.copy(shared);
      await out.write(shared.subarray(0, n));
    } else {
      await out.write(bytes);
    }
  }
  await out.finish();
  t.ok(readFileSync(file).equals(Buffer.concat(expected)), "the file is the buffers in order");
});

/**
 * A directory on ext4 or xfs that takes O_DIRECT, for the direct writes: in
 * the temporary directory, else in the working directory (the checkout, on
 * a disk: Debian 13 mounts /tmp as a tmpfs); null if neither is.
 */
const directDir = ((): string | null => {
  for (const parent of [os.tmpdir(), process.cwd()]) {
    if (!writesDirectlyTo(statfsSync(parent).type)) continue;
    const dir = mkdtempSync(path.join(parent, ".abs-direct-test-"));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    try {
      closeSync(openSync(path.join(dir, "probe"), O_DIRECT_CREATE, 0o600));
      return dir;
    } catch {
      // This file system refuses O_DIRECT.
    }
  }
  return null;
})();

/** Whether the file system of `dir` refuses a direct write of 1000 bytes (not whole sectors), as ext4 and xfs do unless they write it through the page cache. */
function refusesOddDirectWrite(dir: string): boolean {
  const fd = openSync(path.join(dir, "odd-probe"), O_DIRECT_CREATE, 0o600);
  const aligned = borrowSharedBuffer(1 << 20);
  try {
    writeSync(fd, aligned, 0, 1000, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EINVAL";
  } finally {
    returnSharedBuffer(aligned);
    closeSync(fd);
  }
}

t.test(
  "pool buffers go to the disk directly; after a write the kernel refuses, the rest go through the page cache",
  { skip: directDir === null ? "no ext4 or xfs directory here takes O_DIRECT" : false },
  async (t) => {
    const dir = directDir as string;
    const file = path.join(dir, "d.tar");
    const out = openArchiveOutput(file, false) as ArchiveOutput & { direct: boolean };
    t.teardown(() => rmSync(file, { force: true }));
    t.equal(out.direct, true, `opened for direct writes in ${dir}`);
    const aligned = borrowSharedBuffer(1 << 20);
    t.teardown(() => returnSharedBuffer(aligned));
    pattern(1 << 20, 0).copy(aligned);
    await out.write(aligned);
    t.equal(out.direct, true, "a whole pool buffer at an aligned position is taken");
    // 1000 bytes: not a whole number of sectors, which a device cannot take.
    const odd = aligned.subarray(0, 1000);
    pattern(1000, 7).copy(odd);
    await out.write(odd);
    if (refusesOddDirectWrite(dir)) {
      t.equal(out.direct, false, "a write the kernel refuses is made through the page cache");
      pattern(1 << 20, 3).copy(aligned);
      await out.write(aligned);
      t.equal(out.direct, false, "and so is every write after it");
    } else {
      // ext4 with data=journal takes it, through the page cache.
      pattern(1 << 20, 3).copy(aligned);
      await out.write(aligned);
    }
    await out.finish();
    const expected = Buffer.concat([pattern(1 << 20, 0), pattern(1000, 7), pattern(1 << 20, 3)]);
    t.ok(readFileSync(file).equals(expected), "every byte is in the file, in order");
  },
);

t.test("direct writes on ext4 and xfs only: not NFS, SMB, tmpfs, FUSE or btrfs", (t) => {
  t.ok(writesDirectlyTo(0xef53), "ext4");
  t.ok(writesDirectlyTo(0x58465342), "xfs");
  // NFS: each direct write would wait for the server's commit.
  t.notOk(writesDirectlyTo(0x6969), "nfs");
  t.notOk(writesDirectlyTo(0xfe534d42), "smb2");
  t.notOk(writesDirectlyTo(0x01021994), "tmpfs");
  t.notOk(writesDirectlyTo(0x65735546), "fuse");
  // Since Linux 6.14 it writes through the page cache a file with checksums.
  t.notOk(writesDirectlyTo(0x9123683e), "btrfs");
  t.end();
});

const TMPFS = 0x01021994;
const shmIsTmpfs = ((): boolean => {
  try {
    return statfsSync("/dev/shm").type === TMPFS;
  } catch {
    return false;
  }
})();

t.test(
  "an archive on tmpfs goes through the page cache (tmpfs is the page cache)",
  { skip: shmIsTmpfs ? false : "/dev/shm is not a tmpfs here" },
  async (t) => {
    const dir = mkdtempSync("/dev/shm/abs-test-");
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const out = openArchiveOutput(path.join(dir, "a.tar"), false) as ArchiveOutput & {
      direct: boolean;
    };
    t.equal(out.direct, false);
    const buf = borrowSharedBuffer(1 << 20);
    t.teardown(() => returnSharedBuffer(buf));
    pattern(1 << 20, 9).copy(buf);
    await out.write(buf);
    await out.finish();
    t.ok(readFileSync(path.join(dir, "a.tar")).equals(pattern(1 << 20, 9)));
  },
);

t.test("abort removes the partial file, with or without a write made", async (t) => {
  const dir = tempDir(t);
  const used = path.join(dir, "used.tar");
  const out = openArchiveOutput(used, false);
  await out.write(pattern(100_000, 0));
  await out.abort();
  t.notOk(existsSync(used), "a file written to is removed");
  const unused = path.join(dir, "unused.tar");
  const idle = openArchiveOutput(unused, false);
  await idle.abort();
  t.notOk(existsSync(unused), "a file never written to is removed");
});

t.test("a write after finish is refused, not lost in silence", async (t) => {
  const file = path.join(tempDir(t), "done.tar");
  const out = openArchiveOutput(file, false);
  await out.write(pattern(10, 0));
  await out.finish();
  await t.rejects(out.write(pattern(10, 0)), /the archive is finished/);
  t.equal(readFileSync(file).length, 10);
});

t.test("gzip takes shared buffers too", async (t) => {
  const file = path.join(tempDir(t), "a.tar.gz");
  const out = openArchiveOutput(file, true);
  const shared = borrowSharedBuffer(1 << 20);
  pattern(1 << 20, 5).copy(shared);
  await out.write(shared);
  await out.finish();
  t.ok(gunzipSync(readFileSync(file)).equals(pattern(1 << 20, 5)));
});

t.test("an existing file is never overwritten", async (t) => {
  const file = path.join(tempDir(t), "taken.tar");
  const out = openArchiveOutput(file, false);
  await out.finish();
  t.throws(() => openArchiveOutput(file, false), { code: "EEXIST" });
});

t.test("a writer thread answers a failed write as fs gives it, and goes on", async (t) => {
  const thread = leaseWriterThread();
  t.teardown(() => returnWriterThread(thread));
  // A descriptor that is not open: EBADF.
  await t.rejects(thread.write(1_000_000, borrowSharedBuffer(10), 0), {
    code: "EBADF",
    syscall: "write",
  });
  const file = path.join(tempDir(t), "after.tar");
  const fd = openSync(file, "w");
  await thread.write(fd, pattern(5, 1), 0);
  closeSync(fd);
  t.ok(readFileSync(file).equals(pattern(5, 1)), "the same thread writes the next file");
});

t.test("a thread is one archive's alone; given back, it is leased again", async (t) => {
  const a = leaseWriterThread();
  const b = leaseWriterThread();
  // So a destination that hangs (a hung mount) holds up no other archive.
  t.not(a, b, "two archives at once, two threads");
  returnWriterThread(a);
  t.equal(leaseWriterThread(), a, "an idle thread is reused");
  await b.stop();
  await t.rejects(b.write(1, borrowSharedBuffer(1), 0), /stopped/);
  returnWriterThread(b);
  returnWriterThread(a);
  t.equal(leaseWriterThread(), a, "a stopped thread is not leased");
  t.not(leaseWriterThread(), b);
  returnWriterThread(a);
});

t.test("shared buffers come back from the pool", (t) => {
  const a = borrowSharedBuffer(4096);
  returnSharedBuffer(a);
  t.equal(borrowSharedBuffer(4096), a, "a returned buffer is lent again");
  t.not(borrowSharedBuffer(4096), a, "and only once");
  t.end();
});
