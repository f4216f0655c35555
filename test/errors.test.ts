import t from "tap";
import {
  AbsError,
  AuthError,
  BadArgumentError,
  ConfigError,
  DrainedError,
  type ErrorCode,
  type WireError,
  FrameTooLargeError,
  IllegalTransitionError,
  JobFileError,
  JobNotFinishedError,
  JobNotFoundError,
  JobsDirClosedError,
  JobsDirIoError,
  JobsDirLockedError,
  JobsDirVersionError,
  ProtocolError,
  QueueFullError,
  errorFromWire,
} from "../src/errors.js";

t.test("errors round-trip through their wire form", (t) => {
  const err = new AbsError("QUEUE_FULL", "full", { context: { jobId: 3 } });
  const back = errorFromWire(err.toWire());
  t.equal(back.code, "QUEUE_FULL");
  t.equal(back.message, "full");
  t.same(back.context, { jobId: 3 });
  t.end();
});

t.test("every code survives the wire; an unknown one arrives as INTERNAL", (t) => {
  // DEFINITION_NOT_FOUND once arrived as INTERNAL: it was in ErrorCode but not in the known set.
  t.equal(
    errorFromWire({ code: "DEFINITION_NOT_FOUND", message: "x" }).code,
    "DEFINITION_NOT_FOUND",
  );
  t.equal(errorFromWire({ code: "FROM_A_NEWER_PEER", message: "x" }).code, "INTERNAL");
  t.end();
});

t.test("every code comes back from the wire as the class it was raised as", (t) => {
  // A Record, so a code added to ErrorCode and not here does not compile.
  const raised: Record<ErrorCode, AbsError> = {
    ILLEGAL_TRANSITION: new IllegalTransitionError("queued to succeeded", { jobId: 1 }),
    JOB_NOT_FOUND: new JobNotFoundError(7),
    DEFINITION_NOT_FOUND: new AbsError("DEFINITION_NOT_FOUND", "no job definition home"),
    JOB_NOT_FINISHED: new JobNotFinishedError(7, "running"),
    QUEUE_FULL: new QueueFullError(100),
    DRAINED: new DrainedError(),
    JOBSDIR_LOCKED: new JobsDirLockedError("locked by pid 9", { pid: 9 }),
    JOBSDIR_VERSION: new JobsDirVersionError("version 9", "/j/version"),
    JOBSDIR_IO: new JobsDirIoError("cannot write /j/1.json: ENOSPC", "/j/1.json", null),
    JOBSDIR_CLOSED: new JobsDirClosedError(),
    BAD_JOB_FILE: new JobFileError("bad JSON", "/j/1.json", "state"),
    STATE_DIR_LOCKED: new AbsError("STATE_DIR_LOCKED", "locked"),
    STATE_DIR_IO: new AbsError("STATE_DIR_IO", "cannot write"),
    PROTOCOL: new ProtocolError("bad frame", { peer: "s1" }),
    FRAME_TOO_LARGE: new FrameTooLargeError(1024),
    AUTH_FAILED: new AuthError("AUTH_FAILED", "bad MAC", { context: { slave: "s1" } }),
    AUTH_TIMEOUT: new AuthError("AUTH_TIMEOUT", "too slow"),
    AUTH_RATE_LIMITED: new AuthError("AUTH_RATE_LIMITED", "too many"),
    KERBEROS_UNAVAILABLE: new AuthError("KERBEROS_UNAVAILABLE", "no gssapi"),
    KDC_UNREACHABLE: new AuthError("KDC_UNREACHABLE", "no kdc"),
    STALE_TICKET: new AuthError("STALE_TICKET", "kvno 2"),
    TLS: new AuthError("TLS", "fingerprint"),
    UNREACHABLE: new AbsError("UNREACHABLE", "no master"),
    VOTE_FAILED: new AbsError("VOTE_FAILED", "another master"),
    NEEDS_REAL_MASTER: new AbsError("NEEDS_REAL_MASTER", "cancel needs the real master"),
    FILE_IO: new AbsError("FILE_IO", "cannot write the pid file"),
    CONFIG: new ConfigError("abs.conf:3: bad", { file: "abs.conf", line: 3 }),
    BAD_ARGUMENT: new BadArgumentError("bad --at", "at"),
    REQUEST_ID_REUSED: new AbsError("REQUEST_ID_REUSED", "used before"),
    PATH_NOT_ALLOWED: new AbsError("PATH_NOT_ALLOWED", "/etc"),
    METHOD_NOT_ALLOWED: new AbsError("METHOD_NOT_ALLOWED", "tar"),
    PROGRAM_NOT_ALLOWED: new AbsError("PROGRAM_NOT_ALLOWED", "sh"),
    SOURCE_MISSING: new AbsError("SOURCE_MISSING", "/src"),
    BACKUP_IO: new AbsError("BACKUP_IO", "EIO"),
    ARCHIVE_INVALID: new AbsError("ARCHIVE_INVALID", "truncated"),
    UNSAFE_ENTRY: new AbsError("UNSAFE_ENTRY", "../x"),
    UNSAFE_TARGET: new AbsError("UNSAFE_TARGET", "/tmp/x"),
    COMMAND_FAILED: new AbsError("COMMAND_FAILED", "exited 1"),
    CANCELED: new AbsError("CANCELED", "canceled"),
    INTERNAL: new AbsError("INTERNAL", "bug"),
  };
  for (const [code, err] of Object.entries(raised)) {
    t.equal(err.code, code, `${code}: the sample carries its code`);
    const back = errorFromWire(JSON.parse(JSON.stringify(err.toWire())) as WireError);
    t.equal(back.constructor, err.constructor, `${code} comes back as ${err.constructor.name}`);
    t.ok(back instanceof err.constructor, `${code}: instanceof ${err.constructor.name}`);
    t.equal(back.name, err.name, `${code}: name`);
    t.equal(back.code, err.code, `${code}: code`);
    t.equal(back.message, err.message, `${code}: message`);
    t.same(back.context, err.context, `${code}: context`);
  }
  t.end();
});
