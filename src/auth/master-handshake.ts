// The master's side of authenticating one slave connection, as a state
// machine over a port (handshake.ts). The link server feeds it every
// message until auth-ok, and calls timeout() or peerClosed() when those
// happen; it never touches a socket.
//
// States, and how each is entered:
//   awaiting-hello     on construction: nothing received yet.
//   awaiting-response  realm key: hello accepted, auth-challenge{Nm} sent.
//   awaiting-token     Kerberos: hello accepted; the slave's first GSSAPI token is due.
//   accepting          Kerberos: the token arrived; the acceptor is checking it
//                      (asynchronous: keytab read, GSSAPI). The slave must wait
//                      for the reply, so any message now is out of order.
//   authenticated      auth-ok sent (after auth-proof, or the reply token).
//   failed             any failure; the error message (if any) was sent and
//                      the port told to close. Terminal, like authenticated.
//
// Anything not expected in the current state fails the handshake: a second
// hello, a replayed auth-response, an auth-token in realm-key mode, a
// register before auth-ok, an error from the slave.

import { randomBytes } from "node:crypto";
import { AbsError, AuthError, ProtocolError, assertNever } from "../errors.js";
import type {
  AuthMode,
  MasterToSlaveMessage,
  SlaveLinkMessage,
} from "../protocol/slave-messages.js";
import { SLAVE_PROTOCOL_VERSION } from "../protocol/slave-messages.js";
import { MasterKerberosFault, type KerberosAcceptor, type KerberosStep } from "./kerberos.js";
import { deriveSlaveKey } from "./slave-key.js";
import { asAbsError, type HandshakeFailure, type HandshakePort } from "./handshake.js";
import {
  MASTER_LABEL,
  NONCE_BYTES,
  SLAVE_LABEL,
  macMatches,
  realmKeyMac,
  type RealmKey,
} from "./realm-key.js";

export type MasterHandshakeState =
  | "awaiting-hello"
  | "awaiting-response"
  | "awaiting-token"
  | "accepting"
  | "authenticated"
  | "failed";

export interface MasterHandshakeOptions {
  /** The master's name, sent in auth-ok (its host name). */
  masterName: string;
  /** The slave's address, `host:port`, for messages. */
  peer: string;
  /**
   * The realm key, when the master accepts realm-key slaves: each slave's
   * MACs are made with that slave's key, derived from it (slave-key.ts).
   */
  realmKey?: RealmKey;
  /**
   * Makes the Kerberos acceptor of this connection, when the master accepts
   * Kerberos slaves (link-server.ts passes createKerberosAcceptor).
   */
  kerberosAcceptor?: () => Promise<KerberosAcceptor>;
  /**
   * TLS exported keying material of this connection (realm-key.ts EKM_LABEL,
   * 32 bytes). Required for realm-key mode.
   */
  binding: Buffer;
}

/** What each state waits for, for messages. */
const WAITING_FOR: Record<MasterHandshakeState, string> = {
  "awaiting-hello": "hello",
  "awaiting-response": "auth-response",
  "awaiting-token": "auth-token",
  accepting: "the master to check the slave's Kerberos token",
  authenticated: "nothing (authentication was complete)",
  failed: "nothing (authentication had failed)",
};

/**
 * The state and what only that state has: the hello's name and the
 * challenge's nonce (with the realm key) while the response is awaited, the
 * name and the acceptor's maker while the Kerberos token is.
 */
type MasterPhase =
  | { state: "awaiting-hello" | "authenticated" | "failed" }
  | { state: "awaiting-response"; name: string; masterNonce: Buffer; key: RealmKey }
  | {
      state: "awaiting-token" | "accepting";
      name: string;
      create: () => Promise<KerberosAcceptor>;
    };

export class MasterHandshake {
  private phase: MasterPhase = { state: "awaiting-hello" };
  /** For log lines only (claimedIdentity), whatever the state. */
  private name: string | undefined;
  private principal: string | undefined;

  constructor(
    private readonly opts: MasterHandshakeOptions,
    private readonly port: HandshakePort<MasterToSlaveMessage>,
  ) {
    if (opts.realmKey === undefined && opts.kerberosAcceptor === undefined) {
      throw new AbsError("INTERNAL", "a master handshake needs a realm key or a Kerberos acceptor");
    }
  }

