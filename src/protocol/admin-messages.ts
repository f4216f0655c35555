// Messages of the admin link: `abs` talks to the master over a Unix socket
// with the same ETX framing as the slave link. One request, one reply, as in
// Ganeti's LUXI:
//
//   request  {method, args, version, requestId?}
//   reply    {success: true, result} | {success: false, error: {code, message, context?}}
//
// The validators check shape only; whether a method exists and what its args
// must hold is the admin server's business. Bounds on sizes and the reason
// unknown fields are ignored: message-fields.ts.

import type { WireError } from "../errors.js";
import { Fields, type JsonObject, type JsonValue } from "../json-shape.js";
import { label, MAX_NAME_LENGTH, present, readShape, wireError } from "./message-fields.js";

/**
 * Version of the admin link spoken by this build; sent in every request.
 * 2: requests that change something carry a request id.
 */
export const ADMIN_PROTOCOL_VERSION = 2;

/**
 * Largest reply, in bytes: what abs accepts and the master will send. Replies come from the master, which the
 * socket's mode already trusts, and `abs show jobs --all --json` over
 * 100,000 jobs is some 40 MB; the limit only stops a runaway.
 */
export const MAX_REPLY_BYTES = 1024 * 1024 * 1024;

/** Request ids are at most this long (request-records.ts says what they may hold). */
export const MAX_REQUEST_ID_LENGTH = 64;

export interface AdminRequest {
  /** e.g. "show-jobs", "run", "cancel". */
  method: string;
  args: JsonObject;
  version: number;
  /**
   * Chosen by the client, the same in every retry of one request: a repeat
   * is answered as the first was (src/master/admin-requests.ts). Required
   * by the methods that change something; null when not sent.
   */
  requestId: string | null;
}

export type AdminReply =
  { success: true; result: JsonValue } | { success: false; error: WireError };

/**
 * Checks one decoded frame from an admin client. Throws ProtocolError naming
 * the field, e.g. `request.version: expected an integer >= 1, got "1"`.
 */
export function parseAdminRequest(value: unknown): AdminRequest {
  return readShape(() => {
    const f = new Fields(value, "request");
    return {
      method: label(f, "method", MAX_NAME_LENGTH),
      args: f.jsonObject("args"),
      version: f.int("version", { min: 1 }),
      requestId: f.optionalString("requestId", { maxLength: MAX_REQUEST_ID_LENGTH }) ?? null,
    };
  });
}

/**
 * Checks one decoded frame from the master on the admin link. A failed reply
 * keeps the wire error as it is; turn it back into an AbsError with
 * errorFromWire. Throws ProtocolError naming the field.
 */
export function parseAdminReply(value: unknown): AdminReply {
  return readShape((): AdminReply => {
    const f = new Fields(value, "reply");
    if (f.boolean("success")) {
      // `result` must be there, even if null: a reply without it is a bug on
      // the master's side, not an empty answer.
      return { success: true, result: present(f, "result") as JsonValue };
    }
    return { success: false, error: wireError(f.object("error")) };
  });
}
