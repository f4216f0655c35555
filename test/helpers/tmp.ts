// Temp directories for tests, removed when the test ends.

import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export function tempDir(t: Teardown, prefix = "abs-test-"): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
