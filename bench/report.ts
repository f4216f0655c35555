// Benchmark output: one JSON object per line (DESIGN.md, "Benchmarks").

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
