import { statSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import t, { type Test } from "tap";
import { adminCall } from "../../src/admin-client.js";
import { QueueFullError } from "../../src/errors.js";
import { Fields } from "../../src/json-shape.js";
import {
  type AdminMethod,
  AdminServer,
  type AdminHandler,
  type AdminHandlers,
  bindAdminHandlers,
} from "../../src/master/admin-server.js";
import { FrameDecoder } from "../../src/protocol/frame.js";
import { CollectingLogger } from "../helpers/log.js";
import { tempDir } from "../helpers/tmp.js";

const METHODS = new Map<string, AdminMethod>([
  ["echo", (args) => args],
  [
    "full",
    () => {
      throw new QueueFullError(3);
    },
  ],
  ["show-job", (args) => ({ id: new Fields(args, "args").int("id", { min: 1 }) })],
  [
    "boom",
    () => {
      throw new TypeError("cannot read properties of undefined");
    },
  ],
]);

async function start(t: Test, extra: { maxFrameBytes?: number } = {}) {
  const dir = tempDir(t);
  const socketPath = path.join(dir, "admin.sock");
  const log = new CollectingLogger();
  const server = await AdminServer.listen({
    path: socketPath,
    mode: 0o660,
    methods: METHODS,
    logger: log,
    ...extra,
  });
  t.teardown(() => server.close());
  return { socketPath, log, server };
}

/** Sends raw bytes, collects the reply frames until the master closes or `frames` have arrived. */
function raw(
  socketPath: string,
  bytes: Buffer,
  frames: number,
): Promise<{ replies: unknown[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath, () => socket.write(bytes));
    const decoder = new FrameDecoder();
    const replies: unknown[] = [];
    socket.on("data", (chunk: Buffer) => {
      replies.push(...decoder.push(chunk));
      if (replies.length >= frames) {
        socket.destroy();
        resolve({ replies, closed: false });
      }
    });
    socket.on("close", () => resolve({ replies, closed: true }));
    socket.on("error", reject);
  });
}

t.test("a call and its reply; errors come back as the same code", async (t) => {
  const { socketPath, log } = await start(t);
  t.same(await adminCall(socketPath, "echo", { a: [1, "x"] }), { a: [1, "x"] });
  await t.rejects(adminCall(socketPath, "full", {}), {
    code: "QUEUE_FULL",
    message: /3 unarchived jobs/,
  });
  await t.rejects(adminCall(socketPath, "boom", {}), {
    code: "INTERNAL",
    message: "boom failed: cannot read properties of undefined",
  });
  t.equal(
    log.lines.filter((l) => l.message === "admin request").length,
    3,
    "one access-log line per request",
  );
  t.same(
    log.lines.filter((l) => l.message === "admin request").map((l) => l.meta?.outcome),
    ["ok", "QUEUE_FULL", "INTERNAL"],
  );
  t.equal(statSync(socketPath).mode & 0o777, 0o660, "the socket has the configured mode");
});

t.test("bad input gets a clear error and the master keeps serving", async (t) => {
  const { socketPath } = await start(t, { maxFrameBytes: 4096 });
  const cases: [string, Buffer, boolean, RegExp][] = [
    ["garbage bytes", Buffer.from("\x00\xffnot json at all\x03"), true, /frame|JSON|UTF-8/],
    [
      "a frame over the limit",
      Buffer.from("[" + "1,".repeat(4000)),
      true,
      /exceeds the limit of 4096 bytes/,
    ],
    ["not a request", Buffer.from('{"hello": 1}\x03'), true, /request\.method: expected a string/],
    [
      "unknown method",
      Buffer.from('{"method":"frobnicate","args":{},"version":2}\x03'),
      false,
      /unknown method "frobnicate"/,
    ],
    [
      "wrong version",
      Buffer.from('{"method":"echo","args":{},"version":3}\x03'),
      false,
      /admin protocol version 3 is not spoken by this master \(it speaks 2\)/,
    ],
    [
      "arguments of the wrong type",
      Buffer.from('{"method":"show-job","args":{"id":"seven"},"version":2}\x03'),
      false,
      /show-job: args\.id: expected an integer >= 1, got "seven"/,
    ],
  ];
  for (const [name, bytes, closes, message] of cases) {
    // Wait for the close where one is expected, else for the one reply.
    const { replies, closed } = await raw(socketPath, bytes, closes ? Infinity : 1);
    t.equal(replies.length, 1, `${name}: one reply`);
    t.match(replies[0], { success: false, error: { message } }, name);
    if (closes) t.ok(closed, `${name}: that connection is closed`);
    t.same(
      await adminCall(socketPath, "echo", { still: "here" }),
      { still: "here" },
      `${name}: still serving`,
    );
  }
});

t.test("two requests on one connection are answered in order", async (t) => {
  const { socketPath } = await start(t);
  const two = Buffer.from(
    '{"method":"echo","args":{"n":1},"version":2}\x03{"method":"echo","args":{"n":2},"version":2}\x03',
  );
  const { replies } = await raw(socketPath, two, 2);
  t.same(replies, [
    { success: true, result: { n: 1 } },
    { success: true, result: { n: 2 } },
  ]);
});

t.test("a stale socket file is replaced; a live one is refused", async (t) => {
  const dir = tempDir(t);
  const socketPath = path.join(dir, "admin.sock");
  writeFileSync(socketPath, "");
  const server = await AdminServer.listen({
    path: socketPath,
    mode: 0o600,
    methods: METHODS,
    logger: new CollectingLogger(),
  });
  t.teardown(() => server.close());
  t.same(await adminCall(socketPath, "echo", {}), {});
  await t.rejects(
    AdminServer.listen({
      path: socketPath,
      mode: 0o600,
      methods: METHODS,
      logger: new CollectingLogger(),
    }),
    {
      message: `admin socket ${socketPath} is in use by another running master`,
    },
  );
});

t.test("no master: a clear error", async (t) => {
  const socketPath = path.join(tempDir(t), "nobody.sock");
  await t.rejects(adminCall(socketPath, "echo", {}), {
    code: "UNREACHABLE",
    message: `cannot reach the master on ${socketPath}: is abs-master running? (see master.conf admin_socket)`,
  });
});

t.test(
  "bound handlers get the contract's parsed arguments; bad ones never reach them",
  async (t) => {
    const got: unknown[] = [];
    const methods = bindAdminHandlers({
      "show-schedule": (args) => {
        got.push(args);
        return { definitions: [] };
      },
    });
    t.same([...methods.keys()], ["show-schedule"], "only the methods given");
    const show = methods.get("show-schedule");
    if (show === undefined) throw new Error("show-schedule is not bound");
    t.same(await show({}, null), { definitions: [] });
    t.same(got, [{ days: 1 }], "the parser's default");
    await t.rejects(async () => show({ days: 0 }, null), {
      name: "ShapeError",
      field: "args.days",
    });
    t.equal(got.length, 1, "the handler was not called");
  },
);

t.test("a handler that answers the wrong shape does not compile", (t) => {
  // @ts-expect-error: status answers a StatusResult, which has more than this
  const short: AdminHandler<"status"> = () => ({ master: "m" });
  // @ts-expect-error: a job id is a number
  const wrongType: AdminHandler<"run"> = () => ({ jobs: ["1"] });
  // @ts-expect-error: every method of the contract needs a handler
  const missing: AdminHandlers = { status: short };
  t.equal(bindAdminHandlers({ ...missing, run: wrongType }).size, 2);
  t.end();
});
