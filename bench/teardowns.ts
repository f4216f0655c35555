// Cleanups for benchmarks that reuse the tests' harness (which registers
// its cleanups with a tap test's teardown): run last-registered first.

export class Teardowns {
  private readonly fns: (() => void | Promise<void>)[] = [];

  teardown(fn: () => void | Promise<void>): void {
    this.fns.push(fn);
  }

  async run(): Promise<void> {
    for (const fn of this.fns.reverse()) {
      try {
        await fn();
      } catch {
        // Cleanup is best effort: a benchmark's result is already printed.
      }
    }
  }
}
