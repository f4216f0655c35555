// What the slave-link and admin-link validators share: the bounds on sizes,
// the field kinds JSON itself lacks (base64, names, wire errors), and turning
// a ShapeError into the ProtocolError the connection code expects.
//
// Unknown extra fields are ignored, not refused. A peer of the same protocol
// version may add an optional field (say `progress.eta`) without breaking
// older peers; anything incompatible bumps the version exchanged in `hello`
// and in every admin request. Validators build fresh objects holding only the
// known fields, so an unknown one never travels further than the parser.
// (Free-form JSON objects — dispatch `params`, result `data`, admin `args` and
// `result` — are kept as they are: their shape belongs to the method.)

import { ProtocolError, type ErrorContext, type WireError } from "../errors.js";
import { Fields, ShapeError, showValue } from "../json-shape.js";

/** Names: slave names, job definitions, backup methods, admin methods. In characters. */
export const MAX_NAME_LENGTH = 255;
/** Identities and host names: `master`, `identity` (a Kerberos principal can be long). */
export const MAX_IDENTITY_LENGTH = 1024;
/** Error codes. */
export const MAX_CODE_LENGTH = 64;
/** Free text: result messages, reject reasons, error messages. 64 Ki characters. */
export const MAX_TEXT_LENGTH = 64 * 1024;
/** File paths reported in progress (Linux PATH_MAX). */
export const MAX_PATH_LENGTH = 4096;
/** Realm-key nonces and MACs, in base64 characters (they are 32 bytes; room for 512). */
export const MAX_NONCE_BASE64_LENGTH = 684;
/**
 * Kerberos GSSAPI tokens, in base64 characters: 96 KiB decoded. A ticket with
 * a large Windows PAC can pass 48 KiB, so this leaves room.
 */
export const MAX_TOKEN_BASE64_LENGTH = 128 * 1024;
/** Jobs a slave may report running, and unacknowledged results, in one `register`. */
export const MAX_REPORTED_JOBS = 10_000;

/**
 * Runs a validator, turning a ShapeError into a ProtocolError that keeps the
 * message (`dispatch.jobId: expected an integer >= 1, got "x"`) and names the
 * field in its context.
 */
export function readShape<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ShapeError) throw new ProtocolError(err.message, { field: err.field });
    throw err;
  }
}

function path(f: Fields, key: string): string {
  return f.prefix === "" ? key : `${f.prefix}.${key}`;
}

// Standard base64 (RFC 4648 section 4) with its padding, as Buffer#toString("base64") writes it.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A non-empty, padded base64 string of at most `maxLength` characters. */
export function base64(f: Fields, key: string, maxLength: number): string {
  const v = f.string(key, { nonEmpty: true, maxLength });
  if (!BASE64.test(v))
    throw new ShapeError(path(f, key), `expected a base64 string, got ${showValue(v)}`);
  return v;
}

// C0 controls, DEL and C1 controls: they would let a name forge log lines.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * A name or identity that ends up in log lines and file names: non-empty, at
 * most `maxLength` characters, no control characters.
 */
export function label(f: Fields, key: string, maxLength: number): string {
  const v = f.string(key, { nonEmpty: true, maxLength });
  if (CONTROL.test(v)) {
    throw new ShapeError(path(f, key), `expected no control characters, got ${showValue(v)}`);
  }
  return v;
}

/** Any JSON value, required to be present (JSON has no `undefined`, so absent means missing). */
export function present(f: Fields, key: string): unknown {
  const v = f.raw[key];
  if (v === undefined) throw new ShapeError(path(f, key), "expected a value, got nothing");
  return v;
}

/**
 * An error as it crosses either link: `{code, message, context?}` (see
 * AbsError#toWire). `context` is optional; each of its fields is checked for
 * type when present, and unknown ones are dropped like any unknown field.
 */
export function wireError(f: Fields): WireError {
  const code = label(f, "code", MAX_CODE_LENGTH);
  const message = f.string("message", { maxLength: MAX_TEXT_LENGTH });
  if (!f.has("context")) return { code, message };
  const c = f.object("context");
  const context: ErrorContext = {};
  const jobId = c.optionalInt("jobId", { min: 1 });
  if (jobId !== undefined) context.jobId = jobId;
  const line = c.optionalInt("line", { min: 0 });
  if (line !== undefined) context.line = line;
  const pid = c.optionalInt("pid", { min: 0 });
  if (pid !== undefined) context.pid = pid;
  for (const key of ["slave", "file", "field", "peer"] as const) {
    const v = c.optionalString(key, { maxLength: MAX_PATH_LENGTH });
    if (v !== undefined) context[key] = v;
  }
  return { code, message, context };
}
