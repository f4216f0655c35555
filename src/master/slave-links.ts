// The master's slave connections: each authenticated connection from the
// LinkServer gets a SlaveSession; registered sessions go to the dispatcher;
// closed ones are reported to it (their jobs are orphaned). Heartbeats run
// both ways: the master sends one every heartbeat interval, and closes a
// connection it has heard nothing on for three intervals (a slave whose
// host died without closing its TCP connection).

import type { LinkServer } from "../auth/link-server.js";
import type { MasterSideConnection } from "../auth/link-connection.js";
import type { Clock, Timer } from "../clock.js";
import { ProtocolError } from "../errors.js";
import type { JobStore } from "../jobsdir/job-store.js";
import type { MasterConfig } from "../config/master-config.js";
import type { Logger } from "../log.js";
import type { Dispatcher } from "./dispatcher.js";
import type { SlaveRegistry } from "./slave-registry.js";
import { SlaveSession } from "./slave-session.js";
import { vouchedFor } from "./slave-listener.js";

/** A slave silent for this many heartbeat intervals is disconnected. */
const MISSED_HEARTBEATS = 3;

export interface SlaveLinksOptions {
  server: LinkServer;
  store: JobStore;
  dispatcher: Dispatcher;
  registry: SlaveRegistry;
  logger: Logger;
  clock: Clock;
  masterName: string;
  heartbeatMs: number;
  /** The config the link was opened with: who may use which slave name (vouchedFor). */
  config: MasterConfig;
}

export class SlaveLinks {
  private readonly sessions = new Set<SlaveSession>();
  /** The newest session of each slave name. */
  private readonly byName = new Map<string, SlaveSession>();
  private heartbeatMs: number;
  private timer: Timer | null = null;
  private stopped = false;

  constructor(private readonly opts: SlaveLinksOptions) {
    this.heartbeatMs = opts.heartbeatMs;
    opts.server.on("connection", (conn) => this.accept(conn));
    this.armHeartbeat();
  }

  setHeartbeat(ms: number): void {
    this.heartbeatMs = ms;
    this.armHeartbeat();
  }

  /** Stops heartbeats and closes every session (the LinkServer closes the sockets). */
  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    for (const s of this.sessions) s.close();
  }

  private accept(conn: MasterSideConnection): void {
    const { logger, clock } = this.opts;
    if (!vouchedFor(conn, this.opts.config, logger)) return;
    // A new connection of a slave speaks for it from now on: the old one
    // (a half-dead TCP connection, say) is closed and its jobs orphaned
    // before the new one can register and reattach them.
    const previous = this.byName.get(conn.name);
    if (previous !== undefined) {
      logger.info(`slave ${conn.name}: a new connection from ${conn.peer} replaces the old one`, {
        slave: conn.name,
      });
      this.byName.delete(conn.name);
      previous.close(new ProtocolError(`replaced by a new connection from ${conn.peer}`));
      void this.opts.dispatcher.slaveGone(previous);
    }
    let registered = false;
    const session = new SlaveSession({
      name: conn.name,
      master: this.opts.masterName,
      heartbeatMs: this.heartbeatMs,
      store: this.opts.store,
      port: conn,
      logger,
      clock: () => clock.now(),
      onRegistered: (s) => {
        registered = true;
        this.opts.registry.note({
          name: s.name,
          identity: conn.identity,
          address: conn.peer,
          lastSeen: clock.now(),
          maxJobs: s.maxJobs,
        });
        this.opts.dispatcher.slaveRegistered(s);
      },
    });
    this.sessions.add(session);
    this.byName.set(conn.name, session);
    conn.onMessage((message) => void session.handle(message));
    conn.onClose((error) => {
      this.sessions.delete(session);
      if (this.byName.get(session.name) === session) this.byName.delete(session.name);
      session.close();
      // Even unregistered: a registration cut short may have reattached jobs.
      // (The dispatcher ignores it while another session of the name is registered.)
      void this.opts.dispatcher.slaveGone(session);
      if (!registered) return;
      const record = this.opts.registry.get(session.name);
      if (record !== undefined) this.opts.registry.note({ ...record, lastSeen: clock.now() });
      logger.info(
        `slave ${session.name} disconnected${error === null ? "" : `: ${error.message}`}`,
        { slave: session.name },
      );
    });
  }

  private armHeartbeat(): void {
    this.timer?.cancel();
    if (this.stopped) return;
    this.timer = this.opts.clock.setTimer(this.heartbeatMs, () => {
      this.beat();
      this.armHeartbeat();
    });
  }

  private beat(): void {
    const now = this.opts.clock.now();
    for (const session of this.sessions) {
      // Measured against the interval the slave was given when it registered:
      // a reload that shortens it must not cut off slaves still on the old one.
      const limit = Math.max(this.heartbeatMs, session.heartbeatMs) * MISSED_HEARTBEATS;
      if (now - session.lastHeard > limit) {
        this.opts.logger.warn(
          `slave ${session.name}: nothing heard for ${Math.round((now - session.lastHeard) / 1000)} s; disconnecting`,
          { slave: session.name },
        );
        session.close(new ProtocolError(`no heartbeat for ${MISSED_HEARTBEATS} intervals`));
        continue;
      }
      session.send({ type: "heartbeat", time: now });
    }
  }
}
