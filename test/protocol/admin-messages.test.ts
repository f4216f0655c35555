import t from "tap";
import { errorFromWire, JobNotFoundError, ProtocolError } from "../../src/errors.js";
import { encodeFrame, FrameDecoder } from "../../src/protocol/frame.js";
import {
  ADMIN_PROTOCOL_VERSION,
  parseAdminReply,
  parseAdminRequest,
} from "../../src/protocol/messages.js";
import { thrown } from "./helpers.js";

t.test("valid requests and replies parse to themselves", (t) => {
  const request = {
    method: "show-jobs",
    args: { state: ["running"] },
    version: ADMIN_PROTOCOL_VERSION,
    requestId: "3f2a9c1e-0b7d-4e55-9a61-2c8f0d4b7e19",
  };
  const ok = { success: true, result: [{ id: 1 }, { id: 2 }] };
  const okNull = { success: true, result: null };
  const failed = { success: false, error: new JobNotFoundError(7).toWire() };
  const decoded = new FrameDecoder().push(
    Buffer.concat([request, ok, okNull, failed].map((m) => encodeFrame(m))),
  );
  t.strictSame(parseAdminRequest(decoded[0]), request);
  t.strictSame(parseAdminReply(decoded[1]), ok);
  t.strictSame(parseAdminReply(decoded[2]), okNull);
  t.strictSame(parseAdminReply(decoded[3]), {
    success: false,
    error: { code: "JOB_NOT_FOUND", message: "job 7 does not exist", context: { jobId: 7 } },
  });
  t.end();
});

t.test("a failed reply turns back into the same error code", (t) => {
  const reply = parseAdminReply({ success: false, error: new JobNotFoundError(7).toWire() });
  if (reply.success) throw new Error("expected a failed reply");
  const err = errorFromWire(reply.error);
  t.equal(err.code, "JOB_NOT_FOUND");
  t.equal(err.message, "job 7 does not exist");
  t.same(err.context, { jobId: 7 });
  t.end();
});

t.test("unknown extra fields are dropped", (t) => {
  t.strictSame(parseAdminRequest({ method: "run", args: {}, version: 1, client: "abs 0.2" }), {
    method: "run",
    args: {},
    version: 1,
    requestId: null,
  });
  t.strictSame(
    parseAdminRequest({ method: "run", args: {}, version: 2, requestId: "r-12345678" }),
    {
      method: "run",
      args: {},
      version: 2,
      requestId: "r-12345678",
    },
  );
  t.strictSame(
    parseAdminReply({ success: false, error: { code: "DRAINED", message: "m", hint: "x" } }),
    { success: false, error: { code: "DRAINED", message: "m" } },
  );
  t.end();
});

t.test("bad requests name the field", (t) => {
  const good = { method: "run", args: {}, version: 1 };
  const cases: [string, unknown, string][] = [
    ["not an object", "run", 'request: expected an object, got "run"'],
    ["no method", { ...good, method: undefined }, "request.method: expected a string, got nothing"],
    ["method a number", { ...good, method: 1 }, "request.method: expected a string, got 1"],
    [
      "method empty",
      { ...good, method: "" },
      'request.method: expected a non-empty string, got ""',
    ],
    [
      "method with control characters",
      { ...good, method: "run\r\nforged" },
      'request.method: expected no control characters, got "run\\r\\nforged"',
    ],
    ["args an array", { ...good, args: [] }, "request.args: expected an object, got []"],
    [
      "requestId a number",
      { ...good, requestId: 7 },
      "request.requestId: expected a string, got 7",
    ],
    ["args missing", { ...good, args: undefined }, "request.args: expected an object, got nothing"],
    [
      "version a string",
      { ...good, version: "1" },
      'request.version: expected an integer >= 1, got "1"',
    ],
    ["version zero", { ...good, version: 0 }, "request.version: expected an integer >= 1, got 0"],
  ];
  for (const [name, value, message] of cases) {
    t.test(name, (t) => {
      const err = thrown(() => parseAdminRequest(value));
      t.ok(err instanceof ProtocolError);
      t.equal((err as ProtocolError).code, "PROTOCOL");
      t.equal((err as Error).message, message);
      t.end();
    });
  }
  t.end();
});

t.test("bad replies name the field", (t) => {
  const cases: [string, unknown, string][] = [
    ["not an object", null, "reply: expected an object, got null"],
    ["success missing", { result: 1 }, "reply.success: expected true or false, got nothing"],
    ["success a string", { success: "yes" }, 'reply.success: expected true or false, got "yes"'],
    ["result missing", { success: true }, "reply.result: expected a value, got nothing"],
    ["error missing", { success: false }, "reply.error: expected an object, got nothing"],
    [
      "error code missing",
      { success: false, error: { message: "m" } },
      "reply.error.code: expected a string, got nothing",
    ],
    [
      "error message a number",
      { success: false, error: { code: "X", message: 5 } },
      "reply.error.message: expected a string, got 5",
    ],
    [
      "error context not an object",
      { success: false, error: { code: "X", message: "m", context: "c" } },
      'reply.error.context: expected an object, got "c"',
    ],
    [
      "error context slave a number",
      { success: false, error: { code: "X", message: "m", context: { slave: 1 } } },
      "reply.error.context.slave: expected a string, got 1",
    ],
  ];
  for (const [name, value, message] of cases) {
    t.test(name, (t) => {
      const err = thrown(() => parseAdminReply(value));
      t.ok(err instanceof ProtocolError);
      t.equal((err as ProtocolError).code, "PROTOCOL");
      t.equal((err as Error).message, message);
      t.equal((err as ProtocolError).context.field, message.slice(0, message.indexOf(":")));
      t.end();
    });
  }
  t.end();
});
