// What the slave checks before it accepts a dispatch, so that a job it
// cannot run is refused (`reject`) instead of started and failed: the method
// exists and allowed_methods lists it, its parameters read, a command's
// program is in allowed_programs, and every path it will touch lies inside
// the slave's allowed paths. The methods check again when they run.
//
// And what the slave cleans up for a job that died with a previous slave
// process: a tar job's partial files.

import { readdir } from "node:fs/promises";
import path from "node:path";
import { AbsError } from "../../errors.js";
import type { JsonObject } from "../../json-shape.js";
import { METHODS, type MethodName } from "../../config/job-definition.js";
import { checkAllowed } from "./allowed-paths.js";
import { checkMethod, type RunAllowlist } from "./allowed-programs.js";
import { checkDefinitionName, isPartialOf } from "./backup-set.js";
import { removeQuietly } from "./durable.js";

export function isMethodName(name: string): name is MethodName {
  return (METHODS as readonly string[]).includes(name);
}

/**
 * Throws an AbsError saying why this slave cannot run the job:
 * BAD_ARGUMENT (unknown method, bad parameters), METHOD_NOT_ALLOWED,
 * PROGRAM_NOT_ALLOWED or PATH_NOT_ALLOWED.
 */
export async function preflight(
  method: string,
  params: JsonObject,
  definition: string,
  allowedPaths: readonly string[],
  allowedToRun: RunAllowlist,
): Promise<void> {
  if (!isMethodName(method)) {
    throw new AbsError(
      "BAD_ARGUMENT",
      `unknown method "${method}"; this slave runs ${allowedToRun.methods.join(", ")}`,
    );
  }
  // Before the parameters are read: a slave that does not run a method
  // says so, whatever the job asks of it.
  checkMethod(method, allowedToRun);
  const check = (p: string, role: string) => checkAllowed(p, role, allowedPaths);
  switch (method) {
    case "tar": {
      const { readTarParams } = await import("./tar-backup.js");
      const p = readTarParams(params);
      checkDefinitionName(definition);
      for (const s of p.sources) await check(s, "tar.sources");
      await check(p.destination, "tar.destination");
      return;
    }
    case "restore": {
      const { readRestoreParams } = await import("./restore.js");
      const p = readRestoreParams(params);
      await check(p.source, "restore.source");
      await check(p.target, "restore.target");
      return;
    }
    case "verify": {
      const { readVerifyParams } = await import("./verify.js");
      await check(readVerifyParams(params).archive, "verify.archive");
      return;
    }
    case "command": {
      const { checkCommand, readCommandParams } = await import("./command.js");
      const p = readCommandParams(params);
      await checkCommand(p, allowedToRun);
      if (p.cwd !== null) await check(p.cwd, "command.cwd");
      return;
    }
  }
}

/**
 * Removes what a job that died mid-run left behind (a tar job's partial
 * archive and manifest); returns the files removed. Never throws: the
 * next run of the definition removes them too.
 */
export async function removeLeftovers(
  method: string,
  params: JsonObject,
  definition: string,
): Promise<string[]> {
  if (method !== "tar") return [];
  try {
    const { readTarParams } = await import("./tar-backup.js");
    const { destination } = readTarParams(params);
    const removed: string[] = [];
    for (const n of await readdir(destination)) {
      if (!isPartialOf(n, definition)) continue;
      const file = path.join(destination, n);
      await removeQuietly(file);
      removed.push(file);
    }
    return removed;
  } catch {
    return [];
  }
}
