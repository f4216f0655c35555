// Messages of the slave link (slave dials master, TCP + TLS, ETX frames).
// The field `type` discriminates. Order of a connection:
//
//   slave → hello
//   realm-key: master → auth-challenge, slave → auth-response, master → auth-proof
//   kerberos:  auth-token both ways until the GSSAPI context is established
//   master → auth-ok
//   slave → register (running jobs, unacknowledged results); master → registered
//   then: dispatch / cancel / ack from the master; started / progress / result /
//   reject from the slave; heartbeat both ways; error either way before closing.
//
// parseSlaveMessage checks shape only. Which message is allowed in which
// session state, and from which side, is the session's business.
// Bounds on sizes and the reason unknown fields are ignored: message-fields.ts.

import { ProtocolError, type WireError } from "../errors.js";
import { Fields, isPlainObject, showValue, type JsonObject } from "../json-shape.js";
import {
  base64,
  label,
  MAX_IDENTITY_LENGTH,
  MAX_NAME_LENGTH,
  MAX_NONCE_BASE64_LENGTH,
  MAX_PATH_LENGTH,
  MAX_REPORTED_JOBS,
  MAX_TEXT_LENGTH,
  MAX_TOKEN_BASE64_LENGTH,
  readShape,
  wireError,
} from "./message-fields.js";
import { AUTH_MODES, type AuthMode } from "../model/auth-modes.js";

/** Version of the slave link spoken by this build; sent in `hello`. */
export const SLAVE_PROTOCOL_VERSION = 2;

// The modes' home is src/model/ (config names them too); re-exported here
// because `hello` carries one.
export { AUTH_MODES, type AuthMode } from "../model/auth-modes.js";

/** States a slave can report a job in when it registers. */
export const RUNNING_STATES = ["dispatched", "running", "canceling"] as const;
export type RunningState = (typeof RUNNING_STATES)[number];

export const OUTCOMES = ["succeeded", "failed", "canceled"] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** How far a running job has got. */
export interface Progress {
  files: number;
  bytes: number;
  /** The file being read now, or null between files. */
  path: string | null;
}

/** One attempt of one job: every job message after dispatch names both. */
export interface JobAttempt {
  jobId: number;
  attempt: number;
}

/** A job the slave is running, as reported in `register`. */
export interface RunningJobReport extends JobAttempt {
  state: RunningState;
  progress: Progress | null;
}

/** A finished attempt; sent as `result`, and again in `register` until acknowledged. */
export interface JobResultReport extends JobAttempt {
  outcome: Outcome;
  message: string;
  /** Method-specific details (archive size, file counts, ...). */
  data: JsonObject;
}

/** slave → master, first message. */
export interface HelloMessage {
  type: "hello";
  version: number;
  name: string;
  mode: AuthMode;
}
/** master → slave (realm key): the master's nonce for the slave to MAC. */
export interface AuthChallengeMessage {
  type: "auth-challenge";
  nonce: string;
}
/** slave → master (realm key): the slave's own nonce and its MAC of the challenge. */
export interface AuthResponseMessage {
  type: "auth-response";
  nonce: string;
  mac: string;
}
/** master → slave (realm key): the master's MAC of the slave's nonce (mutual proof). */
export interface AuthProofMessage {
  type: "auth-proof";
  mac: string;
}
/** Both ways (Kerberos): one GSSAPI token. */
export interface AuthTokenMessage {
  type: "auth-token";
  token: string;
}
/** master → slave: authentication is done. */
export interface AuthOkMessage {
  type: "auth-ok";
  master: string;
  identity: string;
}
/** slave → master: who I am, what I run, what you have not acknowledged. */
export interface RegisterMessage {
  type: "register";
  name: string;
  maxJobs: number;
  running: RunningJobReport[];
  results: JobResultReport[];
}
/** master → slave: registration accepted. */
export interface RegisteredMessage {
  type: "registered";
  master: string;
  heartbeatMs: number;
}
/** Both ways: sender's clock, epoch milliseconds. */
export interface HeartbeatMessage {
  type: "heartbeat";
  time: number;
}
/** master → slave: run this attempt. */
export interface DispatchMessage extends JobAttempt {
  type: "dispatch";
  definition: string;
  method: string;
  params: JsonObject;
  /** Milliseconds the run may take before the slave cancels it; null for no limit. */
  maxRunTimeMs: number | null;
}
/** slave → master: the attempt started. */
export interface StartedMessage extends JobAttempt {
  type: "started";
}
/** slave → master. */
export interface ProgressMessage extends JobAttempt, Progress {
  type: "progress";
}
/** slave → master: the attempt finished. */
export interface ResultMessage extends JobResultReport {
  type: "result";
}
/** master → slave: the result is stored durably; the slave may forget it. */
export interface AckMessage extends JobAttempt {
  type: "ack";
}
/** master → slave: stop this attempt. */
export interface CancelMessage extends JobAttempt {
  type: "cancel";
}
/** slave → master: the slave refuses a dispatch (e.g. a path outside its allowed paths). */
export interface RejectMessage extends JobAttempt {
  type: "reject";
  reason: string;
}
/** Either way, just before closing. */
export interface ErrorMessage extends WireError {
  type: "error";
}

