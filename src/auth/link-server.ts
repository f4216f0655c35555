// The master's end of the slave link: a TLS server that authenticates each
// connection (MasterHandshake) and hands the authenticated ones to the
// master as MasterSideConnection objects.
//
// Per connection: TLS (1.3, the master's certificate), then the handshake
// within `handshakeTimeoutMs`, then the application. Every failure before
// authentication closes that connection only, after sending the slave an
// error message {code, message} when the socket still allows it, and leaves
// exactly one log line naming the peer address, the claimed identity (the
// hello name, the Kerberos principal, or "(none)") and the reason. Failed
// attempts count against the peer's address (rate-limit.ts); a blocked
// address's new connections are refused with AUTH_RATE_LIMITED right after
// the TLS handshake, before any authentication work.
//
// States: `listening` from listen() until close(), then `closed`.

import { EventEmitter } from "node:events";
import type net from "node:net";
import tls from "node:tls";
import { AbsError, AuthError, describeError } from "../errors.js";
import type { Logger } from "../log.js";
import type { MasterToSlaveMessage, SlaveToMasterMessage } from "../protocol/slave-messages.js";
import type { HandshakeFailure, HandshakeResult } from "./handshake.js";
import {
  createKerberosAcceptor,
  type KerberosAcceptor,
  type KerberosAcceptorOptions,
} from "./kerberos.js";
import { LinkConnection, type MasterSideConnection } from "./link-connection.js";
import { MasterHandshake } from "./master-handshake.js";
import { FailureRateLimiter, type RateLimitOptions } from "./rate-limit.js";
import { EKM_BYTES, EKM_LABEL, type RealmKey } from "./realm-key.js";
import { TLS_MIN_VERSION } from "./tls.js";

/** Default time a connection has for TLS and for authentication, each, in ms. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface LinkServerOptions {
  /** Address to listen on, e.g. "0.0.0.0" or "127.0.0.1". */
  host: string;
  /** Port to listen on; 0 picks a free one (see `port`). */
  port: number;
  /** The master's certificate and key, PEM (tls.ts loadOrCreateMasterTls). */
  tls: { cert: string; key: string };
  /** The master's name, sent to slaves in auth-ok (its host name). */
  masterName: string;
  /** Accept realm-key slaves with this key. At least one of realmKey and kerberos. */
  realmKey?: RealmKey;
  /** Accept Kerberos slaves: the acceptor's options (one acceptor per connection). */
  kerberos?: Omit<KerberosAcceptorOptions, "peer">;
  /** Replaces createKerberosAcceptor (tests). Default: createKerberosAcceptor with `kerberos`. */
  kerberosAcceptor?: (peer: string) => Promise<KerberosAcceptor>;
  /**
   * Time allowed for the TLS handshake, and then again for authentication,
   * in ms. A peer that stalls is closed with AUTH_TIMEOUT. Default 10,000.
   */
  handshakeTimeoutMs?: number;
  /** Limits on failed attempts per address (rate-limit.ts defaults), or a limiter to share. */
  rateLimit?: RateLimitOptions | FailureRateLimiter;
  /** Largest frame accepted, in bytes. Default 1 MiB. */
  maxFrameBytes?: number;
  logger: Logger;
}

/** Why a connection was refused, for the `refused` event. */
export interface LinkRefusal {
  peer: string;
  /** The claimed identity, or "(none)". */
  identity: string;
  error: AbsError;
  /** Refused by the rate limit, without an authentication attempt. */
  rateLimited: boolean;
}

/** Events of a LinkServer. */
export interface LinkServerEvents {
  /** A slave authenticated. */
  connection: [connection: MasterSideConnection];
  /** A connection failed before authentication (logged already). */
  refused: [refusal: LinkRefusal];
}

export type LinkServerState = "listening" | "closed";

export class LinkServer extends EventEmitter<LinkServerEvents> {
  state: LinkServerState = "listening";
  readonly limiter: FailureRateLimiter;
  private readonly timeoutMs: number;
  private readonly opts: LinkServerOptions;
  private readonly server: tls.Server;
  /** Sockets before their TLS handshake completes, by peer, to end them on close(). */
  private readonly pending = new Map<string, net.Socket>();
  /** The peer of each raw socket, noted at accept time (a failed TLS socket no longer knows it). */
  private readonly peers = new WeakMap<net.Socket, { peer: string; address: string | undefined }>();
  private readonly connections = new Map<
    LinkConnection<SlaveToMasterMessage, MasterToSlaveMessage>,
    () => void
  >();

