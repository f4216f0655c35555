// The master's end of the slave link: a TLS server that authenticates each
// connection (MasterHandshake) and hands the authenticated ones to the
// master as MasterSideConnection objects.
//
// Per connection: TLS (1.3, the master's certificate) within
// `handshakeTimeoutMs` of the accept, then the handshake within
// `handshakeTimeoutMs` again, then the application. A connection that runs
// out of either is destroyed then and there: its descriptor is back before
// the next one can pile up. At most `maxHandshakes` connections are in TLS
// or authentication at once, and `maxHandshakesPerAddress` from one
// address (handshake-limits.ts); one over a cap is closed as it is
// accepted, with a summary line in the log every few seconds rather than
// one line each.
//
// Every failure before authentication closes that connection only, after
// sending the slave an error message {code, message} when the socket still
// allows it, and leaves exactly one log line naming the peer address, the
// claimed identity (the hello name, the Kerberos principal, or "(none)")
// and the reason. Only a proof the master checked and refused (a MAC or a
// Kerberos token that does not verify, a principal not allowed: blame
// "proof", handshake.ts) counts against the peer's address (rate-limit.ts):
// a timeout, a silent or closed connection, a TLS failure or a slave that
// gave up by itself (its KDC did not answer) does not, so neither a flood
// of empty connections nor a KDC outage locks good slaves out. A blocked
// address's new connections are refused with AUTH_RATE_LIMITED right after
// the TLS handshake, before any authentication work; they are logged at
// debug level one by one, and in one summary line per address and period
// (blocked-refusals.ts).
//
// States: `listening` from listen() until close(), then `closed`.

import { EventEmitter } from "node:events";
import type net from "node:net";
import tls from "node:tls";
import { AbsError, AuthError, assertNever, describeError, hasCode } from "../errors.js";
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
import { BlockedRefusals } from "./blocked-refusals.js";
import { type HandshakeCap, HandshakeLimits } from "./handshake-limits.js";
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
   * Time allowed for the TLS handshake (from the accept), and then again for
   * authentication, in ms. A peer that stalls is refused with AUTH_TIMEOUT
   * and its socket destroyed. Default 10,000.
   */
  handshakeTimeoutMs?: number;
  /** Connections in TLS or authentication at once, in all (max_handshakes). Default 128. */
  maxHandshakes?: number;
  /** Connections in TLS or authentication at once from one address (max_handshakes_per_address). Default 16. */
  maxHandshakesPerAddress?: number;
  /** Period of the summary line about connections closed over those caps, in ms. Default 5,000. */
  shedSummaryMs?: number;
  /** Limits on failed attempts per address (rate-limit.ts defaults), or a limiter to share. */
  rateLimit?: RateLimitOptions | FailureRateLimiter;
  /** Period of the summary line about connections refused from a blocked address, in ms. Default 60,000. */
  blockedSummaryMs?: number;
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
  /** A new connection was closed at once: `cap` was reached (logged in the summary). */
  shed: [shed: { peer: string; cap: HandshakeCap }];
}

/** A connection from its accept until it authenticates or closes. */
interface InHandshake {
  peer: string;
  address: string | undefined;
  /** Its key in the handshake limits, to release it. */
  key: string;
  phase: "tls" | "authenticating";
  /** The TLS phase's deadline, then (set by serve) the authentication's. */
  timer: NodeJS.Timeout | undefined;
  /** This server ended it (a timeout): what the TLS layer reports after is not news. */
  ended: boolean;
}

export type LinkServerState = "listening" | "closed";

