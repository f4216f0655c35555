// The admin socket: `abs` talks to the master over a Unix socket whose file
// mode decides who may administer (DESIGN.md, "Wire protocol"). ETX-framed
// JSON, one request and one reply at a time per connection:
//
//   request  {method, args, version, requestId?}
//   reply    {success: true, result} | {success: false, error: {code, message}}
//
// Bad input never reaches a handler: a frame that cannot be decoded or is not
// a request gets an error reply and the connection is closed (the stream
// position is lost); an unknown method, a wrong version or bad arguments get
// an error reply and the connection stays usable. Every request leaves one
// line in the access log. A method that changes something needs a request id
// and goes through the request gate, which answers a repeat from its record
// (admin-requests.ts).
//
// States: `listening` from listen() until close(), then `closed`.

import { chmod, chown, unlink } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { AbsError, BadArgumentError, ProtocolError, describeError } from "../errors.js";
import { type JsonObject, type JsonValue, ShapeError } from "../json-shape.js";
import type { Logger } from "../log.js";
import {
  ADMIN_PROTOCOL_VERSION,
  type AdminReply,
  MAX_REPLY_BYTES,
  parseAdminRequest,
} from "../protocol/admin-messages.js";
import { FrameDecoder, encodeFrame } from "../protocol/frame.js";
import { listenError } from "../listen-error.js";
import { checkSocketDirectory, resolveGroup } from "./admin-socket-access.js";
import { MemoryRequestLog, type RequestLog, RequestGate } from "./admin-requests.js";
import { ADMIN_METHODS, type AdminMethodName } from "../protocol/admin-api.js";
import {
  ADMIN_CONTRACT,
  type ArgsOf,
  CHANGING_METHODS,
  type ResultOf,
} from "../protocol/admin-contract.js";
import { REQUEST_ID_RE, type RequestTag, requestDigest } from "../jobsdir/request-records.js";

/**
 * Handles one admin method as the wire has it: the arguments unchecked, the
 * result as JSON. Throws an AbsError (or ShapeError for bad args) to refuse.
 * `request` is the request's tag for a changing method (see
 * CHANGING_METHODS), null for the others. The masters' methods are typed
 * AdminHandlers, made into these by bindAdminHandlers; the server itself
 * takes any, so that its tests may serve methods of their own.
 */
export type AdminMethod = (
  args: JsonObject,
  request: RequestTag | null,
) => Promise<JsonValue> | JsonValue;

/** Handles admin method `M`: its arguments as the contract parsed them, its result as the contract says. */
export type AdminHandler<M extends AdminMethodName> = (
  args: ArgsOf<M>,
  request: RequestTag | null,
) => Promise<ResultOf<M>> | ResultOf<M>;

/** A handler for every admin method (src/protocol/admin-contract.ts). */
export type AdminHandlers = { [M in AdminMethodName]: AdminHandler<M> };

/**
 * The wire methods of `handlers`: each checks its arguments with the
 * contract's parser, then calls the handler. The fake master leaves out
 * the methods it does not serve.
 */
export function bindAdminHandlers(
  handlers: Partial<AdminHandlers>,
): Map<AdminMethodName, AdminMethod> {
  const methods = new Map<AdminMethodName, AdminMethod>();
  for (const name of ADMIN_METHODS) {
    const method = bindHandler(name, handlers);
    if (method !== undefined) methods.set(name, method);
  }
  return methods;
}

function bindHandler<M extends AdminMethodName>(
  name: M,
  handlers: Partial<AdminHandlers>,
): AdminMethod | undefined {
  const handler: AdminHandler<M> | undefined = handlers[name];
  if (handler === undefined) return undefined;
  const spec = ADMIN_CONTRACT[name];
  return async (args, request) => spec.toWire(await handler(spec.parse(args), request));
}

