// Time as an input (STYLE.md 9): components that wait take a Clock, so tests
// can move a fake one across midnight, DST changes and master downtime.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once, `ms` from now. */
  setTimer(ms: number, fn: () => void): Timer;
}

/** Node timers cannot wait longer than about 24.8 days; longer waits are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    let handle: NodeJS.Timeout;
    const due = Date.now() + ms;
    const arm = (): void => {
      const left = due - Date.now();
      handle = setTimeout(
        left > MAX_TIMER_MS ? arm : fn,
        Math.min(Math.max(left, 0), MAX_TIMER_MS),
      );
      handle.unref();
    };
    arm();
    return { cancel: () => clearTimeout(handle) };
  },
};
