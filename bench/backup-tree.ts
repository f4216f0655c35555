// The tar backup benchmark's source tree, and its GNU tar baseline.
//
// The tree: many small files (default 10,000 of 4 KiB, at most 100 to a
// subdirectory, as a home directory's dotfiles and sources spread out) and a
// few big ones (default 8 of 64 MiB, as disk images or dumps). Contents are
// slices of one random 1 MiB buffer at a per-file offset, with the file's
// number in its first bytes: every file differs, nothing compresses to
// nothing, and making 552 MB costs one random buffer plus the writes.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";

export interface BackupTreeOptions {
  /** Number of small files. Default 10,000. */
  smallFiles?: number;
  /** Size of each small file, in bytes. Default 4,096. */
  smallBytes?: number;
  /** Number of big files. Default 8. */
  bigFiles?: number;
  /** Size of each big file, in bytes. Default 64 MiB. */
  bigBytes?: number;
}

/** Small files per subdirectory. */
const PER_DIR = 100;
const POOL_BYTES = 1 << 20;

/**
 * Creates the tree under `dir` (made if missing): `small/dNNN/fNNNNN` and
 * `big/bigN.img`. Returns how many files and content bytes it holds.
 */
export async function makeBackupTree(
  dir: string,
  opts: BackupTreeOptions = {},
): Promise<{ files: number; bytes: number }> {
  const smallFiles = opts.smallFiles ?? 10_000;
  const smallBytes = opts.smallBytes ?? 4096;
  const bigFiles = opts.bigFiles ?? 8;
  const bigBytes = opts.bigBytes ?? 64 << 20;
  // Twice the pool, so any slice of up to POOL_BYTES from an offset below
  // POOL_BYTES is one subarray.
  const half = randomBytes(POOL_BYTES);
  const pool = Buffer.concat([half, half]);
  const slice = (n: number, len: number): Buffer => {
    const off = (n * 7919) % POOL_BYTES;
    const b = Buffer.from(pool.subarray(off, off + len));
    // The file's number up front: two files at the same offset still differ.
    b.write(`${n}\n`.slice(0, len));
    return b;
  };

  for (let i = 0; i < smallFiles; i++) {
    const sub = path.join(dir, "small", `d${String(Math.floor(i / PER_DIR)).padStart(3, "0")}`);
    if (i % PER_DIR === 0) mkdirSync(sub, { recursive: true });
    const name = path.join(sub, `f${String(i).padStart(5, "0")}`);
    writeFileSync(name, smallBytes <= POOL_BYTES ? slice(i, smallBytes) : Buffer.alloc(smallBytes));
    // Let timers run: a caller may be timing or watching us.
    if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
  }

  if (bigFiles > 0) mkdirSync(path.join(dir, "big"), { recursive: true });
  for (let i = 0; i < bigFiles; i++) {
    const fd = openSync(path.join(dir, "big", `big${i}.img`), "w");
    try {
      let left = bigBytes;
      let part = 0;
      while (left > 0) {
        const len = Math.min(POOL_BYTES, left);
        writeSync(fd, slice(smallFiles + i * 65_537 + part++, len));
        left -= len;
      }
    } finally {
      closeSync(fd);
    }
    await new Promise((r) => setImmediate(r));
  }
  return { files: smallFiles + bigFiles, bytes: smallFiles * smallBytes + bigFiles * bigBytes };
}

/**
 * The baseline: `tar -cf out -C parent name` (GNU tar, no compression, no
 * fsync) of `tree`. Returns its wall time in milliseconds; a non-zero exit
 * is an error.
 */
export function gnuTarBaseline(tree: string, out: string): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn("tar", ["-cf", out, "-C", path.dirname(tree), path.basename(tree)], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (s: string) => (stderr += s));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (code === 0) resolve(Number(process.hrtime.bigint() - start) / 1e6);
      else reject(new Error(`tar -cf ${out}: exit ${code ?? signal}: ${stderr.trim()}`));
    });
  });
}
