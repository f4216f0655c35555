// Runs one exported function of an ABS module as the user nobody, in a child
// process: the way to test "not readable" and "not writable" when the tests
// run as root, who ignores file modes.

import { spawnSync } from "node:child_process";

export const NOBODY = 65534;

export function runningAsRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Calls `fn(...args)` exported by `module` as nobody and returns
 * "ok" or "<code> <message>" of what it threw. The files involved must be
 * reachable by nobody (directories mode 0755 on the way).
 */
export function callAsNobody(module: URL, fn: string, args: unknown[]): string {
  const script = `
    const m = await import(${JSON.stringify(module.href)});
    try { await m[${JSON.stringify(fn)}](...${JSON.stringify(args)}); console.log("ok"); }
    catch (err) { console.log(err.code + " " + err.message); }`;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    uid: NOBODY,
    gid: NOBODY,
    encoding: "utf8",
  });
  if (child.status !== 0) throw new Error(`child as nobody failed: ${child.stderr}`);
  return child.stdout.trim();
}
