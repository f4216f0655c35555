// The client side of the admin socket, used by `abs`: one request, one reply.

import net from "node:net";
import { AbsError, errorFromWire } from "./errors.js";
import type { JsonObject, JsonValue } from "./json-shape.js";
import { ADMIN_PROTOCOL_VERSION, parseAdminReply } from "./protocol/admin-messages.js";
import { FrameDecoder, encodeFrame } from "./protocol/frame.js";

export interface AdminCallOptions {
  /** Give up after this long, in ms. Default 30 s. */
  timeoutMs?: number;
}

/**
 * Largest reply accepted, in bytes. Replies come from the master, which the
 * socket's mode already trusts, and `abs show jobs --all --json` over
 * 100,000 jobs is some 40 MB; the limit only stops a runaway.
 */
export const MAX_REPLY_BYTES = 1024 * 1024 * 1024;

/**
 * Calls `method` on the master listening on `socketPath`. Resolves with the
 * result; rejects with the master's error turned back into an AbsError, or
 * with an AbsError saying the master cannot be reached.
 */
export function adminCall(
  socketPath: string,
  method: string,
  args: JsonObject,
  opts: AdminCallOptions = {},
): Promise<JsonValue> {
  return exchange(socketPath, method, args, opts, true, (frame) => {
    const reply = parseAdminReply(frame);
    if (reply.success) return reply.result;
    throw errorFromWire(reply.error);
  });
}

/** What the master's reply starts with when it succeeds (admin-server.ts encodes it so). */
const SUCCESS_PREFIX = '{"success":true,"result":';

/**
 * As adminCall, but resolves with the result's JSON text, not parsed: for
 * `abs ... --json` over 100,000 jobs, parsing 35 MB only to print it again
 * would cost the time of both.
 */
export function adminCallText(
  socketPath: string,
  method: string,
  args: JsonObject,
  opts: AdminCallOptions = {},
): Promise<string> {
  return exchange(socketPath, method, args, opts, false, (frame) => {
    const text = frame as string;
    if (text.startsWith(SUCCESS_PREFIX) && text.endsWith("}")) {
      return text.slice(SUCCESS_PREFIX.length, -1);
    }
    // A failure (or a reply shaped otherwise): read it properly.
    const reply = parseAdminReply(JSON.parse(text));
    if (reply.success) return JSON.stringify(reply.result);
    throw errorFromWire(reply.error);
  });
}

/** One request, one reply; `answer` turns the reply frame into the result or throws. */
function exchange<T>(
  socketPath: string,
  method: string,
  args: JsonObject,
  opts: AdminCallOptions,
  parse: boolean,
  answer: (frame: unknown) => T,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    // Replies come from the master, whom the socket's mode trusts: no depth check.
    const decoder = new FrameDecoder({ maxFrameBytes: MAX_REPLY_BYTES, checkDepth: false, parse });
    let settled = false;
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      outcome();
    };
    const timer = setTimeout(
      () =>
        finish(() =>
          reject(
            new AbsError(
              "UNREACHABLE",
              `no answer from the master on ${socketPath} within ${opts.timeoutMs ?? 30_000} ms`,
            ),
          ),
        ),
      opts.timeoutMs ?? 30_000,
    );
    socket.on("connect", () =>
      socket.write(encodeFrame({ method, args, version: ADMIN_PROTOCOL_VERSION })),
    );
    socket.on("data", (chunk: Buffer) => {
      try {
        const [frame] = decoder.push(chunk);
        if (frame === undefined) return;
        const result = answer(frame);
        finish(() => resolve(result));
      } catch (err) {
        const error = err instanceof Error ? err : new AbsError("PROTOCOL", String(err));
        finish(() => reject(error));
      }
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      const why =
        err.code === "ENOENT" || err.code === "ECONNREFUSED"
          ? "is abs-master running? (see master.conf admin_socket)"
          : err.code === "EACCES"
            ? "permission denied: the socket's mode decides who may administer"
            : err.message;
      finish(() =>
        reject(
          new AbsError("UNREACHABLE", `cannot reach the master on ${socketPath}: ${why}`, {
            cause: err,
          }),
        ),
      );
    });
    socket.on("close", () =>
      finish(() =>
        reject(
          new AbsError(
            "PROTOCOL",
            `the master on ${socketPath} closed the connection without an answer`,
          ),
        ),
      ),
    );
  });
}