export type SlaveLinkMessage =
  | HelloMessage
  | AuthChallengeMessage
  | AuthResponseMessage
  | AuthProofMessage
  | AuthTokenMessage
  | AuthOkMessage
  | RegisterMessage
  | RegisteredMessage
  | HeartbeatMessage
  | DispatchMessage
  | StartedMessage
  | ProgressMessage
  | ResultMessage
  | AckMessage
  | CancelMessage
  | RejectMessage
  | ErrorMessage;

export type SlaveLinkMessageType = SlaveLinkMessage["type"];

/** Messages a slave sends. */
export type SlaveToMasterMessage = Extract<
  SlaveLinkMessage,
  {
    type:
      | "hello"
      | "auth-response"
      | "auth-token"
      | "register"
      | "heartbeat"
      | "started"
      | "progress"
      | "result"
      | "reject"
      | "error";
  }
>;

/** Messages a master sends. */
export type MasterToSlaveMessage = Extract<
  SlaveLinkMessage,
  {
    type:
      | "auth-challenge"
      | "auth-proof"
      | "auth-token"
      | "auth-ok"
      | "registered"
      | "heartbeat"
      | "dispatch"
      | "ack"
      | "cancel"
      | "error";
  }
>;

function jobAttempt(f: Fields): JobAttempt {
  return { jobId: f.int("jobId", { min: 1 }), attempt: f.int("attempt", { min: 1 }) };
}

/** Reads a progress report (also the disaster log's). */
export function readProgress(f: Fields): Progress {
  return {
    files: f.int("files", { min: 0 }),
    bytes: f.int("bytes", { min: 0 }),
    path: f.raw["path"] === null ? null : f.string("path", { maxLength: MAX_PATH_LENGTH }),
  };
}

function runningJob(f: Fields): RunningJobReport {
  const nullableProgress = f.nullableObject("progress");
  return {
    ...jobAttempt(f),
    state: f.oneOf("state", RUNNING_STATES),
    progress: nullableProgress === null ? null : readProgress(nullableProgress),
  };
}

function jobResult(f: Fields): JobResultReport {
  return {
    ...jobAttempt(f),
    outcome: f.oneOf("outcome", OUTCOMES),
    message: f.string("message", { maxLength: MAX_TEXT_LENGTH }),
    data: f.jsonObject("data"),
  };
}

type Reader<K extends SlaveLinkMessageType> = (f: Fields) => Extract<SlaveLinkMessage, { type: K }>;

