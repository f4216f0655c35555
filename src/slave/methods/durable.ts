// Durable file steps shared by the methods: fsync of a directory after a
// rename, and removal of partial output.

import { open, rm } from "node:fs/promises";

export async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, "r");
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Removes `file` if it exists; never throws (used while another error is reported). */
export async function removeQuietly(file: string): Promise<void> {
  await rm(file, { force: true }).catch(() => undefined);
}
