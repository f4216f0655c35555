// Every error ABS raises on purpose is an AbsError with a stable `code`.
// Codes cross the admin and slave links as `{code, message, context}` and are
// turned back into the same class on the other side (`errorFromWire`), and the
// CLI maps codes to exit statuses. Add a code here, never a bare `new Error`
// for a condition a user or an operator can meet.

/** Every code an AbsError can carry. Stable: they appear on the wire and in scripts. */
export type ErrorCode =
  // Jobs directory and job life.
  | "ILLEGAL_TRANSITION"
  | "JOB_NOT_FOUND"
  | "DEFINITION_NOT_FOUND"
  | "JOB_NOT_FINISHED"
  | "QUEUE_FULL"
  | "DRAINED"
  | "JOBSDIR_LOCKED"
  | "JOBSDIR_VERSION"
  | "JOBSDIR_IO"
  | "JOBSDIR_CLOSED"
  | "BAD_JOB_FILE"
  // The slave's state directory.
  | "STATE_DIR_LOCKED"
  | "STATE_DIR_IO"
  // Wire protocol (frames and messages).
  | "PROTOCOL"
  | "FRAME_TOO_LARGE"
  // Authentication and transport.
  | "AUTH_FAILED"
  | "AUTH_TIMEOUT"
  | "AUTH_RATE_LIMITED"
  | "KERBEROS_UNAVAILABLE"
  | "KDC_UNREACHABLE"
  // The master has no key of the version of the slave's service ticket (its
  // key was rotated): the slave gets a new ticket.
  | "STALE_TICKET"
  | "TLS"
  // The admin link: the master cannot be reached.
  | "UNREACHABLE"
  // The startup vote found another master, or too few peers.
  | "VOTE_FAILED"
  // An admin command the fake master of disaster mode does not do.
  | "NEEDS_REAL_MASTER"
  // A daemon's own file outside its data directories (the pid file, the
  // disaster log) cannot be opened or written.
  | "FILE_IO"
  // Configuration and arguments.
  | "CONFIG"
  | "BAD_ARGUMENT"
  // An admin request id used before for another request (admin-requests.ts).
  | "REQUEST_ID_REUSED"
  // Backup methods on the slave (UNSAFE_TARGET: a restore target a user
  // other than root could swap, refused as root).
  | "PATH_NOT_ALLOWED"
  | "METHOD_NOT_ALLOWED"
  | "PROGRAM_NOT_ALLOWED"
  | "SOURCE_MISSING"
  | "BACKUP_IO"
  | "ARCHIVE_INVALID"
  | "UNSAFE_ENTRY"
  | "UNSAFE_TARGET"
  | "COMMAND_FAILED"
  | "CANCELED"
  // Anything else: a bug, reported with its cause.
  | "INTERNAL";

/** Where an error came from. Every field is optional; fill in what is known. */
export interface ErrorContext {
  jobId?: number;
  slave?: string;
  file?: string;
  line?: number;
  field?: string;
  peer?: string;
  pid?: number;
}

export interface WireError {
  code: string;
  message: string;
  context?: ErrorContext;
}

export class AbsError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; context?: ErrorContext } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = options.context ?? {};
  }

  toWire(): WireError {
    return { code: this.code, message: this.message, context: this.context };
  }
}

/** A job was asked to move between two states that do not connect. */
export class IllegalTransitionError extends AbsError {
  constructor(message: string, context: ErrorContext = {}) {
    super("ILLEGAL_TRANSITION", message, { context });
  }
}

export class JobNotFoundError extends AbsError {
  constructor(jobId: number) {
    super("JOB_NOT_FOUND", `job ${jobId} does not exist`, { context: { jobId } });
  }
}

/** Archiving was asked of a job that has not finished. */
export class JobNotFinishedError extends AbsError {
  constructor(jobId: number, state: string) {
    super("JOB_NOT_FINISHED", `job ${jobId} is ${state}; only finished jobs can be archived`, {
      context: { jobId },
    });
  }
}

/** The hard limit on unarchived jobs is reached: archive jobs or raise the limit. */
export class QueueFullError extends AbsError {
  constructor(limit: number) {
    super(
      "QUEUE_FULL",
      `job queue is full: ${limit} unarchived jobs (the limit); archive finished jobs or raise max_jobs`,
    );
  }
}

/** The jobs directory is drained: new submissions are refused until `abs drain off`. */
export class DrainedError extends AbsError {
  constructor() {
    super("DRAINED", "job queue is drained: new jobs are refused until `abs drain off`");
  }
}

export class JobsDirLockedError extends AbsError {
  constructor(message: string, context: ErrorContext) {
    super("JOBSDIR_LOCKED", message, { context });
  }
}

export class JobsDirVersionError extends AbsError {
  constructor(message: string, file: string) {
    super("JOBSDIR_VERSION", message, { context: { file } });
  }
}

/** A read or write in the jobs directory failed (permissions, full disk, I/O error). */
export class JobsDirIoError extends AbsError {
  constructor(message: string, file: string, cause: unknown) {
    super("JOBSDIR_IO", message, { cause, context: { file } });
  }
}

export class JobsDirClosedError extends AbsError {
  constructor() {
    super("JOBSDIR_CLOSED", "the jobs directory is closed");
  }
}

