import t, { type Test } from "tap";
import { ProtocolError } from "../../src/errors.js";
import { encodeFrame, FrameDecoder } from "../../src/protocol/frame.js";
import {
  MAX_NAME_LENGTH,
  MAX_NONCE_BASE64_LENGTH,
  MAX_REPORTED_JOBS,
  MAX_TEXT_LENGTH,
  parseSlaveMessage,
  SLAVE_PROTOCOL_VERSION,
  type SlaveLinkMessage,
  type SlaveLinkMessageType,
} from "../../src/protocol/messages.js";
import { thrown } from "./helpers.js";

// One valid message of every type. The mapped type makes a type added to
// SlaveLinkMessage without a sample here a compile error.
const SAMPLES: { [K in SlaveLinkMessageType]: Extract<SlaveLinkMessage, { type: K }> } = {
  hello: { type: "hello", version: SLAVE_PROTOCOL_VERSION, name: "green-acres", mode: "realm-key" },
  "auth-challenge": { type: "auth-challenge", nonce: "bm9uY2Ux" },
  "auth-response": { type: "auth-response", nonce: "c2xhdmU=", mac: "bWFjIQ==" },
  "auth-proof": { type: "auth-proof", mac: "bWFzdGVyIG1hYw==" },
  "auth-token": { type: "auth-token", token: "YIIBxAYJKoZIhvcSAQICAQBu" },
  "auth-ok": { type: "auth-ok", master: "backup.example.org", identity: "host/green-acres@EX.ORG" },
  register: {
    type: "register",
    name: "green-acres",
    maxJobs: 2,
    running: [
      {
        jobId: 12,
        attempt: 1,
        state: "running",
        progress: { files: 10, bytes: 2048, path: "/home/a" },
      },
    ],
    results: [{ jobId: 9, attempt: 2, outcome: "failed", message: "tar: exit 2", data: {} }],
  },
  registered: { type: "registered", master: "backup.example.org", heartbeatMs: 10_000 },
  heartbeat: { type: "heartbeat", time: 1_700_000_000_000 },
  dispatch: {
    type: "dispatch",
    jobId: 12,
    attempt: 1,
    definition: "home",
    method: "tar",
    params: { paths: ["/home"], exclude: { glob: "*.tmp" } },
    maxRunTimeMs: 3_600_000,
  },
  started: { type: "started", jobId: 12, attempt: 1 },
  progress: { type: "progress", jobId: 12, attempt: 1, files: 0, bytes: 0, path: null },
  result: {
    type: "result",
    jobId: 12,
    attempt: 1,
    outcome: "succeeded",
    message: "",
    data: { archiveBytes: 123 },
  },
  ack: { type: "ack", jobId: 12, attempt: 1 },
  cancel: { type: "cancel", jobId: 12, attempt: 1 },
  reject: { type: "reject", jobId: 12, attempt: 1, reason: "path /etc is outside allowed paths" },
  error: { type: "error", code: "AUTH_FAILED", message: "bad MAC" },
};

// Free-form objects: their contents belong to the method, not the protocol.
const FREE_FORM = new Set(["params", "data"]);

type Path = (string | number)[];

/** Every field path of a sample, nested ones included (`running[0].progress.files`). */
function fieldPaths(value: Record<string, unknown>, prefix: Path = []): Path[] {
  const paths: Path[] = [];
  for (const [key, v] of Object.entries(value)) {
    if (prefix.length === 0 && key === "type") continue;
    const path = [...prefix, key];
    paths.push(path);
    if (FREE_FORM.has(key)) continue;
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        paths.push(...fieldPaths(item as Record<string, unknown>, [...path, i]));
      });
    } else if (typeof v === "object" && v !== null) {
      paths.push(...fieldPaths(v as Record<string, unknown>, path));
    }
  }
  return paths;
}

/** `register.running[0].progress.files` for type "register" and that path. */
function dotted(type: string, path: Path): string {
  return path.reduce<string>((s, p) => (typeof p === "number" ? `${s}[${p}]` : `${s}.${p}`), type);
}