// One reader per type. The mapped type makes a missing entry a compile error.
// Fields are read in declaration order, so the first bad one is reported.
const READERS: { [K in SlaveLinkMessageType]: Reader<K> } = {
  hello: (f) => ({
    type: "hello",
    version: f.int("version", { min: 1 }),
    name: label(f, "name", MAX_NAME_LENGTH),
    mode: f.oneOf("mode", AUTH_MODES),
  }),
  "auth-challenge": (f) => ({
    type: "auth-challenge",
    nonce: base64(f, "nonce", MAX_NONCE_BASE64_LENGTH),
  }),
  "auth-response": (f) => ({
    type: "auth-response",
    nonce: base64(f, "nonce", MAX_NONCE_BASE64_LENGTH),
    mac: base64(f, "mac", MAX_NONCE_BASE64_LENGTH),
  }),
  "auth-proof": (f) => ({ type: "auth-proof", mac: base64(f, "mac", MAX_NONCE_BASE64_LENGTH) }),
  "auth-token": (f) => ({
    type: "auth-token",
    token: base64(f, "token", MAX_TOKEN_BASE64_LENGTH),
  }),
  "auth-ok": (f) => ({
    type: "auth-ok",
    master: label(f, "master", MAX_IDENTITY_LENGTH),
    identity: label(f, "identity", MAX_IDENTITY_LENGTH),
  }),
  register: (f) => ({
    type: "register",
    name: label(f, "name", MAX_NAME_LENGTH),
    maxJobs: f.int("maxJobs", { min: 1, max: MAX_REPORTED_JOBS }),
    running: f.objects("running", runningJob, { maxLength: MAX_REPORTED_JOBS }),
    results: f.objects("results", jobResult, { maxLength: MAX_REPORTED_JOBS }),
  }),
  registered: (f) => ({
    type: "registered",
    master: label(f, "master", MAX_IDENTITY_LENGTH),
    heartbeatMs: f.int("heartbeatMs", { min: 1 }),
  }),
  heartbeat: (f) => ({ type: "heartbeat", time: f.int("time", { min: 0 }) }),
  dispatch: (f) => ({
    type: "dispatch",
    ...jobAttempt(f),
    definition: label(f, "definition", MAX_NAME_LENGTH),
    method: label(f, "method", MAX_NAME_LENGTH),
    params: f.jsonObject("params"),
    maxRunTimeMs: f.nullableInt("maxRunTimeMs", { min: 0 }),
  }),
  started: (f) => ({ type: "started", ...jobAttempt(f) }),
  progress: (f) => ({ type: "progress", ...jobAttempt(f), ...readProgress(f) }),
  result: (f) => ({ type: "result", ...jobResult(f) }),
  ack: (f) => ({ type: "ack", ...jobAttempt(f) }),
  cancel: (f) => ({ type: "cancel", ...jobAttempt(f) }),
  reject: (f) => ({
    type: "reject",
    ...jobAttempt(f),
    reason: f.string("reason", { maxLength: MAX_TEXT_LENGTH }),
  }),
  error: (f) => ({ type: "error", ...wireError(f) }),
};

function isMessageType(type: string): type is SlaveLinkMessageType {
  // Object.hasOwn, not `in`: "constructor" or "__proto__" must not find
  // Object.prototype's members.
  return Object.hasOwn(READERS, type);
}

/**
 * Checks one decoded frame of the slave link and returns it as a typed
 * message holding only the known fields. Throws ProtocolError naming the
 * field and the bad value, e.g. `dispatch.jobId: expected an integer >= 1,
 * got "x"`, or `unknown message type "foo"`.
 */
export function parseSlaveMessage(value: unknown): SlaveLinkMessage {
  if (!isPlainObject(value)) {
    throw new ProtocolError(`message: expected an object, got ${showValue(value)}`);
  }
  const type = value["type"];
  if (typeof type !== "string") {
    throw new ProtocolError(`message.type: expected a string, got ${showValue(type)}`, {
      field: "message.type",
    });
  }
  if (!isMessageType(type)) {
    throw new ProtocolError(`unknown message type ${showValue(type)}`, { field: "message.type" });
  }
  const read = READERS[type] as Reader<typeof type>;
  return readShape(() => read(new Fields(value, type)));
}