  private constructor(opts: LinkServerOptions) {
    super();
    if (
      opts.realmKey === undefined &&
      opts.kerberos === undefined &&
      opts.kerberosAcceptor === undefined
    ) {
      throw new AbsError("INTERNAL", "a link server needs a realm key or Kerberos options");
    }
    this.opts = opts;
    this.timeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.limiter =
      opts.rateLimit instanceof FailureRateLimiter
        ? opts.rateLimit
        : new FailureRateLimiter(opts.rateLimit);
    this.server = tls.createServer({
      cert: opts.tls.cert,
      key: opts.tls.key,
      minVersion: TLS_MIN_VERSION,
      handshakeTimeout: this.timeoutMs,
      // The link sends small messages back to back (auth-proof then auth-ok,
      // a result then the next progress): with Nagle's algorithm each could
      // wait for the peer's delayed ACK, some 40 ms per round trip.
      noDelay: true,
    });
    this.server.on("connection", (socket: net.Socket) => {
      const peer = formatPeer(socket.remoteAddress, socket.remotePort);
      this.peers.set(socket, { peer, address: socket.remoteAddress });
      this.pending.set(peer, socket);
      socket.once("close", () => this.pending.delete(peer));
    });
    this.server.on("secureConnection", (socket) => this.serve(socket));
    this.server.on("tlsClientError", (err, socket) => this.tlsFailed(err, socket));
  }

  /** Starts a server listening on opts.host:opts.port. */
  static async listen(opts: LinkServerOptions): Promise<LinkServer> {
    const link = new LinkServer(opts);
    await new Promise<void>((resolve, reject) => {
      link.server.once("error", reject);
      link.server.listen(opts.port, opts.host, () => {
        link.server.off("error", reject);
        resolve();
      });
    });
    link.server.on("error", (err) =>
      opts.logger.error(`slave link: server error: ${describeError(err)}`),
    );
    return link;
  }

  /** The port listened on (the chosen one when opts.port was 0). */
  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Authenticated connections open now. */
  get openConnections(): number {
    let n = 0;
    for (const conn of this.connections.keys()) if (conn.state === "open") n++;
    return n;
  }