/** A deep copy of `sample` with the field at `path` set to `value` (or removed if undefined). */
function withField(sample: object, path: Path, value: unknown): unknown {
  const copy = structuredClone(sample) as Record<string | number, unknown>;
  let node = copy;
  for (const p of path.slice(0, -1)) node = node[p] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

function expectProtocolError(
  t: Test,
  value: unknown,
  message: string | RegExp,
  field?: string,
): void {
  const err = thrown(() => parseSlaveMessage(value));
  if (!(err instanceof ProtocolError)) {
    t.fail(`expected a ProtocolError, got ${String(err)}`);
    return;
  }
  t.equal(err.code, "PROTOCOL");
  if (typeof message === "string") t.equal(err.message, message);
  else t.match(err.message, message);
  if (field !== undefined) t.equal(err.context.field, field);
}

t.test("every sample parses to itself and survives the frame layer", (t) => {
  const all = Object.values(SAMPLES);
  const decoded = new FrameDecoder().push(Buffer.concat(all.map((m) => encodeFrame(m))));
  t.same(decoded.map(parseSlaveMessage), all);
  for (const sample of all) t.strictSame(parseSlaveMessage(sample), sample, sample.type);
  t.end();
});

t.test("unknown extra fields are ignored and dropped", (t) => {
  const parsed = parseSlaveMessage({ ...SAMPLES.started, eta: 5, note: { x: 1 } });
  t.strictSame(parsed, SAMPLES.started);
  const register = structuredClone(SAMPLES.register) as unknown as Record<string, unknown[]>;
  (register["running"][0] as Record<string, unknown>)["extra"] = true;
  t.strictSame(parseSlaveMessage(register), SAMPLES.register);
  t.end();
});

t.test("free-form params and data are kept as they are", (t) => {
  const params = { a: [1, { b: null }], "weird key": "\u0003" };
  const parsed = parseSlaveMessage({ ...SAMPLES.dispatch, params });
  t.same(parsed.type === "dispatch" && parsed.params, params);
  t.end();
});

t.test("nullable fields accept null", (t) => {
  t.equal(
    (parseSlaveMessage({ ...SAMPLES.dispatch, maxRunTimeMs: null }) as { maxRunTimeMs: unknown })
      .maxRunTimeMs,
    null,
  );
  const register = withField(SAMPLES.register, ["running", 0, "progress"], null);
  t.same(parseSlaveMessage(register), {
    ...SAMPLES.register,
    running: [{ ...SAMPLES.register.running[0], progress: null }],
  });
  t.end();
});

// Generated: for every field of every message type, a wrong-typed value and a
// missing field. No field of the slave link accepts a boolean, so `true` is
// wrong everywhere; the error must name the exact field path.
t.test("a wrong-typed or missing field is named in the error", (t) => {
  let cases = 0;
  for (const sample of Object.values(SAMPLES)) {
    for (const path of fieldPaths(sample as unknown as Record<string, unknown>)) {
      const field = dotted(sample.type, path);
      expectProtocolError(
        t,
        withField(sample, path, true),
        new RegExp(`^${escape(field)}: expected .+, got true$`),
        field,
      );
      expectProtocolError(
        t,
        withField(sample, path, undefined),
        new RegExp(`^${escape(field)}: expected .+, got nothing$`),
        field,
      );
      cases++;
    }
  }
  t.equal(cases, 56, "fields checked");
  t.end();
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

t.test("exact messages for each kind of check", (t) => {
  const s = SAMPLES;
  const cases: [string, unknown, string][] = [
    [
      "jobId a string",
      { ...s.dispatch, jobId: "x" },
      'dispatch.jobId: expected an integer >= 1, got "x"',
    ],
    ["jobId zero", { ...s.ack, jobId: 0 }, "ack.jobId: expected an integer >= 1, got 0"],
    [
      "attempt fractional",
      { ...s.cancel, attempt: 1.5 },
      "cancel.attempt: expected an integer >= 1, got 1.5",
    ],
    [
      "jobId unsafe",
      { ...s.started, jobId: 2 ** 53 },
      "started.jobId: expected an integer >= 1, got 9007199254740992",
    ],
    ["version zero", { ...s.hello, version: 0 }, "hello.version: expected an integer >= 1, got 0"],
    [
      "mode unknown",
      { ...s.hello, mode: "password" },
      'hello.mode: expected one of realm-key, kerberos, got "password"',
    ],
    ["name empty", { ...s.hello, name: "" }, 'hello.name: expected a non-empty string, got ""'],
    [
      "name too long",
      { ...s.hello, name: "n".repeat(MAX_NAME_LENGTH + 1) },
      `hello.name: expected a string of at most 255 characters, got "${"n".repeat(56)}...`,
    ],
    [
      "name with a newline",
      { ...s.hello, name: "evil\nINFO forged" },
      'hello.name: expected no control characters, got "evil\\nINFO forged"',
    ],
    [
      "nonce not base64",
      { ...s["auth-challenge"], nonce: "not base64!" },
      'auth-challenge.nonce: expected a base64 string, got "not base64!"',
    ],
    [
      "nonce unpadded",
      { ...s["auth-challenge"], nonce: "abc" },
      'auth-challenge.nonce: expected a base64 string, got "abc"',
    ],
    [
      "mac empty",
      { ...s["auth-proof"], mac: "" },
      'auth-proof.mac: expected a non-empty string, got ""',
    ],
    [
      "mac too long",
      { ...s["auth-response"], mac: "A".repeat(MAX_NONCE_BASE64_LENGTH + 4) },
      `auth-response.mac: expected a string of at most ${MAX_NONCE_BASE64_LENGTH} characters, got "${"A".repeat(56)}...`,
    ],
    [
      "token a number",
      { ...s["auth-token"], token: 5 },
      "auth-token.token: expected a string, got 5",
    ],
    [
      "maxJobs too many",
      { ...s.register, maxJobs: MAX_REPORTED_JOBS + 1 },
      "register.maxJobs: expected an integer from 1 to 10000, got 10001",
    ],
    [
      "running not an array",
      { ...s.register, running: {} },
      "register.running: expected an array, got {}",
    ],
    [
      "running too long",
      { ...s.register, running: new Array<null>(MAX_REPORTED_JOBS + 1).fill(null) },
      "register.running: expected an array of at most 10000 items, got [null,null,null,null,null,null,null,null,null,null,null,n...",
    ],
    [
      "running item not an object",
      { ...s.register, running: [5] },
      "register.running[0]: expected an object, got 5",
    ],
    [
      "running state unknown",
      withField(s.register, ["running", 0, "state"], "succeeded"),
      'register.running[0].state: expected one of dispatched, running, canceling, got "succeeded"',
    ],
    [
      "progress files negative",
      withField(s.register, ["running", 0, "progress", "files"], -1),
      "register.running[0].progress.files: expected an integer >= 0, got -1",
    ],
    [
      "second result bad",
      {
        ...s.register,
        results: [s.register.results[0], { ...s.register.results[0], outcome: "ok" }],
      },
      'register.results[1].outcome: expected one of succeeded, failed, canceled, got "ok"',
    ],
    [
      "heartbeatMs zero",
      { ...s.registered, heartbeatMs: 0 },
      "registered.heartbeatMs: expected an integer >= 1, got 0",
    ],
    [
      "time negative",
      { ...s.heartbeat, time: -5 },
      "heartbeat.time: expected an integer >= 0, got -5",
    ],
    [
      "params an array",
      { ...s.dispatch, params: [] },
      "dispatch.params: expected an object, got []",
    ],
    [
      "maxRunTimeMs negative",
      { ...s.dispatch, maxRunTimeMs: -1 },
      "dispatch.maxRunTimeMs: expected an integer >= 0, got -1",
    ],
    [
      "progress path a number",
      { ...s.progress, path: 7 },
      "progress.path: expected a string, got 7",
    ],
    ["data null", { ...s.result, data: null }, "result.data: expected an object, got null"],
    [
      "result message too long",
      { ...s.result, message: "m".repeat(MAX_TEXT_LENGTH + 1) },
      `result.message: expected a string of at most 65536 characters, got "${"m".repeat(56)}...`,
    ],
    [
      "reject reason null",
      { ...s.reject, reason: null },
      "reject.reason: expected a string, got null",
    ],
    [
      "error code empty",
      { ...s.error, code: "" },
      'error.code: expected a non-empty string, got ""',
    ],
    [
      "error context jobId",
      { ...s.error, context: { jobId: "7" } },
      'error.context.jobId: expected an integer >= 1, got "7"',
    ],
  ];
  for (const [name, value, message] of cases) {
    t.test(name, (t) => {
      expectProtocolError(t, value, message, message.slice(0, message.indexOf(":")));
      t.end();
    });
  }
  t.end();
});

t.test("the message itself and its type", (t) => {
  const cases: [string, unknown, string][] = [
    ["not an object", 5, "message: expected an object, got 5"],
    ["an array", [{ type: "hello" }], 'message: expected an object, got [{"type":"hello"}]'],
    ["null", null, "message: expected an object, got null"],
    ["no type", { jobId: 1 }, "message.type: expected a string, got nothing"],
    ["type a number", { type: 3 }, "message.type: expected a string, got 3"],
    ["unknown type", { type: "foo" }, 'unknown message type "foo"'],
    ["type constructor", { type: "constructor" }, 'unknown message type "constructor"'],
    ["type __proto__", JSON.parse('{"type":"__proto__"}'), 'unknown message type "__proto__"'],
    ["type toString", { type: "toString" }, 'unknown message type "toString"'],
    ["type case matters", { type: "Hello" }, 'unknown message type "Hello"'],
  ];
  for (const [name, value, message] of cases) {
    t.test(name, (t) => {
      expectProtocolError(t, value, message);
      t.end();
    });
  }
  t.end();
});

t.test("error messages keep a valid context and drop unknown keys", (t) => {
  const parsed = parseSlaveMessage({
    type: "error",
    code: "JOB_NOT_FOUND",
    message: "job 7 does not exist",
    context: { jobId: 7, slave: "green-acres", color: "red" },
  });
  t.strictSame(parsed, {
    type: "error",
    code: "JOB_NOT_FOUND",
    message: "job 7 does not exist",
    context: { jobId: 7, slave: "green-acres" },
  });
  t.end();
});
