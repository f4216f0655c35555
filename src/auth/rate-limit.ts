// Per-address limit on failed authentication attempts on the slave link.
//
// Policy: an address that fails `maxFailures` times within `windowMs` is
// blocked for `cooldownMs`: its new connections are refused at once with
// AUTH_RATE_LIMITED, without running the authentication (which costs the
// master an HMAC or a Kerberos acceptor, and the attacker a guess). The
// window is fixed, starting at the first failure after the previous window
// ran out. A success does not clear the count, so a host with one good and
// one bad slave behind the same address cannot keep the bad one guessing by
// interleaving good logins. Connections already open are never touched.
//
// Addresses: IPv4 (and IPv4-mapped IPv6) by address; IPv6 by its /64, since
// one host usually owns a whole /64 and could otherwise rotate through it.
//
// Memory is bounded: at most `maxAddresses` entries; when full, entries
// whose window and block have passed are dropped first, then the oldest
// (least recently failed) one. Time is an input (`now`), for tests.

import net from "node:net";
import { BadArgumentError } from "../errors.js";

export interface RateLimitOptions {
  /** Failures within the window that start a block. Default 10. */
  maxFailures?: number;
  /** Length of the window failures are counted in, in ms. Default 60,000 (1 minute). */
  windowMs?: number;
  /** How long a blocked address stays blocked, in ms. Default 300,000 (5 minutes). */
  cooldownMs?: number;
  /** Most addresses tracked at once. Default 10,000. */
  maxAddresses?: number;
  /** The clock, epoch ms. Default Date.now. */
  now?: () => number;
}

export const DEFAULT_RATE_LIMIT = {
  maxFailures: 10,
  windowMs: 60_000,
  cooldownMs: 300_000,
  maxAddresses: 10_000,
} as const;

interface Entry {
  windowStart: number;
  failures: number;
  /** Epoch ms until which the address is blocked; 0 when not blocked. */
  blockedUntil: number;
}

/** What recordFailure decided. */
export interface FailureVerdict {
  /** True when this failure started a block. */
  blocked: boolean;
  failures: number;
}

export class FailureRateLimiter {
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly cooldownMs: number;
  readonly maxAddresses: number;
  private readonly now: () => number;
  // Map iteration order is insertion order; an entry is re-inserted on each
  // failure, so the first entry is the least recently failed.
  private readonly entries = new Map<string, Entry>();

  constructor(opts: RateLimitOptions = {}) {
    this.maxFailures = positive("maxFailures", opts.maxFailures, DEFAULT_RATE_LIMIT.maxFailures);
    this.windowMs = positive("windowMs", opts.windowMs, DEFAULT_RATE_LIMIT.windowMs);
    this.cooldownMs = positive("cooldownMs", opts.cooldownMs, DEFAULT_RATE_LIMIT.cooldownMs);
    this.maxAddresses = positive(
      "maxAddresses",
      opts.maxAddresses,
      DEFAULT_RATE_LIMIT.maxAddresses,
    );
    this.now = opts.now ?? Date.now;
  }

  /** Addresses currently tracked (for tests and monitoring). */
  get size(): number {
    return this.entries.size;
  }

  /** Milliseconds `address` stays blocked, or 0 when it may try. */
  blockedFor(address: string): number {
    const entry = this.entries.get(addressKey(address));
    if (entry === undefined) return 0;
    const left = entry.blockedUntil - this.now();
    return left > 0 ? left : 0;
  }

  /** Counts one failed attempt from `address`. */
  recordFailure(address: string): FailureVerdict {
    const key = addressKey(address);
    const now = this.now();
    let entry = this.entries.get(key);
    if (entry !== undefined) {
      this.entries.delete(key);
      if (now - entry.windowStart >= this.windowMs && entry.blockedUntil <= now) {
        entry = undefined; // the window ran out: start afresh
      }
    }
    if (entry === undefined) {
      this.makeRoom(now);
      entry = { windowStart: now, failures: 0, blockedUntil: 0 };
    }
    this.entries.set(key, entry);
    entry.failures++;
    if (entry.failures >= this.maxFailures && entry.blockedUntil <= now) {
      entry.blockedUntil = now + this.cooldownMs;
      // The next window starts when the block ends.
      entry.windowStart = entry.blockedUntil;
      entry.failures = 0;
      return { blocked: true, failures: this.maxFailures };
    }
    return { blocked: false, failures: entry.failures };
  }

  private makeRoom(now: number): void {
    if (this.entries.size < this.maxAddresses) return;
    for (const [key, entry] of this.entries) {
      if (now - entry.windowStart >= this.windowMs && entry.blockedUntil <= now) {
        this.entries.delete(key);
      }
    }
    while (this.entries.size >= this.maxAddresses) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }
}

/**
 * The key an address is counted under: an IPv4 address as it is (also when
 * written IPv4-mapped, `::ffff:192.0.2.1`); an IPv6 address by its /64.
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1];
  if (net.isIPv6(address)) {
    const groups = expandIPv6(address);
    if (groups !== undefined) return `${groups.slice(0, 4).join(":")}::/64`;
  }
  return address;
}

function expandIPv6(address: string): string[] | undefined {
  const zoneless = address.split("%")[0];
  const halves = zoneless.split("::");
  if (halves.length > 2) return undefined;
  const parse = (part: string): string[] => (part === "" ? [] : part.split(":"));
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  // An embedded IPv4 tail (::1.2.3.4) counts as two groups; only the first
  // four groups matter here, so it is enough to count it.
  const groupsIn = (parts: string[]): number =>
    parts.reduce((n, p) => n + (p.includes(".") ? 2 : 1), 0);
  const missing = 8 - groupsIn(head) - groupsIn(tail);
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  return groups.map((g) => (g.includes(".") ? g : g.toLowerCase().replace(/^0+(?=.)/, "")));
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new BadArgumentError(
      `rate limit ${name}: expected an integer >= 1, got ${String(value)}`,
      name,
    );
  }
  return value;
}