  /** Stops listening and ends every connection. */
  async close(): Promise<void> {
    if (this.state === "closed") return;
    this.state = "closed";
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.pending.values()) socket.destroy();
    for (const [conn, cancel] of this.connections) {
      cancel();
      conn.close();
    }
    await closed;
  }

  private serve(socket: tls.TLSSocket): void {
    const peer = formatPeer(socket.remoteAddress, socket.remotePort);
    const address = socket.remoteAddress ?? "unknown";
    this.pending.delete(peer);
    const logger = this.opts.logger;
    if (this.state === "closed") {
      socket.destroy();
      return;
    }

    // Filled in below; the connection's hooks need them, and they need the connection.
    const late: { handshake?: MasterHandshake; timer?: NodeJS.Timeout } = {};
    const conn = new LinkConnection<SlaveToMasterMessage, MasterToSlaveMessage>({
      socket,
      side: "master",
      peer,
      maxFrameBytes: this.opts.maxFrameBytes,
      hooks: {
        message: (message) => void late.handshake?.feed(message),
        protocolError: (error) => late.handshake?.protocolError(error),
        closed: () => late.handshake?.peerClosed(),
      },
    });
    const cancel = (): void => clearTimeout(late.timer);
    this.connections.set(conn, cancel);
    socket.once("close", () => {
      cancel();
      this.connections.delete(conn);
    });

    const blockedMs = this.limiter.blockedFor(address);
    if (blockedMs > 0) {
      const error = new AuthError(
        "AUTH_RATE_LIMITED",
        `too many failed authentication attempts from ${address}; new connections are refused for ${Math.ceil(blockedMs / 1000)} more seconds`,
        { context: { peer } },
      );
      logger.debug(`slave link: refused ${peer} (identity (none)): ${error.message}`, { peer });
      conn.close(error);
      this.emit("refused", { peer, identity: "(none)", error, rateLimited: true });
      return;
    }

    let binding: Buffer;
    try {
      binding = socket.exportKeyingMaterial(EKM_BYTES, EKM_LABEL, Buffer.alloc(0));
    } catch (err) {
      const error = new AuthError(
        "TLS",
        `cannot export TLS keying material: ${describeError(err)}`,
      );
      logger.error(`slave link: refused ${peer} (identity (none)): ${error.message}`, { peer });
      conn.close(error);
      return;
    }

    const kerberos = this.opts.kerberos;
    const makeAcceptor =
      this.opts.kerberosAcceptor ??
      (kerberos === undefined
        ? undefined
        : (from: string) => createKerberosAcceptor({ ...kerberos, peer: from }));
    const handshake = new MasterHandshake(
      {
        masterName: this.opts.masterName,
        peer,
        binding,
        ...(this.opts.realmKey === undefined ? {} : { realmKey: this.opts.realmKey }),
        ...(makeAcceptor === undefined ? {} : { kerberosAcceptor: () => makeAcceptor(peer) }),
      },
      {
        send: (message) => conn.sendHandshake(message),
        close: (failure) => {
          cancel();
          this.refuse(conn, address, handshake.claimedIdentity, failure);
        },
        authenticated: (result) => {
          cancel();
          this.accept(conn, result);
        },
      },
    );
    late.handshake = handshake;
    late.timer = setTimeout(() => handshake.timeout(this.timeoutMs), this.timeoutMs);
  }

  private refuse(
    conn: LinkConnection<SlaveToMasterMessage, MasterToSlaveMessage>,
    address: string,
    identity: string,
    failure: HandshakeFailure,
  ): void {
    const { error, blame } = failure;
    const peer = conn.peer;
    const meta = { peer, slave: identity === "(none)" ? undefined : identity, code: error.code };
    if (blame === "local") {
      this.opts.logger.error(
        `slave link: refused ${peer} (identity ${identity}): ${error.message}`,
        meta,
      );
    } else {
      this.opts.logger.warn(
        `slave link: refused ${peer} (identity ${identity}): ${error.message}`,
        meta,
      );
      this.countFailure(address);
    }
    conn.shutdown(error, false);
    this.emit("refused", { peer, identity, error, rateLimited: false });
  }

  private accept(
    conn: LinkConnection<SlaveToMasterMessage, MasterToSlaveMessage>,
    result: HandshakeResult,
  ): void {
    conn.open(result);
    const logger = this.opts.logger;
    const { name, identity, mode } = result;
    const peer = conn.peer;
    logger.info(`slave link: ${identity} authenticated from ${peer} (${mode}, name ${name})`, {
      slave: name,
      peer,
    });
    conn.onClose((error) => {
      if (error === null) {
        logger.info(`slave link: ${identity} from ${peer} disconnected`, { slave: name, peer });
      } else {
        logger.warn(
          `slave link: closed the connection of ${identity} from ${peer}: ${error.message}`,
          {
            slave: name,
            peer,
            code: error.code,
          },
        );
      }
    });
    this.emit("connection", conn);
  }

  private tlsFailed(err: Error, socket: tls.TLSSocket): void {
    // By now the TLS socket has lost its address; the raw socket under it
    // (Node's `_parent`, not in the typings) was noted at accept time.
    const raw = (socket as unknown as { _parent?: net.Socket })._parent;
    const known = raw === undefined ? undefined : this.peers.get(raw);
    const address = known?.address ?? socket.remoteAddress;
    const peer = known?.peer ?? formatPeer(address, socket.remotePort);
    const error = new AuthError("TLS", `TLS handshake failed: ${describeError(err)}`, {
      cause: err,
    });
    this.opts.logger.warn(`slave link: refused ${peer} (identity (none)): ${error.message}`, {
      peer,
      code: error.code,
    });
    if (address !== undefined) this.countFailure(address);
    this.emit("refused", { peer, identity: "(none)", error, rateLimited: false });
  }

  private countFailure(address: string): void {
    const verdict = this.limiter.recordFailure(address);
    if (verdict.blocked) {
      this.opts.logger.warn(
        `slave link: ${address} failed to authenticate ${verdict.failures} times within ${this.limiter.windowMs} ms; its new connections are refused for ${this.limiter.cooldownMs} ms`,
        { peer: address },
      );
    }
  }
}

/** `host:port`, with brackets around an IPv6 host. */
export function formatPeer(address: string | undefined, port: number | undefined): string {
  const host = address ?? "unknown";
  const shown = host.includes(":") ? `[${host}]` : host;
  return port === undefined ? shown : `${shown}:${port}`;
}
