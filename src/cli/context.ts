// What an admin command needs from the outside world: a way to call the
// master, a place to write, and the time. bin/abs.ts builds the real one;
// the commands depend on nothing else.

import {
  type AdminCallOptions,
  type RetryOptions,
  adminCall,
  adminCallRetrying,
  adminCallText,
} from "../admin-client.js";
import { AbsError, BadArgumentError } from "../errors.js";
import { type JsonObject, ShapeError } from "../json-shape.js";
import type { AdminMethodName } from "../protocol/admin-api.js";
import { ADMIN_CONTRACT, type ResultOf } from "../protocol/admin-contract.js";

export interface Output {
  write(text: string): void;
  /** A terminal: progress may be redrawn in place. */
  readonly isTTY: boolean;
  /** The terminal's width, when known. */
  readonly columns?: number | undefined;
}

export interface CliContext {
  /** Calls an admin method; rejects with the master's AbsError or UNREACHABLE. */
  call<M extends AdminMethodName>(
    method: M,
    args: JsonObject,
    opts?: AdminCallOptions,
  ): Promise<ResultOf<M>>;
  /**
   * As call, but answers the result's JSON text unparsed (for --json over
   * many jobs). Optional: without it, callers stringify what call answers.
   */
  callText?(method: AdminMethodName, args: JsonObject): Promise<string>;
  out: Output;
  now(): number;
}

/**
 * A context talking to the master on `socketPath`. Arguments are checked
 * with the contract's parsers before they are sent, so a bug in `abs` shows
 * as a clear BAD_ARGUMENT here rather than on the master. Results are
 * trusted as typed: the master is the peer the socket's mode already trusts.
 * `source` (where the path came from) is added to "cannot reach" messages,
 * since the usual cause is the wrong socket. With `retry`, a request whose
 * answer was lost is sent again, with the same request id (abs --wait).
 */
export function socketContext(
  socketPath: string,
  source: string,
  out: Output,
  now: () => number = Date.now,
  retry?: RetryOptions,
): CliContext {
  return {
    async call<M extends AdminMethodName>(method: M, args: JsonObject, opts?: AdminCallOptions) {
      checkArgs(method, args);
      const result = await reachable(source, () =>
        retry === undefined
          ? adminCall(socketPath, method, args, opts)
          : adminCallRetrying(socketPath, method, args, retry, opts),
      );
      return ADMIN_CONTRACT[method].fromWire(result);
    },
    async callText(method: AdminMethodName, args: JsonObject) {
      checkArgs(method, args);
      return reachable(source, () => adminCallText(socketPath, method, args));
    },
    out,
    now,
  };
}

function checkArgs(method: AdminMethodName, args: JsonObject): void {
  try {
    // The master's own argument checks (admin-contract.ts), run here too before sending.
    ADMIN_CONTRACT[method].parse(args);
  } catch (err) {
    if (err instanceof ShapeError) {
      throw new BadArgumentError(`${method}: ${err.field}: ${err.why}`, err.field);
    }
    throw err;
  }
}

/** Adds where the socket path came from to "cannot reach" errors: the usual cause is the wrong socket. */
async function reachable<T>(source: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof AbsError && err.code === "UNREACHABLE") {
      throw new AbsError("UNREACHABLE", `${err.message}; socket path from ${source}`, {
        cause: err,
      });
    }
    throw err;
  }
}
