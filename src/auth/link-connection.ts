// One TLS connection of the slave link, on either side: framing (ETX JSON),
// validation of every message, the hand-over from the handshake to the
// application, and closing with an error message. The link server (master)
// and the link client (slave) each wrap an accepted or dialled TLS socket in
// one of these, drive their handshake through its hooks, and hand it to
// their caller once authenticated, as a SlaveLinkConnection.
//
// States, and how each is entered:
//   authenticating  on construction: every message goes to the handshake hook.
//   open            open() was called after a successful handshake: messages
//                   go to the application's onMessage handler.
//   closed          close() was called, the peer closed, or the socket broke,
//                   a frame was bad, or a message was not allowed. Terminal.
//
// After authentication a frame that cannot be decoded, a message that fails
// validation, a handshake message (a replayed auth-response, a second hello)
// or a message the other side never sends (a slave sending dispatch) is a
// protocol error: the peer gets an error message and the connection is
// closed. Other connections are never affected.

import type tls from "node:tls";
import { AbsError, ProtocolError, describeError } from "../errors.js";
import { FrameDecoder, encodeFrame } from "../protocol/frame.js";
import {
  parseSlaveMessage,
  type AuthMode,
  type MasterToSlaveMessage,
  type SlaveLinkMessage,
  type SlaveLinkMessageType,
  type SlaveToMasterMessage,
} from "../protocol/slave-messages.js";
import { HANDSHAKE_TYPES, type HandshakeResult } from "./handshake.js";

/** An authenticated slave-link connection, as the master or the slave uses it. */
export interface SlaveLinkConnection<In extends SlaveLinkMessage, Out extends SlaveLinkMessage> {
  readonly mode: AuthMode;
  /** The slave's name from hello. In Kerberos mode it is only claimed: trust `identity`. */
  readonly name: string;
  /** The authenticated slave: its principal (Kerberos) or its name (realm key, covered by the MAC). */
  readonly identity: string;
  /** The master's name, from auth-ok. */
  readonly master: string;
  /** The other end's address, `host:port`. */
  readonly peer: string;
  readonly state: LinkConnectionState;
  /**
   * Sends one message. Returns false (and drops it) when the connection is
   * closed. Throws FrameTooLargeError for a message over the frame limit.
   */
  send(message: Out): boolean;
  /**
   * Sets the handler of incoming messages. Messages that arrive before it is
   * set are held (and the socket paused), then delivered in order.
   */
  onMessage(handler: (message: In) => void): void;
  /**
   * Called once when the connection closes: with the error that closed it
   * (a protocol error, a broken socket), or null for an orderly close by
   * either side. Called at once if it is already closed.
   */
  onClose(handler: (error: AbsError | null) => void): void;
  /** Closes the connection, first sending `error` to the peer when given. Idempotent. */
  close(error?: AbsError): void;
}

/** The master's view of a slave connection. */
export type MasterSideConnection = SlaveLinkConnection<SlaveToMasterMessage, MasterToSlaveMessage>;
/** The slave's view of its connection to the master. */
export type SlaveSideConnection = SlaveLinkConnection<MasterToSlaveMessage, SlaveToMasterMessage>;

export type LinkConnectionState = "authenticating" | "open" | "closed";

/** Message types each side may receive after authentication. */
const INBOUND: Record<"master" | "slave", ReadonlySet<SlaveLinkMessageType>> = {
  master: new Set<SlaveLinkMessageType>([
    "register",
    "heartbeat",
    "started",
    "progress",
    "result",
    "reject",
    "error",
  ]),
  slave: new Set<SlaveLinkMessageType>([
    "registered",
    "heartbeat",
    "dispatch",
    "ack",
    "cancel",
    "error",
  ]),
};

/** How long a connection closed with an error waits for the peer to close, in ms. */
const LINGER_MS = 2_000;

/** Hooks the owner's handshake gets during `authenticating`. */
export interface HandshakeHooks {
  /** A valid message arrived. */
  message(message: SlaveLinkMessage): void;
  /** A frame could not be decoded or validated. */
  protocolError(error: AbsError): void;
  /** The peer closed or the socket broke. */
  closed(): void;
}

export interface LinkConnectionOptions {
  socket: tls.TLSSocket;
  /** Which end this is: decides which messages may arrive after authentication. */
  side: "master" | "slave";
  /** The other end, `host:port`. */
  peer: string;
  /** Largest frame accepted, in bytes. Default 1 MiB. */
  maxFrameBytes?: number;
  hooks: HandshakeHooks;
}

export class LinkConnection<
  In extends SlaveLinkMessage,
  Out extends SlaveLinkMessage,