  /** Who the slave claims (or, once known, is) for log lines: principal, hello name or "(none)". */
  get claimedIdentity(): string {
    return this.principal ?? this.name ?? "(none)";
  }

  get state(): MasterHandshakeState {
    return this.phase.state;
  }

  /** The state's expectation, for messages (e.g. "auth-response"). */
  get waitingFor(): string {
    return WAITING_FOR[this.phase.state];
  }

  /**
   * Takes one message from the slave. Resolves when the message has been
   * dealt with (for a Kerberos token, after the acceptor's step); never
   * rejects: failures go to the port.
   */
  async feed(message: SlaveLinkMessage): Promise<void> {
    try {
      await this.handle(message);
    } catch (err) {
      this.fail(asAbsError(err), "peer");
    }
  }

  /** The handshake ran out of time; `ms` is the limit, for the message. */
  timeout(ms: number): void {
    if (this.finished()) return;
    this.fail(
      new AuthError(
        "AUTH_TIMEOUT",
        `authentication did not complete within ${ms} ms (the master was waiting for ${this.waitingFor})`,
      ),
      "peer",
    );
  }

  /** The slave closed the connection (or it broke) before authentication completed. */
  peerClosed(): void {
    if (this.finished()) return;
    this.fail(
      new AuthError(
        "AUTH_FAILED",
        `the slave closed the connection before authentication completed (the master was waiting for ${this.waitingFor})`,
      ),
      "peer",
    );
  }

  /** A frame that could not be decoded or validated arrived. */
  protocolError(error: AbsError): void {
    if (this.finished()) return;
    this.fail(error, "peer");
  }

  private finished(): boolean {
    return this.phase.state === "authenticated" || this.phase.state === "failed";
  }

  private async handle(message: SlaveLinkMessage): Promise<void> {
    if (message.type === "error") {
      if (this.finished()) return;
      // The slave gave up (its keytab is missing, the master's proof was wrong...).
      this.fail(
        new AuthError("AUTH_FAILED", `the slave gave up: ${message.message} (${message.code})`),
        "peer",
        false,
      );
      return;
    }
    const phase = this.phase;
    switch (phase.state) {
      case "awaiting-hello":
        if (message.type !== "hello") throw this.outOfOrder(message);
        this.hello(message.name, message.mode, message.version);
        return;
      case "awaiting-response":
        if (message.type !== "auth-response") throw this.outOfOrder(message);
        this.response(phase, message.nonce, message.mac);
        return;
      case "awaiting-token":
        if (message.type !== "auth-token") throw this.outOfOrder(message);
        await this.token(phase.name, phase.create, message.token);
        return;
      case "accepting":
      case "authenticated":
        throw this.outOfOrder(message);
      case "failed":
        return;
      default:
        return assertNever(phase);
    }
  }

  private outOfOrder(message: SlaveLinkMessage): AuthError {
    const when =
      this.phase.state === "authenticated"
        ? "after authentication had completed"
        : `while the master was waiting for ${this.waitingFor}`;
    return new AuthError(
      "AUTH_FAILED",
      `unexpected ${message.type} message ${when}: messages out of order or replayed`,
    );
  }

  private hello(name: string, mode: AuthMode, version: number): void {
    this.name = name;
    if (version !== SLAVE_PROTOCOL_VERSION) {
      throw new ProtocolError(
        `slave protocol version ${version} is not spoken by this master (it speaks ${SLAVE_PROTOCOL_VERSION}); run the same ABS release on master and slaves`,
      );
    }
    switch (mode) {
      case "realm-key": {
        const key = this.opts.realmKey;
        if (key === undefined) {
          throw new AuthError(
            "AUTH_FAILED",
            "this master does not accept realm-key authentication (it is configured for kerberos)",
          );
        }
        const masterNonce = randomBytes(NONCE_BYTES);
        this.phase = { state: "awaiting-response", name, masterNonce, key };
        this.port.send({ type: "auth-challenge", nonce: masterNonce.toString("base64") });
        return;
      }
      case "kerberos": {
        const create = this.opts.kerberosAcceptor;
        if (create === undefined) {
          throw new AuthError(
            "AUTH_FAILED",
            "this master does not accept Kerberos authentication (it is configured for realm-key)",
          );
        }
        this.phase = { state: "awaiting-token", name, create };
        return;
      }
      default:
        return assertNever(mode);
    }
  }

