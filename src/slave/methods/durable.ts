// Removal of partial output, shared by the methods. (The fsync of a
// directory after a rename is storage/durable-file.ts's fsyncDir.)

import { rm } from "node:fs/promises";

/** Removes `file` if it exists; never throws (used while another error is reported). */
export async function removeQuietly(file: string): Promise<void> {
  await rm(file, { force: true }).catch(() => undefined);
}