> implements SlaveLinkConnection<In, Out> {
  state: LinkConnectionState = "authenticating";
  readonly peer: string;
  private result: HandshakeResult | undefined;
  private readonly socket: tls.TLSSocket;
  private readonly side: "master" | "slave";
  private readonly decoder: FrameDecoder;
  private readonly maxFrameBytes: number | undefined;
  private hooks: HandshakeHooks | undefined;
  private handler: ((message: In) => void) | undefined;
  private readonly held: In[] = [];
  private readonly closeHandlers: Array<(error: AbsError | null) => void> = [];
  private closeReason: AbsError | null = null;
  private closeReported = false;

  constructor(opts: LinkConnectionOptions) {
    this.socket = opts.socket;
    this.side = opts.side;
    this.peer = opts.peer;
    this.hooks = opts.hooks;
    this.maxFrameBytes = opts.maxFrameBytes;
    this.decoder = new FrameDecoder({ maxFrameBytes: opts.maxFrameBytes });
    this.socket.on("data", (chunk: Buffer) => this.received(chunk));
    this.socket.on("error", (err) => {
      if (this.state === "closed") return;
      this.lost(
        new AbsError("UNREACHABLE", `connection with ${this.peer} broke: ${describeError(err)}`, {
          cause: err,
        }),
      );
    });
    this.socket.on("close", () => {
      if (this.state !== "closed") this.lost(null);
      this.reportClose();
    });
  }

  get mode(): AuthMode {
    return this.authenticated().mode;
  }
  get name(): string {
    return this.authenticated().name;
  }
  get identity(): string {
    return this.authenticated().identity;
  }
  get master(): string {
    return this.authenticated().master;
  }

  private authenticated(): HandshakeResult {
    if (this.result === undefined) {
      throw new AbsError("INTERNAL", "the connection is not authenticated yet");
    }
    return this.result;
  }

  /** Sends a handshake message (any type) while authenticating. */
  sendHandshake(message: SlaveLinkMessage): void {
    if (this.state === "closed" || this.socket.destroyed) return;
    this.socket.write(encodeFrame(message, this.maxFrameBytes));
  }

  /** The handshake succeeded: from now on messages go to the application. */
  open(result: HandshakeResult): void {
    if (this.state !== "authenticating") return;
    this.result = result;
    this.hooks = undefined;
    this.state = "open";
  }

  send(message: Out): boolean {
    if (this.state !== "open" || this.socket.destroyed) return false;
    this.socket.write(encodeFrame(message, this.maxFrameBytes));
    return true;
  }

  onMessage(handler: (message: In) => void): void {
    this.handler = handler;
    if (this.held.length > 0) {
      queueMicrotask(() => {
        while (this.held.length > 0 && this.handler !== undefined && this.state === "open") {
          this.handler(this.held.shift() as In);
        }
        if (this.state === "open") this.socket.resume();
      });
    }
  }

  onClose(handler: (error: AbsError | null) => void): void {
    if (this.closeReported) handler(this.closeReason);
    else this.closeHandlers.push(handler);
  }

  close(error?: AbsError): void {
    this.shutdown(error ?? null, true);
  }

  /**
   * Closes the connection with `error` as its reason, sending it to the
   * peer only when `notify` (a failed handshake has already sent its own).
   * A peer that does not close its side is cut off after `lingerMs`
   * (default 2 s); with 0, as soon as what was written is flushed.
   */
  shutdown(error: AbsError | null, notify: boolean, lingerMs = LINGER_MS): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.hooks = undefined;
    this.closeReason = error;
    this.socket.resume(); // keep reading (and discarding) so the close is not a reset
    if (this.socket.destroyed) {
      this.reportClose();
      return;
    }
    if (error !== null && notify) {
      try {
        this.socket.write(encodeFrame({ type: "error", code: error.code, message: error.message }));
      } catch {
        // An error message too large to encode: close without it.
      }
    }
    this.socket.end();
    if (lingerMs === 0) {
      // What was written is in the kernel once 'finish' comes: the error
      // message still reaches the peer, and nothing unread makes it a reset
      // (the socket was resumed above).
      this.socket.once("finish", () => this.socket.destroy());
    }
    // A peer that does not close its side is cut off after a while (also
    // with 0: a peer that reads nothing may keep 'finish' from coming).
    const timer = setTimeout(() => this.socket.destroy(), lingerMs === 0 ? LINGER_MS : lingerMs);
    timer.unref();
    this.socket.once("close", () => clearTimeout(timer));
  }

  /** The socket closed or broke without close() being called. */
  private lost(error: AbsError | null): void {
    const hooks = this.hooks;
    this.state = "closed";
    this.hooks = undefined;
    this.closeReason = error;
    if (hooks !== undefined) hooks.closed();
    if (!this.socket.destroyed) this.socket.destroy();
  }

  private reportClose(): void {
    if (this.closeReported) return;
    this.closeReported = true;
    for (const handler of this.closeHandlers.splice(0)) handler(this.closeReason);
  }

  private received(chunk: Buffer): void {
    if (this.state === "closed") return;
    let frames: unknown[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.protocolError(err instanceof AbsError ? err : new ProtocolError(describeError(err)));
      return;
    }
    for (const frame of frames) {
      // A message handled in this loop may have closed the connection.
      if ((this.state as LinkConnectionState) === "closed") return;
      let message: SlaveLinkMessage;
      try {
        message = parseSlaveMessage(frame);
      } catch (err) {
        this.protocolError(err instanceof AbsError ? err : new ProtocolError(describeError(err)));
        return;
      }
      this.route(message);
    }
  }

  private route(message: SlaveLinkMessage): void {
    if (this.state === "authenticating") {
      this.hooks?.message(message);
      return;
    }
    if (HANDSHAKE_TYPES.has(message.type)) {
      this.close(
        new ProtocolError(
          `unexpected ${message.type} message after authentication had completed: messages out of order or replayed`,
        ),
      );
      return;
    }
    if (!INBOUND[this.side].has(message.type)) {
      const from = this.side === "master" ? "slave" : "master";
      this.close(new ProtocolError(`a ${from} never sends a ${message.type} message`));
      return;
    }
    const inbound = message as In;
    if (this.handler !== undefined && this.held.length === 0) {
      this.handler(inbound);
    } else {
      this.held.push(inbound);
      this.socket.pause();
    }
  }

  private protocolError(error: AbsError): void {
    if (this.state === "authenticating") this.hooks?.protocolError(error);
    else this.close(error);
  }
}
