// The logging interface that library code depends on. Daemons pass a winston
// logger (see their own modules); tests pass a collecting one.

export type LogMeta = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(message: string, meta?: LogMeta): void;
  info(message: string, meta?: LogMeta): void;
  warn(message: string, meta?: LogMeta): void;
  error(message: string, meta?: LogMeta): void;
}

/** Drops everything: for tools that report through return values instead. */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
