// What the master's and the slave's handshakes share: the messages that
// belong to authentication, how a failure is reported to the link, and the
// turning of the master's error message into the slave's AuthError.
// The state machines themselves: master-handshake.ts, slave-handshake.ts.
// Both depend on a port ({send, close, authenticated}) rather than a
// socket, so their tests drive them with plain objects.

import { AbsError, AuthError, type ErrorCode } from "../errors.js";
import type {
  AuthMode,
  SlaveLinkMessage,
  SlaveLinkMessageType,
} from "../protocol/slave-messages.js";

/** The messages of authentication; any of them after auth-ok is a protocol error. */
export const HANDSHAKE_TYPES: ReadonlySet<SlaveLinkMessageType> = new Set<SlaveLinkMessageType>([
  "hello",
  "auth-challenge",
  "auth-response",
  "auth-proof",
  "auth-token",
  "auth-ok",
]);

/** Why a handshake ended without authentication. */
export interface HandshakeFailure {
  error: AbsError;
  /**
   * "proof": the master checked the slave's proof and refused it (a MAC that
   * does not verify, a Kerberos token that does not, a principal not
   * allowed): the one kind that counts against the slave's address in the
   * master's rate limiter (rate-limit.ts), since only it can be a guess.
   * "peer": the other side failed otherwise (silence, a timeout, a closed
   * socket, a bad or out-of-order message, a slave that gave up because its
   * KDC did not answer or its keytab is missing): logged, never counted, so
   * that a KDC outage or a flood of empty connections cannot lock a good
   * slave's address out. "local": this side could not do its part (a master
   * keytab missing): the peer is not to blame.
   */
  blame: "proof" | "peer" | "local";
}

/** The outcome of a successful handshake, on either side. */
export interface HandshakeResult {
  mode: AuthMode;
  /** The slave's name, as claimed in hello (signed by the MAC in realm-key mode). */
  name: string;
  /**
   * Who the slave is, authenticated: its Kerberos principal, or in
   * realm-key mode its name (which the MAC covers).
   */
  identity: string;
  /** The master's name, from auth-ok (the master's own, on the master). */
  master: string;
}

/** The port a handshake drives. */
export interface HandshakePort<Out extends SlaveLinkMessage> {
  /** Sends one message to the peer. */
  send(message: Out): void;
  /** The handshake failed; close the connection. Called at most once, after any error message was sent. */
  close(failure: HandshakeFailure): void;
  /** The handshake succeeded; called at most once. */
  authenticated(result: HandshakeResult): void;
}

/** Codes of the master's refusal the slave keeps as they are; anything else is AUTH_FAILED. */
const KEPT_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  "AUTH_FAILED",
  "AUTH_TIMEOUT",
  "AUTH_RATE_LIMITED",
  "KERBEROS_UNAVAILABLE",
  "KDC_UNREACHABLE",
  "STALE_TICKET",
  "TLS",
]);

/** The AuthError a slave reports for the error message `{code, message}` its master sent. */
export function refusalFromMaster(code: string, message: string): AuthError {
  const kept = KEPT_CODES.has(code)
    ? (code as ConstructorParameters<typeof AuthError>[0])
    : "AUTH_FAILED";
  return new AuthError(kept, `master refused authentication: ${message}`);
}

/** The AbsError of anything thrown during a handshake step. */
export function asAbsError(err: unknown): AbsError {
  if (err instanceof AbsError) return err;
  return new AbsError("INTERNAL", `authentication failed unexpectedly: ${String(err)}`, {
    cause: err,
  });
}
