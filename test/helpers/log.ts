// A Logger that keeps what it is told, for assertions on log lines.

import type { Logger, LogMeta } from "../../src/log.js";

export interface LogLine {
  level: "debug" | "info" | "warn" | "error";
  message: string;
  meta: LogMeta | undefined;
}

export class CollectingLogger implements Logger {
  readonly lines: LogLine[] = [];
  debug(message: string, meta?: LogMeta): void {
    this.lines.push({ level: "debug", message, meta });
  }
  info(message: string, meta?: LogMeta): void {
    this.lines.push({ level: "info", message, meta });
  }
  warn(message: string, meta?: LogMeta): void {
    this.lines.push({ level: "warn", message, meta });
  }
  error(message: string, meta?: LogMeta): void {
    this.lines.push({ level: "error", message, meta });
  }
  messages(level?: LogLine["level"]): string[] {
    return this.lines.filter((l) => level === undefined || l.level === level).map((l) => l.message);
  }
}
