// The node options a program of ours asks for on its first line, as in
// `#!/usr/bin/env -S node --max-semi-space-size=2`. What starts one of them
// with process.execPath instead of running it (abs demo, the tests, the
// benchmarks) passes the same options, so it runs as the installed command
// does. Only `--name` and `--name=value` options are taken.

import { closeSync, openSync, readSync } from "node:fs";

const SHEBANG = /^#!\/usr\/bin\/env -S node((?: +--[a-z][a-z0-9-]*(?:=[A-Za-z0-9._-]+)?)*) *$/;

/** The node options on the first line of `text` (a script's start); [] if there are none. */
export function shebangFlags(text: string): string[] {
  const first = text.split("\n", 1)[0];
  const m = SHEBANG.exec(first);
  if (m === null) return [];
  return m[1].split(" ").filter((s) => s !== "");
}

/** The node options `script` asks for on its first line (see shebangFlags). */
export function nodeFlagsOf(script: string): string[] {
  const fd = openSync(script, "r");
  try {
    const head = Buffer.alloc(256);
    const n = readSync(fd, head, 0, head.length, 0);
    return shebangFlags(head.toString("utf8", 0, n));
  } finally {
    closeSync(fd);
  }
}
