// A Logger that keeps what it is told, for assertions on log lines.

import type { Logger, LogMeta } from "../../src/log.js";

export interface LogLine {
  level: "debug" | "info" | "warn" | "error";
  message: string;
  meta: LogMeta | undefined;
}

export class CollectingLogger implements Logger {
  readonly lines: LogLine[] = [];
  private readonly waiters = new Set<(line: LogLine) => void>();
  debug(message: string, meta?: LogMeta): void {
    this.add({ level: "debug", message, meta });
  }
  info(message: string, meta?: LogMeta): void {
    this.add({ level: "info", message, meta });
  }
  warn(message: string, meta?: LogMeta): void {
    this.add({ level: "warn", message, meta });
  }
  error(message: string, meta?: LogMeta): void {
    this.add({ level: "error", message, meta });
  }
  /**
   * Resolves with the first line, already logged or to come, whose message
   * matches `pattern`. For lines that are the only sign of what happened
   * (a summary a timer writes); the caller bounds the wait.
   */
  next(pattern: RegExp): Promise<string> {
    const found = this.lines.find((l) => pattern.test(l.message));
    if (found !== undefined) return Promise.resolve(found.message);
    return new Promise((resolve) => {
      const waiter = (line: LogLine): void => {
        if (!pattern.test(line.message)) return;
        this.waiters.delete(waiter);
        resolve(line.message);
      };
      this.waiters.add(waiter);
    });
  }
  private add(line: LogLine): void {
    this.lines.push(line);
    for (const w of [...this.waiters]) w(line);
  }
  messages(level?: LogLine["level"]): string[] {
    return this.lines.filter((l) => level === undefined || l.level === level).map((l) => l.message);
  }
}