/** A job file that cannot be used: bad JSON, a wrong field, an id that does not match its name. */
export class JobFileError extends AbsError {
  constructor(message: string, file: string, field?: string) {
    super("BAD_JOB_FILE", message, { context: field === undefined ? { file } : { file, field } });
  }
}

export class ProtocolError extends AbsError {
  constructor(message: string, context: ErrorContext = {}) {
    super("PROTOCOL", message, { context });
  }
}

export class FrameTooLargeError extends AbsError {
  constructor(limit: number) {
    super("FRAME_TOO_LARGE", `frame exceeds the limit of ${limit} bytes`);
  }
}

export class AuthError extends AbsError {
  constructor(
    code:
      | "AUTH_FAILED"
      | "AUTH_TIMEOUT"
      | "AUTH_RATE_LIMITED"
      | "KERBEROS_UNAVAILABLE"
      | "KDC_UNREACHABLE"
      | "STALE_TICKET"
      | "TLS",
    message: string,
    options: { cause?: unknown; context?: ErrorContext } = {},
  ) {
    super(code, message, options);
  }
}

export class ConfigError extends AbsError {
  constructor(message: string, context: ErrorContext = {}) {
    super("CONFIG", message, { context });
  }
}

export class BadArgumentError extends AbsError {
  constructor(message: string, field?: string) {
    super("BAD_ARGUMENT", message, { context: field === undefined ? {} : { field } });
  }
}

/** An error class, whatever its constructor's arguments. */
type AbsErrorClass = abstract new (...args: never[]) => AbsError;

// The class each code comes back as from the wire. A Record rather than a
// list: a code added to ErrorCode and forgotten here does not compile (a
// forgotten one would arrive from the wire as INTERNAL). AbsError itself
// for a code no class of this file carries (REQUEST_ID_REUSED and
// COMMAND_FAILED have theirs beside what raises them, which this file,
// at the bottom of the layers, cannot import).
const WIRE_CLASSES: Record<ErrorCode, AbsErrorClass> = {
  ILLEGAL_TRANSITION: IllegalTransitionError,
  JOB_NOT_FOUND: JobNotFoundError,
  DEFINITION_NOT_FOUND: AbsError,
  JOB_NOT_FINISHED: JobNotFinishedError,
  QUEUE_FULL: QueueFullError,
  DRAINED: DrainedError,
  JOBSDIR_LOCKED: JobsDirLockedError,
  JOBSDIR_VERSION: JobsDirVersionError,
  JOBSDIR_IO: JobsDirIoError,
  JOBSDIR_CLOSED: JobsDirClosedError,
  BAD_JOB_FILE: JobFileError,
  STATE_DIR_LOCKED: AbsError,
  STATE_DIR_IO: AbsError,
  PROTOCOL: ProtocolError,
  FRAME_TOO_LARGE: FrameTooLargeError,
  AUTH_FAILED: AuthError,
  AUTH_TIMEOUT: AuthError,
  AUTH_RATE_LIMITED: AuthError,
  KERBEROS_UNAVAILABLE: AuthError,
  KDC_UNREACHABLE: AuthError,
  STALE_TICKET: AuthError,
  TLS: AuthError,
  UNREACHABLE: AbsError,
  VOTE_FAILED: AbsError,
  NEEDS_REAL_MASTER: AbsError,
  FILE_IO: AbsError,
  CONFIG: ConfigError,
  BAD_ARGUMENT: BadArgumentError,
  REQUEST_ID_REUSED: AbsError,
  PATH_NOT_ALLOWED: AbsError,
  METHOD_NOT_ALLOWED: AbsError,
  PROGRAM_NOT_ALLOWED: AbsError,
  SOURCE_MISSING: AbsError,
  BACKUP_IO: AbsError,
  ARCHIVE_INVALID: AbsError,
  UNSAFE_ENTRY: AbsError,
  UNSAFE_TARGET: AbsError,
  COMMAND_FAILED: AbsError,
  CANCELED: AbsError,
  INTERNAL: AbsError,
};

/**
 * Turns a `{code, message, context}` received from a peer back into the
 * class its code has (WIRE_CLASSES), with the peer's message and context as
 * they came: the class's own constructor, which may compose the message
 * from its arguments, is skipped (Reflect.construct runs AbsError's with the
 * class as `new.target`, so `instanceof` and `name` are the class's). An
 * unknown code (a newer peer) keeps its message under INTERNAL rather than
 * being dropped.
 */
export function errorFromWire(wire: WireError): AbsError {
  const code: ErrorCode = Object.hasOwn(WIRE_CLASSES, wire.code)
    ? (wire.code as ErrorCode)
    : "INTERNAL";
  const args: ConstructorParameters<typeof AbsError> = [
    code,
    wire.message,
    { context: wire.context ?? {} },
  ];
  return Reflect.construct(AbsError, args, WIRE_CLASSES[code]) as AbsError;
}

/**
 * The default branch of an exhaustive switch over a union (a job's states, a
 * handshake's states): the compiler proves it unreachable; at run time it is
 * a bug in ABS.
 */
export function assertNever(value: never): never {
  throw new AbsError("INTERNAL", `unexpected value ${JSON.stringify(value)}`);
}

/** True when `err` is a Node system error with this code (ENOENT, EEXIST, ...). */
export function hasCode(err: unknown, code: string): boolean {
  return errorCode(err) === code;
}

/** The `code` of a Node system error (ENOENT, EEXIST, ...), if `err` has one. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

/** The message of anything thrown, for log lines. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
