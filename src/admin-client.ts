// The client side of the admin socket, used by `abs`: one request, one reply.

import { randomUUID } from "node:crypto";
import net from "node:net";
import { AbsError, errorFromWire } from "./errors.js";
import type { JsonObject, JsonValue } from "./json-shape.js";
import {
  ADMIN_PROTOCOL_VERSION,
  MAX_REPLY_BYTES,
  parseAdminReply,
} from "./protocol/admin-messages.js";
import { FrameDecoder, encodeFrame } from "./protocol/frame.js";
import type { AdminMethodName } from "./protocol/admin-api.js";
import { CHANGING_METHODS } from "./protocol/admin-contract.js";

export interface AdminCallOptions {
  /** Give up after this long, in ms. Default 30 s. */
  timeoutMs?: number;
  /**
   * The request id sent with the request (admin-messages.ts). A method that
   * changes something gets a new one when none is given; a retry must pass
   * the first attempt's.
   */
  requestId?: string;
}

/**
 * The master closed the connection after the request was sent and before it
 * answered (it was killed, say): the request may or may not have been done,
 * so only a retry with the same request id can tell.
 */
export class AnswerLostError extends AbsError {
  constructor(socketPath: string) {
    super("PROTOCOL", `the master on ${socketPath} closed the connection without an answer`);
  }
}

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

/** The id a request carries: the one given, else a new one for a method that changes something. */
function requestIdFor(method: string, given: string | undefined): string | undefined {
  if (given !== undefined) return given;
  return CHANGING_METHODS.has(method as AdminMethodName) ? randomUUID() : undefined;
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
    const requestId = requestIdFor(method, opts.requestId);
    let sent = false;
    socket.on("connect", () => {
      sent = true;
      socket.write(
        encodeFrame({
          method,
          args,
          version: ADMIN_PROTOCOL_VERSION,
          ...(requestId === undefined ? {} : { requestId }),
        }),
      );
    });
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
      // Once connected, a reset is the master going away mid-request.
      if (sent && (err.code === "ECONNRESET" || err.code === "EPIPE")) {
        finish(() => reject(new AnswerLostError(socketPath)));
        return;
      }
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
    socket.on("close", () => finish(() => reject(new AnswerLostError(socketPath))));
  });
}

/** How a command's requests are retried (adminCallRetrying). */
export interface RetryOptions {
  /** Keep retrying for this long, in ms (`abs --wait`); 0: never retry. */
  waitMs: number;
  /** Told once, when retrying starts: what happened and what is being done. */
  onRetry: (text: string) => void;
  /** The pause before the first retry, in ms, doubling up to 2 s. Default 100. */
  firstDelayMs?: number;
}

/**
 * As adminCall, retrying while the master's answer is lost: the connection
 * dropped after the request was sent (AnswerLostError), and then while the
 * master cannot be reached (it is restarting), until `waitMs` has passed.
 * Every attempt carries the same request id, so a request the master did
 * before it went away is answered from its record and not done twice. A
 * first attempt that cannot connect is not retried: nothing was sent, and
 * the master is plainly not there.
 */
export async function adminCallRetrying(
  socketPath: string,
  method: string,
  args: JsonObject,
  retry: RetryOptions,
  opts: AdminCallOptions = {},
  call: typeof adminCall = adminCall,
): Promise<JsonValue> {
  const requestId = requestIdFor(method, opts.requestId);
  const attempt = { ...opts, ...(requestId === undefined ? {} : { requestId }) };
  const deadline = Date.now() + retry.waitMs;
  let delay = retry.firstDelayMs ?? 100;
  let retrying = false;
  for (;;) {
    try {
      return await call(socketPath, method, args, attempt);
    } catch (err) {
      const lost =
        err instanceof AnswerLostError ||
        (retrying && err instanceof AbsError && err.code === "UNREACHABLE");
      if (!lost) throw err;
      if (Date.now() + delay > deadline) {
        if (!retrying) throw err;
        throw new AbsError(
          "UNREACHABLE",
          `${err.message}; gave up retrying ${method} after ${Math.round(retry.waitMs / 1000)} s (abs --wait)`,
          { cause: err },
        );
      }
      if (!retrying) {
        const id = requestId === undefined ? "" : ` with the same request id ${requestId}`;
        retry.onRetry(
          `abs: ${err.message}; retrying ${method}${id} for up to ${Math.round(retry.waitMs / 1000)} s\n`,
        );
        retrying = true;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 2000);
    }
  }
}