export interface AdminServerOptions {
  /** The socket file. A stale file left by a dead master is replaced. */
  path: string;
  /** File mode of the socket, e.g. 0o660: who may administer. */
  mode: number;
  /** Group (name or gid) the socket is given, admin_socket_group. Default null: the process's. */
  group?: string | null;
  methods: ReadonlyMap<string, AdminMethod>;
  /** Where the records of changing requests are kept. Default: memory (the fake master's). */
  requests?: RequestLog;
  logger: Logger;
  /** One line per request. Default: `logger`. */
  accessLog?: Logger;
  /** Largest request frame, in bytes. Default 1 MiB. */
  maxFrameBytes?: number;
}

export class AdminServer {
  state: "listening" | "closed" = "listening";
  private readonly connections = new Set<net.Socket>();
  private readonly gate: RequestGate;

  private constructor(
    private readonly server: net.Server,
    private readonly opts: AdminServerOptions,
  ) {
    this.gate = new RequestGate(opts.requests ?? new MemoryRequestLog());
  }

  static async listen(opts: AdminServerOptions): Promise<AdminServer> {
    // Before anything is removed or made there (admin-socket-access.ts).
    await checkSocketDirectory(path.dirname(opts.path));
    const gid =
      opts.group === undefined || opts.group === null ? undefined : await resolveGroup(opts.group);
    await removeStaleSocket(opts.path);
    const server = net.createServer();
    const admin = new AdminServer(server, opts);
    server.on("connection", (socket) => admin.serve(socket));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(opts.path, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (err) {
      throw listenError("admin requests", opts.path, "admin_socket", err);
    }
    // The socket file exists from listen() on; until the chmod it has the
    // umask's mode, which the daemon sets tight (0077) before this. The
    // group comes first, so the group bits never apply to the old group.
    try {
      if (gid !== undefined) await chown(opts.path, -1, gid);
      await chmod(opts.path, opts.mode);
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      const to =
        gid === undefined ? "" : ` and group ${opts.group ?? ""} (gid ${gid}, admin_socket_group)`;
      throw new AbsError(
        "CONFIG",
        `cannot give the admin socket ${opts.path} mode ${opts.mode.toString(8).padStart(4, "0")}${to}: ${describeError(err)}` +
          (gid === undefined ? "" : "; the master must run as root or be a member of that group"),
        {
          cause: err,
          context: {
            file: opts.path,
            field: gid === undefined ? "admin_socket_mode" : "admin_socket_group",
          },
        },
      );
    }
    return admin;
  }

  async close(): Promise<void> {
    if (this.state === "closed") return;
    this.state = "closed";
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.connections) socket.destroy();
    await closed;
  }

  private serve(socket: net.Socket): void {
    this.connections.add(socket);
    socket.on("close", () => this.connections.delete(socket));
    socket.on("error", () => socket.destroy());
    const decoder = new FrameDecoder({ maxFrameBytes: this.opts.maxFrameBytes });
    // Requests on one connection are answered in order.
    let queue: Promise<void> = Promise.resolve();
    socket.on("data", (chunk: Buffer) => {
      let frames: unknown[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        const error = err instanceof AbsError ? err : new ProtocolError(describeError(err));
        this.access("(unreadable)", error.code, 0);
        // Answer once, then read and drop whatever else comes until the
        // client closes: closing with unread bytes would reset the
        // connection, and the client might lose the answer.
        socket.removeAllListeners("data");
        socket.on("data", () => undefined);
        socket.end(encodeFrame(failure(error)));
        return;
      }
      for (const frame of frames) {
        queue = queue.then(() => this.answer(socket, frame));
      }
    });
  }

