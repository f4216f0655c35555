// Running the built `abs` as a process against a scripted admin server: an
// AdminServer on a temp socket whose methods answer fixed data and record
// the arguments they got. It has no master logic; `abs` against a real
// master is tested with the master.

import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { JsonObject, JsonValue } from "../../src/json-shape.js";
import { type AdminMethod, AdminServer } from "../../src/master/admin-server.js";
import { CollectingLogger } from "./log.js";
import { tempDir } from "./tmp.js";

export const ABS = fileURLToPath(new URL("../../bin/abs.js", import.meta.url));

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node abs.js ...args` (in `cwd`, default this process's) and
 * resolves when it has exited. The environment is only PATH, TZ=UTC and
 * `env`: ABS_ADMIN_SOCKET or ABS_CONFIG of whoever runs the tests must not
 * leak in.
 */
export function runAbs(
  args: readonly string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ABS, ...args], {
      ...(cwd === undefined ? {} : { cwd }),
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TZ: "UTC", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    child.on("error", reject);
    // "close", not "exit": the output pipes are drained by then.
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

export interface Call {
  method: string;
  args: JsonObject;
}

/** One method's scripted behaviour: answer or throw, given the args. */
export type Script = (args: JsonObject) => unknown;

export interface ScriptedMaster {
  socketPath: string;
  /** Every call received, in order. */
  calls: Call[];
}

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export async function scriptedMaster(
  t: Teardown,
  scripts: Record<string, Script>,
): Promise<ScriptedMaster> {
  const socketPath = path.join(tempDir(t), "admin.sock");
  const calls: Call[] = [];
  const methods = new Map<string, AdminMethod>(
    Object.entries(scripts).map(([method, script]) => [
      method,
      async (args: JsonObject) => {
        calls.push({ method, args });
        return (await script(args)) as JsonValue;
      },
    ]),
  );
  const server = await AdminServer.listen({
    path: socketPath,
    mode: 0o600,
    methods,
    logger: new CollectingLogger(),
  });
  t.teardown(() => server.close());
  return { socketPath, calls };
}

/** No stack trace frames ("    at f (file.js:1:2)") in `text`. */
export const STACK_FRAME = /^\s+at .+:\d+/m;
