// The slave's side of authenticating to the master, as a state machine over
// a port (handshake.ts). The link client calls start() once the TLS
// connection is up (and the master's certificate checked), then feeds it
// the master's messages one at a time, waiting for each feed to resolve
// before the next: a Kerberos step is asynchronous, and the master sends
// its reply token and auth-ok back to back. An error message from the
// master may be fed at any time, even while a step runs: it ends the
// handshake at once.
//
// States, and how each is entered:
//   idle                on construction; start() not called yet.
//   awaiting-challenge  realm key: start() sent hello.
//   awaiting-proof      realm key: auth-response{Ns, MAC} sent for the master's challenge.
//   initiating          Kerberos: start() sent hello; the initiator is being made
//                       and its first token computed (keytab, KDC).
//   awaiting-token      Kerberos: the first token was sent.
//   verifying           Kerberos: the master's reply token is being checked.
//   awaiting-ok         the master proved itself (auth-proof or reply token).
//   authenticated       auth-ok received.
//   failed              any failure; the master was told why (unless it told
//                       us) and the port told to close. Terminal.

import { randomBytes } from "node:crypto";
import { AbsError, AuthError, ProtocolError, assertNever } from "../errors.js";
import type { SlaveLinkMessage, SlaveToMasterMessage } from "../protocol/slave-messages.js";
import { SLAVE_PROTOCOL_VERSION } from "../protocol/slave-messages.js";
import {
  asAbsError,
  refusalFromMaster,
  type HandshakeFailure,
  type HandshakePort,
} from "./handshake.js";
import type { KerberosInitiator } from "./kerberos.js";
import { MASTER_LABEL, NONCE_BYTES, SLAVE_LABEL, macMatches, realmKeyMac } from "./realm-key.js";
import type { SlaveKey } from "./slave-key.js";

export type SlaveHandshakeState =
  | "idle"
  | "awaiting-challenge"
  | "awaiting-proof"
  | "initiating"
  | "awaiting-token"
  | "verifying"
  | "awaiting-ok"
  | "authenticated"
  | "failed";

/** How the slave proves itself. */
export type SlaveHandshakeAuth =
  | {
      mode: "realm-key";
      /** The slave's own key (slave-key.ts), of the name in `name`. */
      key: SlaveKey;
    }
  | {
      mode: "kerberos";
      /** Makes this connection's initiator (link-client.ts passes createKerberosInitiator). */
      initiator: () => Promise<KerberosInitiator>;
    };

export interface SlaveHandshakeOptions {
  /** The slave's name, sent in hello. */
  name: string;
  auth: SlaveHandshakeAuth;
  /** The master's address, `host:port`, for messages. */
  master: string;
  /** TLS exported keying material of this connection (32 bytes); required for realm-key mode. */
  binding: Buffer;
}

const WAITING_FOR: Record<SlaveHandshakeState, string> = {
  idle: "start",
  "awaiting-challenge": "auth-challenge",
  "awaiting-proof": "auth-proof",
  initiating: "its own first Kerberos token",
  "awaiting-token": "auth-token",
  verifying: "its check of the master's Kerberos token",
  "awaiting-ok": "auth-ok",
  authenticated: "nothing (authentication was complete)",
  failed: "nothing (authentication had failed)",
};

/** Both nonces of the realm-key exchange, known once the challenge is answered. */
interface Nonces {
  masterNonce: Buffer;
  slaveNonce: Buffer;
}

/**
 * The state and what only that state has: the nonces while the proof is
 * awaited, the Kerberos initiator while its token is, the principal it
 * named once the master's token is checked.
 */
type SlavePhase =
  | { state: "idle" | "awaiting-challenge" | "initiating" | "authenticated" | "failed" }
  | { state: "awaiting-proof"; nonces: Nonces }
  | { state: "awaiting-token" | "verifying"; initiator: KerberosInitiator }
  | { state: "awaiting-ok"; principal: string | undefined };

export class SlaveHandshake {
  private phase: SlavePhase = { state: "idle" };

  constructor(
    private readonly opts: SlaveHandshakeOptions,
    private readonly port: HandshakePort<SlaveToMasterMessage>,
  ) {}

  get state(): SlaveHandshakeState {
    return this.phase.state;
  }

  get waitingFor(): string {
    return WAITING_FOR[this.phase.state];
  }

  /** Sends hello (and in Kerberos mode the first token). Resolves when done; never rejects. */
  async start(): Promise<void> {
    if (this.phase.state !== "idle") return;
    const { auth, name } = this.opts;
    this.port.send({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name, mode: auth.mode });
    switch (auth.mode) {
      case "realm-key":
        this.phase = { state: "awaiting-challenge" };
        return;
      case "kerberos":
        this.phase = { state: "initiating" };
        try {
          const initiator = await auth.initiator();
          if (this.finished()) return;
          const step = await initiator.step(null);
          if (this.finished()) return;
          if (step.tokenOut === null) {
            throw new AuthError("AUTH_FAILED", "the Kerberos initiator produced no first token");
          }
          this.phase = { state: "awaiting-token", initiator };
          this.port.send({ type: "auth-token", token: step.tokenOut.toString("base64") });
        } catch (err) {
          this.fail(asAbsError(err), "local");
        }
        return;
      default:
        return assertNever(auth);
    }
  }

  /** Takes one message from the master; see the header for ordering. Never rejects. */
  async feed(message: SlaveLinkMessage): Promise<void> {
    try {
      await this.handle(message);
    } catch (err) {
      // A failure in our own check of the master's answers: the master is at fault.
      this.fail(asAbsError(err), "peer");
    }
  }