  private async answer(socket: net.Socket, frame: unknown): Promise<void> {
    const started = process.hrtime.bigint();
    const elapsed = (): number => Number(process.hrtime.bigint() - started) / 1e6;
    let request;
    try {
      request = parseAdminRequest(frame);
    } catch (err) {
      const error = err instanceof AbsError ? err : new ProtocolError(describeError(err));
      this.access("(invalid)", error.code, elapsed());
      socket.end(encodeFrame(failure(error)));
      return;
    }
    let reply: AdminReply;
    let outcome: string | undefined;
    if (request.version !== ADMIN_PROTOCOL_VERSION) {
      reply = failure(
        new ProtocolError(
          `admin protocol version ${request.version} is not spoken by this master (it speaks ${ADMIN_PROTOCOL_VERSION}); use the abs command of the same release`,
        ),
      );
    } else {
      ({ reply, outcome } = await this.call(request.method, request.args, request.requestId));
    }
    let bytes: Buffer;
    try {
      bytes = encodeFrame(reply, MAX_REPLY_BYTES);
    } catch (err) {
      reply = failure(err instanceof AbsError ? err : new AbsError("INTERNAL", describeError(err)));
      bytes = encodeFrame(reply);
    }
    this.access(
      request.method,
      reply.success ? (outcome ?? "ok") : reply.error.code,
      elapsed(),
      request.requestId,
    );
    if (!socket.destroyed) socket.write(bytes);
  }

  private async call(
    method: string,
    args: JsonObject,
    requestId: string | null,
  ): Promise<{ reply: AdminReply; outcome?: string }> {
    const handler = this.opts.methods.get(method);
    if (handler === undefined) {
      return { reply: failure(new BadArgumentError(`unknown method "${method}"`, "method")) };
    }
    try {
      if (!CHANGING_METHODS.has(method as AdminMethodName)) {
        // Keys in this order: adminCallText finds the result by this prefix.
        return { reply: { success: true, result: await handler(args, null) } };
      }
      const tag = requestTag(method, args, requestId);
      const { result, repeat } = await this.gate.run(tag, async () => handler(args, tag));
      return { reply: { success: true, result }, outcome: repeat ? "repeat" : "ok" };
    } catch (err) {
      if (err instanceof ShapeError) {
        return {
          reply: failure(new BadArgumentError(`${method}: ${err.field}: ${err.why}`, err.field)),
        };
      }
      if (err instanceof AbsError) return { reply: failure(err) };
      this.opts.logger.error(`admin method ${method} failed: ${describeError(err)}`);
      return {
        reply: failure(new AbsError("INTERNAL", `${method} failed: ${describeError(err)}`)),
      };
    }
  }

  private access(method: string, outcome: string, ms: number, requestId?: string | null): void {
    (this.opts.accessLog ?? this.opts.logger).info("admin request", {
      method,
      outcome,
      ms: Math.round(ms * 10) / 10,
      ...(requestId === undefined || requestId === null ? {} : { request: requestId }),
    });
  }
}

/** The tag of a changing request; refuses one without a usable request id. */
function requestTag(method: string, args: JsonObject, requestId: string | null): RequestTag {
  if (requestId === null) {
    throw new BadArgumentError(
      `${method} changes something, so its request needs a request id (requestId), which makes a retry safe; abs sends one`,
      "requestId",
    );
  }
  if (!REQUEST_ID_RE.test(requestId)) {
    throw new BadArgumentError(
      `request id ${JSON.stringify(requestId)} is not one: 8 to 64 letters, digits and ._:- starting with a letter or digit`,
      "requestId",
    );
  }
  return { id: requestId, method, digest: requestDigest(method, args) };
}

function failure(error: AbsError): AdminReply {
  return { success: false, error: { code: error.code, message: error.message } };
}

/**
 * A socket file with no one listening is what a master killed with SIGKILL
 * leaves; it is removed. One that answers belongs to a running master.
 */
async function removeStaleSocket(path: string): Promise<void> {
  const answered = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (answered) {
    throw new AbsError("CONFIG", `admin socket ${path} is in use by another running master`, {
      context: { file: path },
    });
  }
  await unlink(path).catch(() => undefined);
}
