// The log of connections refused because their address is blocked
// (rate-limit.ts). abs-master(8) promises a line for every refused
// connection, but a blocked address may connect thousands of times during
// its cooldown, each refusal costing the master nothing but that line. So
// they are counted per address, and one summary line per address and
// period (`summaryMs` after the first refusal of the period) says how many
// were refused, from when to when, and why the address is blocked. A block
// that ends is summed up by the period its last refusals fell in; what is
// counted when the server closes is logged then.
//
// Memory is bounded: at most `maxAddresses` addresses are counted per
// period; refusals from further addresses add to one shared count. Lines
// are bounded too: the `SUMMARY_LINES` busiest addresses get a line each,
// the others one line together.

import type { Logger } from "../log.js";
import { addressKey } from "./rate-limit.js";

/** Period of the summary lines about connections refused from blocked addresses, in ms. */
export const BLOCKED_SUMMARY_MS = 60_000;
/** Addresses with a line of their own per period, the busiest first; the rest share one. */
export const SUMMARY_LINES = 20;

export interface BlockedRefusalOptions {
  /** Period of the summary lines, in ms. Default BLOCKED_SUMMARY_MS. */
  summaryMs?: number;
  /** Addresses counted one by one per period. Default 10,000 (the rate limiter's). */
  maxAddresses?: number;
  /** The block's rule, for the lines: failures within windowMs that block an address. */
  rule: { maxFailures: number; windowMs: number };
  /** The clock, epoch ms. Default Date.now. */
  now?: () => number;
}

/** Refusals from one address in the current period. */
interface Refusals {
  count: number;
  first: number;
  last: number;
  /** Epoch ms the block ends, as of the last refusal. */
  blockedUntil: number;
}

export class BlockedRefusals {
  readonly summaryMs: number;
  readonly maxAddresses: number;
  private readonly rule: { maxFailures: number; windowMs: number };
  private readonly now: () => number;
  private byAddress = new Map<string, Refusals>();
  /** Refusals from addresses beyond maxAddresses, counted together. */
  private overflow = 0;
  private timer: NodeJS.Timeout | undefined;
  /** When the current period's first refusal came. */
  private periodStart = 0;

  constructor(
    opts: BlockedRefusalOptions,
    private readonly logger: Logger,
  ) {
    this.summaryMs = opts.summaryMs ?? BLOCKED_SUMMARY_MS;
    this.maxAddresses = opts.maxAddresses ?? 10_000;
    this.rule = opts.rule;
    this.now = opts.now ?? Date.now;
  }

  /** Addresses counted in the current period (for tests and monitoring). */
  get size(): number {
    return this.byAddress.size;
  }

  /** A new connection from `address` was refused: the address is blocked for `blockedMs` more. */
  note(address: string, blockedMs: number): void {
    const key = addressKey(address);
    const now = this.now();
    const seen = this.byAddress.get(key);
    if (seen !== undefined) {
      seen.count += 1;
      seen.last = now;
      seen.blockedUntil = now + blockedMs;
    } else if (this.byAddress.size < this.maxAddresses) {
      this.byAddress.set(key, { count: 1, first: now, last: now, blockedUntil: now + blockedMs });
    } else {
      this.overflow += 1;
    }
    if (this.timer === undefined) {
      this.periodStart = now;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, this.summaryMs);
      this.timer.unref();
    }
  }

  /** Stops the timer (the server closed); what was counted is logged now. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flush();
  }

  private flush(): void {
    const counted = [...this.byAddress].sort((a, b) => b[1].count - a[1].count);
    const overflow = this.overflow;
    this.byAddress = new Map();
    this.overflow = 0;
    const now = this.now();
    const why = `${this.rule.maxFailures} failed authentications within ${seconds(this.rule.windowMs)}`;
    for (const [key, r] of counted.slice(0, SUMMARY_LINES)) {
      const until =
        r.blockedUntil > now
          ? `blocked until ${isoTime(r.blockedUntil)}`
          : `the block ended at ${isoTime(r.blockedUntil)}`;
      this.logger.warn(
        `slave link: refused ${connections(r.count)} from ${key} between ${isoTime(r.first)} and ${isoTime(r.last)} while it was blocked (${why}; ${until})`,
        { peer: key },
      );
    }
    const rest = counted.slice(SUMMARY_LINES);
    const restCount = rest.reduce((n, [, r]) => n + r.count, overflow);
    if (restCount > 0) {
      const from =
        overflow > 0
          ? `${rest.length} more blocked addresses and others not counted one by one`
          : `${rest.length} more blocked addresses`;
      this.logger.warn(
        `slave link: refused ${connections(restCount)} from ${from} between ${isoTime(this.periodStart)} and ${isoTime(now)} while they were blocked (${why})`,
      );
    }
  }
}

function connections(n: number): string {
  return n === 1 ? "1 new connection" : `${n} new connections`;
}

function seconds(ms: number): string {
  return `${ms / 1000} s`;
}

/** `2026-12-08T01:02:03Z`: the log's own timestamps are UTC. */
function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
