// Caps on the slave link's connections that have not authenticated yet: at
// most `maxTotal` in handshake (TLS or authentication) at once, and at most
// `maxPerAddress` of them from one address (IPv6 by its /64, as the rate
// limiter counts them). Each such connection holds a descriptor and some
// memory until it authenticates or its handshake_timeout ends it; without a
// cap, a few hundred silent connections exhaust the master's descriptors and
// `abs` can no longer reach the admin socket.
//
// A connection over a cap is closed at once, before TLS, and is not a
// failed authentication (the rate limiter never hears of it). Logging is
// bounded as well: the first connection closed after a quiet spell is
// logged at once; the others are counted, and one summary line per
// `summaryMs` says how many were closed, over which cap, and from where.
// Authenticated connections do not count: the caps limit what an
// unauthenticated peer can hold, not the number of slaves.

import type { Logger } from "../log.js";
import { addressKey } from "./rate-limit.js";

/** Default of max_handshakes: connections in handshake at once, in all. */
export const DEFAULT_MAX_HANDSHAKES = 128;
/** Default of max_handshakes_per_address: connections in handshake at once from one address. */
export const DEFAULT_MAX_HANDSHAKES_PER_ADDRESS = 16;
/** Period of the summary line about connections closed over the caps, in ms. */
export const SHED_SUMMARY_MS = 5_000;
/** Addresses named in one summary line, the busiest first. */
const SUMMARY_ADDRESSES = 5;

export interface HandshakeLimitOptions {
  /** Connections in handshake at once, in all. Default DEFAULT_MAX_HANDSHAKES. */
  maxTotal?: number;
  /** Connections in handshake at once from one address. Default DEFAULT_MAX_HANDSHAKES_PER_ADDRESS. */
  maxPerAddress?: number;
  /** Period of the summary line, in ms. Default SHED_SUMMARY_MS. */
  summaryMs?: number;
}

/** Which cap a connection was over: `max_handshakes` or `max_handshakes_per_address`. */
export type HandshakeCap = "total" | "address";

/** The verdict on a new connection. */
export type Admission = { admitted: true; key: string } | { admitted: false; cap: HandshakeCap };

export class HandshakeLimits {
  readonly maxTotal: number;
  readonly maxPerAddress: number;
  readonly summaryMs: number;
  private total = 0;
  private readonly perAddress = new Map<string, number>();
  /** Connections closed over a cap since the last line, by cap and by address. */
  private shed = { total: 0, address: 0, from: new Map<string, number>() };
  private summaryTimer: NodeJS.Timeout | undefined;

  constructor(
    opts: HandshakeLimitOptions,
    private readonly logger: Logger,
  ) {
    this.maxTotal = opts.maxTotal ?? DEFAULT_MAX_HANDSHAKES;
    this.maxPerAddress = opts.maxPerAddress ?? DEFAULT_MAX_HANDSHAKES_PER_ADDRESS;
    this.summaryMs = opts.summaryMs ?? SHED_SUMMARY_MS;
  }

  /** Connections in handshake now. */
  get inHandshake(): number {
    return this.total;
  }

  /**
   * Counts a new connection from `address` (`peer` is `host:port`, for the
   * log) if both caps allow it; otherwise notes it for the log and says which
   * cap it was over. An admitted connection is released once, by its key.
   */
  admit(address: string, peer: string): Admission {
    const key = addressKey(address);
    const fromAddress = this.perAddress.get(key) ?? 0;
    let cap: HandshakeCap | undefined;
    if (this.total >= this.maxTotal) cap = "total";
    else if (fromAddress >= this.maxPerAddress) cap = "address";
    if (cap === undefined) {
      this.total += 1;
      this.perAddress.set(key, fromAddress + 1);
      return { admitted: true, key };
    }
    this.noteShed(cap, key, peer, fromAddress);
    return { admitted: false, cap };
  }

  /** The connection admitted under `key` authenticated or closed. */
  release(key: string): void {
    const n = this.perAddress.get(key);
    if (n === undefined) return;
    this.total -= 1;
    if (n <= 1) this.perAddress.delete(key);
    else this.perAddress.set(key, n - 1);
  }

  /** Stops the summary timer (the server closed); what was counted is logged now. */
  close(): void {
    clearTimeout(this.summaryTimer);
    this.summaryTimer = undefined;
    this.flush();
  }

  private noteShed(cap: HandshakeCap, key: string, peer: string, fromAddress: number): void {
    if (this.summaryTimer === undefined) {
      // The first after a quiet spell: at once, so the admin sees it start.
      this.logger.warn(
        `slave link: closed a new connection from ${peer} at once: ${this.capText(cap, key, fromAddress)}; further ones are counted and logged every ${this.summaryMs / 1000} s`,
        { peer },
      );
      this.startPeriod();
      return;
    }
    this.shed[cap] += 1;
    this.shed.from.set(key, (this.shed.from.get(key) ?? 0) + 1);
  }

  private capText(cap: HandshakeCap, key: string, fromAddress: number): string {
    return cap === "total"
      ? `${this.total} connections are in handshake (max_handshakes = ${this.maxTotal})`
      : `${fromAddress} connections from ${key} are in handshake (max_handshakes_per_address = ${this.maxPerAddress})`;
  }

  private startPeriod(): void {
    this.summaryTimer = setTimeout(() => {
      this.summaryTimer = undefined;
      // A period with something to say starts the next one: a flood that
      // goes on gets a line per period; after a quiet one, the next
      // connection closed is logged at once again.
      if (this.flush()) this.startPeriod();
    }, this.summaryMs);
    this.summaryTimer.unref();
  }

  /** Logs the summary of what was counted, if anything; true when there was something. */
  private flush(): boolean {
    const { total, address, from } = this.shed;
    if (total + address === 0) return false;
    const caps: string[] = [];
    if (address > 0) {
      caps.push(`${address} over max_handshakes_per_address = ${this.maxPerAddress}`);
    }
    if (total > 0) caps.push(`${total} over max_handshakes = ${this.maxTotal}`);
    const busiest = [...from]
      .sort((a, b) => b[1] - a[1])
      .slice(0, SUMMARY_ADDRESSES)
      .map(([key, n]) => `${key} ${n}`);
    const more = from.size > SUMMARY_ADDRESSES ? `, and ${from.size - SUMMARY_ADDRESSES} more` : "";
    this.logger.warn(
      `slave link: closed ${total + address} more new connections at once in the last ${this.summaryMs / 1000} s, over the handshake limits: ${caps.join(", ")}; from ${busiest.join(", ")}${more}`,
    );
    this.shed = { total: 0, address: 0, from: new Map() };
    return true;
  }
}
