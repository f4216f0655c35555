// A Clock whose time moves only when a test says so.

import type { Clock, Timer } from "../../src/clock.js";

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  canceled: boolean;
}

export class FakeClock implements Clock {
  private time: number;
  private seq = 0;
  private pending: Pending[] = [];

  constructor(start: number) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const p: Pending = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, canceled: false };
    this.pending.push(p);
    return { cancel: () => void (p.canceled = true) };
  }

  /** When the earliest armed timer is due, or undefined. */
  nextAt(): number | undefined {
    let next: number | undefined;
    for (const p of this.pending)
      if (!p.canceled && (next === undefined || p.at < next)) next = p.at;
    return next;
  }

  /** Timers armed and not yet fired or canceled. */
  get armed(): number {
    return this.pending.filter((p) => !p.canceled).length;
  }

  /**
   * Moves time to `to`, firing due timers in order; after each, lets the
   * promises it started settle (so chained async work runs too).
   */
  async advanceTo(to: number): Promise<void> {
    for (;;) {
      this.pending = this.pending.filter((p) => !p.canceled);
      this.pending.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.pending[0];
      if (next === undefined || next.at > to) break;
      this.pending.shift();
      this.time = Math.max(this.time, next.at);
      next.fn();
      await settle();
    }
    this.time = Math.max(this.time, to);
  }
}

/** Lets pending promise chains run (a few macrotask turns). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
