// The admin socket: `abs` talks to the master over a Unix socket whose file
// mode decides who may administer (DESIGN.md, "Wire protocol"). ETX-framed
// JSON, one request and one reply at a time per connection:
//
//   request  {method, args, version}
//   reply    {success: true, result} | {success: false, error: {code, message}}
//
// Bad input never reaches a handler: a frame that cannot be decoded or is not
// a request gets an error reply and the connection is closed (the stream
// position is lost); an unknown method, a wrong version or bad arguments get
// an error reply and the connection stays usable. Every request leaves one
// line in the access log.
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
  parseAdminRequest,
} from "../protocol/admin-messages.js";
import { MAX_REPLY_BYTES } from "../admin-client.js";
import { FrameDecoder, encodeFrame } from "../protocol/frame.js";
import { listenError } from "../listen-error.js";
import { checkSocketDirectory, resolveGroup } from "./admin-socket-access.js";

/** Handles one admin method; throws an AbsError (or ShapeError for bad args) to refuse. */
export type AdminMethod = (args: JsonObject) => Promise<JsonValue> | JsonValue;

export interface AdminServerOptions {
  /** The socket file. A stale file left by a dead master is replaced. */
  path: string;
  /** File mode of the socket, e.g. 0o660: who may administer. */
  mode: number;
  /** Group (name or gid) the socket is given, admin_socket_group. Default null: the process's. */
  group?: string | null;
  methods: ReadonlyMap<string, AdminMethod>;
  logger: Logger;
  /** One line per request. Default: `logger`. */
  accessLog?: Logger;
  /** Largest request frame, in bytes. Default 1 MiB. */
  maxFrameBytes?: number;
}

export class AdminServer {
  state: "listening" | "closed" = "listening";
  private readonly connections = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    private readonly opts: AdminServerOptions,
  ) {}

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
    if (request.version !== ADMIN_PROTOCOL_VERSION) {
      reply = failure(
        new ProtocolError(
          `admin protocol version ${request.version} is not spoken by this master (it speaks ${ADMIN_PROTOCOL_VERSION}); use the abs command of the same release`,
        ),
      );
    } else {
      reply = await this.call(request.method, request.args);
    }
    let bytes: Buffer;
    try {
      bytes = encodeFrame(reply, MAX_REPLY_BYTES);
    } catch (err) {
      reply = failure(err instanceof AbsError ? err : new AbsError("INTERNAL", describeError(err)));
      bytes = encodeFrame(reply);
    }
    this.access(request.method, reply.success ? "ok" : reply.error.code, elapsed());
    if (!socket.destroyed) socket.write(bytes);
  }

  private async call(method: string, args: JsonObject): Promise<AdminReply> {
    const handler = this.opts.methods.get(method);
    if (handler === undefined) {
      return failure(new BadArgumentError(`unknown method "${method}"`, "method"));
    }
    try {
      // Keys in this order: adminCallText finds the result by this prefix.
      return { success: true, result: await handler(args) };
    } catch (err) {
      if (err instanceof ShapeError) {
        return failure(new BadArgumentError(`${method}: ${err.field}: ${err.why}`, err.field));
      }
      if (err instanceof AbsError) return failure(err);
      this.opts.logger.error(`admin method ${method} failed: ${describeError(err)}`);
      return failure(new AbsError("INTERNAL", `${method} failed: ${describeError(err)}`));
    }
  }

  private access(method: string, outcome: string, ms: number): void {
    (this.opts.accessLog ?? this.opts.logger).info("admin request", {
      method,
      outcome,
      ms: Math.round(ms * 10) / 10,
    });
  }
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