export class LinkServer extends EventEmitter<LinkServerEvents> {
  state: LinkServerState = "listening";
  readonly limiter: FailureRateLimiter;
  readonly limits: HandshakeLimits;
  readonly blockedRefusals: BlockedRefusals;
  private readonly timeoutMs: number;
  private readonly opts: LinkServerOptions;
  private readonly server: tls.Server;
  /**
   * Connections not authenticated yet, by raw socket (noted at accept time:
   * a failed TLS socket no longer knows its peer), to end them on close().
   */
  private readonly handshaking = new Map<net.Socket, InHandshake>();
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
    this.limits = new HandshakeLimits(
      {
        maxTotal: opts.maxHandshakes,
        maxPerAddress: opts.maxHandshakesPerAddress,
        summaryMs: opts.shedSummaryMs,
      },
      opts.logger,
    );
    this.blockedRefusals = new BlockedRefusals(
      {
        summaryMs: opts.blockedSummaryMs,
        maxAddresses: this.limiter.maxAddresses,
        rule: { maxFailures: this.limiter.maxFailures, windowMs: this.limiter.windowMs },
      },
      opts.logger,
    );
    this.server = tls.createServer({
      cert: opts.tls.cert,
      key: opts.tls.key,
      minVersion: TLS_MIN_VERSION,
      // Node's own limit is on inactivity, which a peer sending a byte now
      // and then never reaches; the deadline set in accepted() is from the
      // accept. This one stays as a second guard (0 would mean Node's 120 s).
      handshakeTimeout: this.timeoutMs,
      // The link sends small messages back to back (auth-proof then auth-ok,
      // a result then the next progress): with Nagle's algorithm each could
      // wait for the peer's delayed ACK, some 40 ms per round trip.
      noDelay: true,
    });
    this.server.on("connection", (socket: net.Socket) => this.accepted(socket));
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
    this.limits.close();
    this.blockedRefusals.close();
    for (const [raw, h] of this.handshaking) {
      if (h.phase === "tls") this.end(raw, h);
    }
    for (const [conn, cancel] of this.connections) {
      cancel();
      conn.close();
    }
    await closed;
  }

  /** A new connection: in handshake from now on, within the caps, and TLS must finish by the deadline. */
  private accepted(raw: net.Socket): void {
    const peer = formatPeer(raw.remoteAddress, raw.remotePort);
    if (this.state === "closed") {
      raw.destroy();
      return;
    }
    const admission = this.limits.admit(raw.remoteAddress ?? "unknown", peer);
    if (!admission.admitted) {
      // Not noted in this.handshaking: the TLS error its end causes is ignored.
      raw.destroy();
      this.emit("shed", { peer, cap: admission.cap });
      return;
    }
    const h: InHandshake = {
      peer,
      address: raw.remoteAddress,
      key: admission.key,
      phase: "tls",
      timer: undefined,
      ended: false,
    };
    this.handshaking.set(raw, h);
    h.timer = setTimeout(() => this.tlsTimedOut(raw, h), this.timeoutMs);
    raw.once("close", () => this.released(raw));
  }

  /** The connection authenticated or closed: no longer in handshake. Idempotent. */
  private released(raw: net.Socket): void {
    const h = this.handshaking.get(raw);
    if (h === undefined) return;
    clearTimeout(h.timer);
    this.handshaking.delete(raw);
    this.limits.release(h.key);
  }

  /** Destroys a connection in handshake, which this server ends. */
  private end(raw: net.Socket, h: InHandshake): void {
    h.ended = true;
    // destroy() closes the descriptor now (its 'close' comes later): the
    // room under the caps is free now too.
    raw.destroy();
    this.released(raw);
  }

  private tlsTimedOut(raw: net.Socket, h: InHandshake): void {
    if (h.ended || h.phase !== "tls") return;
    this.end(raw, h);
    const error = new AuthError(
      "AUTH_TIMEOUT",
      `the TLS handshake did not complete within ${this.timeoutMs} ms of the connection`,
    );
    this.opts.logger.warn(`slave link: refused ${h.peer} (identity (none)): ${error.message}`, {
      peer: h.peer,
      code: error.code,
    });
    this.emit("refused", { peer: h.peer, identity: "(none)", error, rateLimited: false });
  }

  private serve(socket: tls.TLSSocket): void {
    const peer = formatPeer(socket.remoteAddress, socket.remotePort);
    const address = socket.remoteAddress ?? "unknown";
    const logger = this.opts.logger;
    const raw = rawSocketOf(socket);
    const h = raw === undefined ? undefined : this.handshaking.get(raw);
    if (this.state === "closed" || raw === undefined || h === undefined || h.ended) {
      socket.destroy();
      return;
    }
    clearTimeout(h.timer);
    h.phase = "authenticating";
    socket.once("close", () => this.released(raw));

    // Filled in below; the connection's hooks need them, and they need the connection.
    const late: { handshake?: MasterHandshake } = {};
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
    const cancel = (): void => clearTimeout(h.timer);
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
      this.blockedRefusals.note(address, blockedMs);
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
          this.released(raw);
          this.accept(conn, result);
        },
      },
    );
    late.handshake = handshake;
    h.timer = setTimeout(() => handshake.timeout(this.timeoutMs), this.timeoutMs);
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
    const line = `slave link: refused ${peer} (identity ${identity}): ${error.message}`;
    switch (blame) {
      case "local":
        this.opts.logger.error(line, meta);
        break;
      case "proof":
        this.opts.logger.warn(line, meta);
        this.countFailure(address);
        break;
      case "peer":
        this.opts.logger.warn(line, meta);
        break;
      default:
        assertNever(blame);
    }
    // A peer out of time gets no more: its socket goes once the error
    // message is flushed, not after the usual linger.
    conn.shutdown(error, false, error.code === "AUTH_TIMEOUT" ? 0 : undefined);
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
    // was noted at accept time. One not noted, or ended here, was closed on
    // purpose (over a cap, timed out): the error its end causes is not news.
    const raw = rawSocketOf(socket);
    const h = raw === undefined ? undefined : this.handshaking.get(raw);
    if (raw === undefined || h === undefined || h.ended) {
      socket.destroy();
      return;
    }
    if (hasCode(err, "ERR_TLS_HANDSHAKE_TIMEOUT")) {
      this.tlsTimedOut(raw, h);
      return;
    }
    this.end(raw, h);
    // Not counted against the address: a TLS failure proves no key wrong.
    const error = new AuthError("TLS", `TLS handshake failed: ${describeError(err)}`, {
      cause: err,
    });
    this.opts.logger.warn(`slave link: refused ${h.peer} (identity (none)): ${error.message}`, {
      peer: h.peer,
      code: error.code,
    });
    this.emit("refused", { peer: h.peer, identity: "(none)", error, rateLimited: false });
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

/** The raw socket under a server's TLS socket (Node's `_parent`, not in the typings). */
function rawSocketOf(socket: tls.TLSSocket): net.Socket | undefined {
  return (socket as unknown as { _parent?: net.Socket })._parent;
}

/** `host:port`, with brackets around an IPv6 host. */
export function formatPeer(address: string | undefined, port: number | undefined): string {
  const host = address ?? "unknown";
  const shown = host.includes(":") ? `[${host}]` : host;
  return port === undefined ? shown : `${shown}:${port}`;
}
