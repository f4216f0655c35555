// The backup methods by name: runMethod checks that the slave allows the
// method a dispatch names and runs it. What a method is given and returns,
// and its cancel helpers, are in method-context.ts, so the methods do not
// import this file back.

import type { JsonObject } from "../../json-shape.js";
import { AbsError } from "../../errors.js";
import type { MethodName } from "../../config/job-definition.js";
import { checkMethod } from "./allowed-programs.js";
import type { MethodContext, MethodResult } from "./method-context.js";

/** Runs the method named by a dispatch with its parameters (as `methodParams` sends them). */
export async function runMethod(
  method: MethodName,
  params: JsonObject,
  ctx: MethodContext,
): Promise<MethodResult> {
  // Checked at dispatch too (preflight.ts); again here, where it runs.
  checkMethod(method, ctx.allowedToRun);
  // Imported lazily so a slave running only commands never loads node-tar.
  switch (method) {
    case "tar": {
      const m = await import("./tar-backup.js");
      return m.tarBackup(m.readTarParams(params), ctx);
    }
    case "restore": {
      const m = await import("./restore.js");
      return m.restore(m.readRestoreParams(params), ctx);
    }
    case "verify": {
      const m = await import("./verify.js");
      return m.verify(m.readVerifyParams(params), ctx);
    }
    case "command": {
      const m = await import("./command.js");
      return m.runCommand(m.readCommandParams(params), ctx);
    }
    default:
      return assertNever(method);
  }
}

function assertNever(x: never): never {
  throw new AbsError("BAD_ARGUMENT", `unknown method "${String(x)}"`);
}
