// fsync of a directory: the one implementation (durable-file.ts and
// fs-ops.ts both use it).

import { open } from "node:fs/promises";

/** fsync of a directory, so that renames, creations and unlinks in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