  /** The handshake ran out of time. */
  timeout(ms: number): void {
    if (this.finished()) return;
    this.fail(
      new AuthError(
        "AUTH_TIMEOUT",
        `authentication with the master at ${this.opts.master} did not complete within ${ms} ms (the slave was waiting for ${this.waitingFor})`,
      ),
      "peer",
    );
  }

  /** The master closed the connection (or it broke) before auth-ok. */
  peerClosed(): void {
    if (this.finished()) return;
    this.fail(
      new AuthError(
        "AUTH_FAILED",
        `the master at ${this.opts.master} closed the connection during authentication (the slave was waiting for ${this.waitingFor})`,
      ),
      "peer",
      false,
    );
  }

  /** A frame from the master could not be decoded or validated. */
  protocolError(error: AbsError): void {
    if (this.finished()) return;
    this.fail(error, "peer");
  }

  private finished(): boolean {
    return this.phase.state === "authenticated" || this.phase.state === "failed";
  }

  private async handle(message: SlaveLinkMessage): Promise<void> {
    if (message.type === "error") {
      if (!this.finished())
        this.fail(refusalFromMaster(message.code, message.message), "peer", false);
      return;
    }
    const phase = this.phase;
    switch (phase.state) {
      case "idle":
      case "initiating":
      case "verifying":
      case "authenticated":
        throw this.outOfOrder(message);
      case "awaiting-challenge":
        if (message.type !== "auth-challenge") throw this.outOfOrder(message);
        this.challenge(message.nonce);
        return;
      case "awaiting-proof":
        if (message.type !== "auth-proof") throw this.outOfOrder(message);
        this.proof(phase.nonces, message.mac);
        return;
      case "awaiting-token":
        if (message.type !== "auth-token") throw this.outOfOrder(message);
        await this.token(phase.initiator, message.token);
        return;
      case "awaiting-ok":
        if (message.type !== "auth-ok") throw this.outOfOrder(message);
        this.ok(phase.principal, message.master, message.identity);
        return;
      case "failed":
        return;
      default:
        return assertNever(phase);
    }
  }

  private outOfOrder(message: SlaveLinkMessage): AuthError {
    return new AuthError(
      "AUTH_FAILED",
      `unexpected ${message.type} message from the master at ${this.opts.master} while the slave was waiting for ${this.waitingFor}: messages out of order or replayed`,
    );
  }

  private slaveKey(): SlaveKey {
    if (this.opts.auth.mode !== "realm-key")
      throw new AbsError("INTERNAL", "not in realm-key mode");
    return this.opts.auth.key;
  }

  private challenge(nonceText: string): void {
    const masterNonce = Buffer.from(nonceText, "base64");
    if (masterNonce.length !== NONCE_BYTES) {
      throw new ProtocolError(
        `auth-challenge.nonce: expected ${NONCE_BYTES} bytes, got ${masterNonce.length}`,
        { field: "auth-challenge.nonce" },
      );
    }
    const nonces: Nonces = { masterNonce, slaveNonce: randomBytes(NONCE_BYTES) };
    const mac = realmKeyMac(this.slaveKey(), SLAVE_LABEL, this.macInput(nonces));
    this.phase = { state: "awaiting-proof", nonces };
    this.port.send({
      type: "auth-response",
      nonce: nonces.slaveNonce.toString("base64"),
      mac: mac.toString("base64"),
    });
  }

  private proof(nonces: Nonces, macText: string): void {
    const expected = realmKeyMac(this.slaveKey(), MASTER_LABEL, this.macInput(nonces));
    if (!macMatches(expected, Buffer.from(macText, "base64"))) {
      throw new AuthError(
        "AUTH_FAILED",
        `master failed to prove the key of this slave: possible relay or wrong key (the master at ${this.opts.master} does not hold the realm key that ${this.slaveKey().source} was made from, or something between them terminated TLS)`,
      );
    }
    this.phase = { state: "awaiting-ok", principal: undefined };
  }

  private macInput(nonces: Nonces): {
    masterNonce: Buffer;
    slaveNonce: Buffer;
    name: string;
    ekm: Buffer;
  } {
    return {
      ...nonces,
      name: this.opts.name,
      ekm: this.opts.binding,
    };
  }

  private async token(initiator: KerberosInitiator, tokenText: string): Promise<void> {
    this.phase = { state: "verifying", initiator };
    const step = await initiator.step(Buffer.from(tokenText, "base64"));
    if (this.finished()) return;
    if (!step.done) {
      throw new AuthError(
        "AUTH_FAILED",
        "the Kerberos exchange did not complete with the master's reply",
      );
    }
    this.phase = { state: "awaiting-ok", principal: step.principal ?? initiator.principal };
  }

  private ok(principal: string | undefined, master: string, identity: string): void {
    const { auth, name } = this.opts;
    const expected = auth.mode === "realm-key" ? name : principal;
    if (expected !== undefined && identity !== expected) {
      throw new AuthError(
        "AUTH_FAILED",
        `the master at ${this.opts.master} authenticated this slave as ${identity}, not as ${expected}`,
      );
    }
    this.phase = { state: "authenticated" };
    this.port.authenticated({ mode: auth.mode, name, identity, master });
  }

  /** Ends the handshake, telling the master why unless the master told us. */
  private fail(error: AbsError, blame: HandshakeFailure["blame"], tellPeer = true): void {
    if (this.finished()) return;
    this.phase = { state: "failed" };
    if (tellPeer) this.port.send({ type: "error", code: error.code, message: error.message });
    this.port.close({ error, blame });
  }
}
