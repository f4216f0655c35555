// The logging interface that library code depends on, and the winston
// logger the daemons pass in. Tests pass a collecting one.
//
// A daemon's log file can be reopened (signals.ts: SIGHUP and SIGUSR2), for
// logrotate: after the file is renamed the daemon still writes to the
// renamed one, through its open descriptor, until it opens the name again.

import path from "node:path";
import winston from "winston";

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

export interface DaemonLogOptions {
  /** The log file, e.g. /var/log/abs/master-daemon.log. */
  file: string;
  /** Also log to the console (foreground mode, -f). Default false. */
  console?: boolean;
  /** Log debug lines too (-d). Default false. */
  debug?: boolean;
}

/**
 * Adds the console to `logger` until writing to it fails: `abs-master -f |
 * head` must not take the master down when head exits (EPIPE), nor a closed
 * terminal. The daemon then logs to its file only, and says so there.
 */
function logToConsoleWhileItLasts(
  logger: winston.Logger,
  format: winston.Logform.Format,
  file: string,
): void {
  const console = new winston.transports.Console({ format });
  logger.add(console);
  let gone = false;
  // Stays attached: a later failed write must not be an unhandled 'error'.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (gone) return;
    gone = true;
    logger.remove(console);
    logger.warn(`the console went away (${err.code ?? err.message}); logging to ${file} only`);
  });
}

/** A daemon's logger, with its file's lifecycle. */
export interface DaemonLogger extends Logger {
  /**
   * Opens the log file by its name again (after logrotate renamed it): lines
   * from now on go to the file of that name, created if it is gone. Lines
   * already handed to the old file are flushed to it, then it is closed.
   */
  reopen(): void;
  close(): Promise<void>;
}

/**
 * The daemons' logger: one line per event, `time level message key=value`,
 * in the daemon's log file (and the console in the foreground). Lines about
 * a job carry `job=ID`, lines about a slave `slave=NAME`.
 */
export function createDaemonLogger(opts: DaemonLogOptions): DaemonLogger {
  const line = winston.format.printf((info) => {
    const { level, message, timestamp, ...meta } = info;
    const extra = Object.entries(meta)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(" ");
    return `${String(timestamp)} ${level} ${String(message)}${extra === "" ? "" : ` ${extra}`}`;
  });
  const format = winston.format.combine(winston.format.timestamp(), line);
  const openFile = (): winston.transports.FileTransportInstance =>
    new winston.transports.File({ filename: path.resolve(opts.file), format });
  let file = openFile();
  const logger = winston.createLogger({
    level: opts.debug === true ? "debug" : "info",
    transports: [file],
  });
  if (opts.console === true) logToConsoleWhileItLasts(logger, format, opts.file);
  return {
    debug: (message, meta) => logger.debug(message, meta),
    info: (message, meta) => logger.info(message, meta),
    warn: (message, meta) => logger.warn(message, meta),
    error: (message, meta) => logger.error(message, meta),
    reopen: () => {
      // Added before the old one is removed, in one turn: no line falls between.
      const old = file;
      file = openFile();
      logger.add(file);
      logger.remove(old);
      old.close?.();
    },
    close: () =>
      new Promise<void>((resolve) => {
        logger.on("finish", () => resolve());
        logger.end();
      }),
  };
}
