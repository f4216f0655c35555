// Benchmark output, one JSON object per line (DESIGN.md, "Benchmarks"),
// and the small helpers the scenarios share.

export interface BenchLine {
  bench: string;
  value: number;
  unit: string;
  /** The same-run baseline, in the same unit. */
  baseline?: number;
  /** value / baseline. */
  ratio?: number;
  /** The target, as text (e.g. "ratio <= 1.5"). */
  target?: string;
  [extra: string]: unknown;
}

export function report(line: BenchLine): void {
  process.stdout.write(JSON.stringify(line) + "\n");
}

export function round(n: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Median of a list of numbers. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Runs `task(0..count-1)` with `width` of them under way at once. */
export async function inFlight(
  count: number,
  width: number,
  task: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: width }, lane));
}