  private response(
    { name, masterNonce, key }: { name: string; masterNonce: Buffer; key: RealmKey },
    nonceText: string,
    macText: string,
  ): void {
    const slaveNonce = Buffer.from(nonceText, "base64");
    if (slaveNonce.length !== NONCE_BYTES) {
      throw new ProtocolError(
        `auth-response.nonce: expected ${NONCE_BYTES} bytes, got ${slaveNonce.length}`,
        { field: "auth-response.nonce" },
      );
    }
    if (slaveNonce.equals(masterNonce)) {
      this.fail(
        new AuthError("AUTH_FAILED", "the slave returned the master's own nonce (a reflection)"),
        "proof",
      );
      return;
    }
    const input = { masterNonce, slaveNonce, name, ekm: this.opts.binding };
    // The slave's key, not the realm key: a MAC proves this one name, and
    // the proof below convinces this one slave.
    const slaveKey = deriveSlaveKey(key, name);
    const expected = realmKeyMac(slaveKey, SLAVE_LABEL, input);
    if (!macMatches(expected, Buffer.from(macText, "base64"))) {
      this.fail(
        new AuthError(
          "AUTH_FAILED",
          `wrong key: the MAC of slave "${name}" does not verify (the slave does not hold the key of "${name}" made from this master's realm key with \`abs keygen --slave ${name}\`, or a relay sits between them)`,
        ),
        "proof",
      );
      return;
    }
    const proof = realmKeyMac(slaveKey, MASTER_LABEL, input);
    this.succeed("realm-key", name, name, () =>
      this.port.send({ type: "auth-proof", mac: proof.toString("base64") }),
    );
  }

  private async token(
    name: string,
    create: () => Promise<KerberosAcceptor>,
    tokenText: string,
  ): Promise<void> {
    this.phase = { state: "accepting", name, create };
    let acceptor: KerberosAcceptor;
    try {
      acceptor = await create();
    } catch (err) {
      // The master's own keytab or setup is at fault, not the slave.
      this.fail(asAbsError(err), "local");
      return;
    }
    if (this.finished()) return; // timed out or closed meanwhile
    let step: KerberosStep;
    try {
      step = await acceptor.step(Buffer.from(tokenText, "base64"));
    } catch (err) {
      if (err instanceof MasterKerberosFault) {
        // The master's own keytab cannot take the ticket: its fault, told
        // to the slave only as such (or as a stale ticket it can renew).
        if (!this.finished()) this.fail(err, "local", true, err.toSlave);
        return;
      }
      // The token does not verify, or its principal is refused.
      this.fail(asAbsError(err), "proof");
      return;
    }
    if (this.finished()) return;
    if (!step.done || step.principal === undefined || step.tokenOut === null) {
      throw new AuthError(
        "AUTH_FAILED",
        "the Kerberos exchange did not complete in one token (the krb5 mechanism needs one)",
      );
    }
    this.principal = step.principal;
    const reply = step.tokenOut.toString("base64");
    this.succeed("kerberos", name, step.principal, () =>
      this.port.send({ type: "auth-token", token: reply }),
    );
  }

  private succeed(mode: AuthMode, name: string, identity: string, sendProof: () => void): void {
    this.phase = { state: "authenticated" };
    sendProof();
    this.port.send({ type: "auth-ok", master: this.opts.masterName, identity });
    this.port.authenticated({ mode, name, identity, master: this.opts.masterName });
  }

  /**
   * Ends the handshake: tells the slave why (unless it told us), then the
   * port. A local failure's details stay in the master's log: the slave
   * learns only that the master could not authenticate it, or `told`, a
   * message without the master's detail that the slave can act on.
   */
  private fail(
    error: AbsError,
    blame: HandshakeFailure["blame"],
    tellPeer = true,
    told?: { code: string; message: string },
  ): void {
    if (this.finished()) return;
    this.phase = { state: "failed" };
    if (tellPeer) {
      const message =
        blame === "local"
          ? "the master cannot authenticate slaves now (see the master's log)"
          : error.message;
      this.port.send({ type: "error", ...(told ?? { code: error.code, message }) });
    }
    this.port.close({ error, blame });
  }
}
