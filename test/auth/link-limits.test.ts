// Unauthenticated connections against a real abs-master (127.0.0.1, port
// 0, temp dirs): silent and half-TLS connections are destroyed at
// handshake_timeout (the master's descriptors, counted in /proc, come back),
// connections over max_handshakes_per_address are closed at once with one
// summary line, and connections that prove nothing (zero bytes) never
// lock a slave with the right key out of its address.

import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import t from "tap";
import { connectToMaster } from "../../src/auth/link-client.js";
import { loadRealmKey } from "../../src/auth/realm-key.js";
import { rejection, within } from "../fixtures/link-harness.js";
import { MasterProcess } from "../helpers/master-process.js";
import { SlaveProcess } from "../helpers/slave-process.js";

/** Open descriptors of process `pid`, from /proc. */
function openFds(pid: number | undefined): number {
  if (pid === undefined) throw new Error("the master is not running");
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** A TCP connection to the master's slave link; resolves once connected. */
function connect(port: number, localAddress = "127.0.0.1"): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", localAddress });
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Resolves when the master has closed `socket` (its FIN or reset arrived). */
function closedByMaster(socket: net.Socket): Promise<void> {
  socket.on("error", () => undefined);
  socket.resume();
  return new Promise((resolve) => socket.once("close", () => resolve()));
}

/** Resolves once the master's output holds `pattern` `n` times. */
async function waitForLines(m: MasterProcess, pattern: RegExp, n: number): Promise<void> {
  let from = 0;
  for (let i = 0; i < n; i++) {
    const match = await m.waitForOutput(pattern, 30_000, from);
    from += (match.index ?? 0) + match[0].length;
  }
}

/**
 * The first bytes of a TLS ClientHello record that announces 512 bytes and
 * never sends the rest: the master's TLS layer waits for them.
 */
const HALF_CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]);

t.test("silent and half-TLS connections are destroyed at handshake_timeout", async (t) => {
  const m = await MasterProcess.start(t, { master: "handshake_timeout = 500ms" });
  const baseline = openFds(m.pid);
  // From six addresses, ten of each kind from each: within the default
  // max_handshakes_per_address (16), so every one is accepted and held.
  const sockets: net.Socket[] = [];
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  for (let a = 1; a <= 6; a++) {
    for (let i = 0; i < 5; i++) sockets.push(await connect(m.port, `127.0.0.${a}`));
    for (let i = 0; i < 5; i++) {
      const s = await connect(m.port, `127.0.0.${a}`);
      s.write(HALF_CLIENT_HELLO);
      sockets.push(s);
    }
  }
  // And ten that finish TLS, then say nothing: the authentication phase.
  for (let i = 0; i < 10; i++) {
    sockets.push(
      await new Promise<tls.TLSSocket>((resolve, reject) => {
        // (localAddress is net's option, which tls passes on.)
        const local = { localAddress: "127.0.0.7" };
        const s = tls.connect({
          port: m.port,
          host: "127.0.0.1",
          rejectUnauthorized: false,
          ...local,
        });
        s.once("secureConnect", () => resolve(s));
        s.once("error", reject);
      }),
    );
  }
  const closed = Promise.all(sockets.map(closedByMaster));
  // Each is refused once, after the timeout of its phase.
  await waitForLines(m, /slave link: refused 127\.0\.0\.\d:\d+ \(identity \(none\)\): /, 70);
  t.match(
    m.log,
    /slave link: refused 127\.0\.0\.6:\d+ \(identity \(none\)\): the TLS handshake did not complete within 500 ms of the connection/,
  );
  t.match(
    m.log,
    /slave link: refused 127\.0\.0\.7:\d+ \(identity \(none\)\): authentication did not complete within 500 ms \(the master was waiting for hello\)/,
  );
  await within(closed, "the master closing all 70 connections", 5_000);
  t.equal(openFds(m.pid), baseline, `the master's descriptors are back to ${baseline}`);
});

t.test("zero-byte connections do not lock a slave with the right key out", async (t) => {
  const m = await MasterProcess.start(t, { master: "handshake_timeout = 300ms" });
  // Ten that send nothing until the master gives up on them, ten that
  // send nothing and reset: twenty failures, twice the rate limit's ten.
  const silent: net.Socket[] = [];
  for (let i = 0; i < 10; i++) silent.push(await connect(m.port));
  t.teardown(() => silent.forEach((s) => s.destroy()));
  // A connection reset before the accept has no address left: "unknown".
  const refusal = /slave link: refused \S+ \(identity \(none\)\): /;
  await waitForLines(m, refusal, 10);
  for (let i = 0; i < 10; i++) {
    const s = await connect(m.port);
    s.on("error", () => undefined);
    s.resetAndDestroy();
  }
  await waitForLines(m, refusal, 20);
  t.notMatch(m.log, /failed to authenticate/, "the address was not blocked");
  const slave = await SlaveProcess.start(t, { master: { port: m.port, keyFile: m.keyFile } });
  t.match(slave.log, /registered with master/);
  await m.waitForOutput(/slave green-acres registered/);
});

t.test("over max_handshakes_per_address, new connections are closed at once", async (t) => {
  const m = await MasterProcess.start(t, {
    master: "handshake_timeout = 60s\nmax_handshakes_per_address = 4",
  });
  // Four silent connections take 127.0.0.1's share; the master accepts in
  // order, so every later one from that address is over the cap.
  const held: net.Socket[] = [];
  for (let i = 0; i < 4; i++) held.push(await connect(m.port));
  t.teardown(() => held.forEach((s) => s.destroy()));
  const heldClosed = held.map((s) => {
    let gone = false;
    void closedByMaster(s).then(() => (gone = true));
    return () => gone;
  });
  for (let i = 0; i < 8; i++) {
    const s = await connect(m.port);
    await within(closedByMaster(s), `connection ${i + 5} being closed at once`);
  }
  // One line at once, then one summary for the seven after it, not a line each.
  await m.waitForOutput(
    /slave link: closed 7 more new connections at once in the last 5 s, over the handshake limits: 7 over max_handshakes_per_address = 4; from 127\.0\.0\.1 7/,
  );
  t.match(
    m.log,
    /slave link: closed a new connection from 127\.0\.0\.1:\d+ at once: 4 connections from 127\.0\.0\.1 are in handshake \(max_handshakes_per_address = 4\)/,
  );
  t.equal(m.log.match(/slave link: closed /g)?.length, 2, "two lines for eight connections");
  t.same(
    heldClosed.map((gone) => gone()),
    [false, false, false, false],
    "the four in handshake are still open",
  );

  // Another address is not held back by 127.0.0.1's share.
  const conn = await connectToMaster({
    host: "127.0.0.1",
    port: m.port,
    localAddress: "127.0.0.2",
    name: "other",
    auth: { mode: "realm-key", realmKey: await loadRealmKey(m.keyFile) },
  });
  t.equal(conn.identity, "other");
  conn.close();
});

t.test("300 silent connections under ulimit -n 256 leave the admin socket working", async (t) => {
  const m = await MasterProcess.start(t, { master: "handshake_timeout = 60s" });
  // The limit the review ran the attack under, set on the running master.
  execFileSync("prlimit", [`--pid=${m.pid}`, "--nofile=256:256"]);
  const sockets: net.Socket[] = [];
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  // From 20 addresses, 15 each: under the per-address cap, over the total.
  for (let a = 1; a <= 20; a++) {
    for (let i = 0; i < 15; i++) {
      const s = await connect(m.port, `127.0.1.${a}`);
      s.on("error", () => undefined);
      sockets.push(s);
    }
  }
  // The master accepts in order: once a later connection has had its
  // answer (closed at once, or TLS, or an error), the 300 were dealt with.
  const probe = tls.connect({ port: m.port, host: "127.0.0.1", rejectUnauthorized: false });
  probe.on("error", () => undefined);
  t.teardown(() => probe.destroy());
  await within(
    new Promise<void>((resolve) => {
      probe.once("secureConnect", resolve);
      probe.once("close", () => resolve());
    }),
    "the master's answer to one more connection",
  );
  const status = await within(m.abs(["status"]), "abs status", 20_000);
  t.equal(status.status, 0, status.stderr);
  t.match(status.stdout, /TEST\.ABS/);
  await m.waitForOutput(/over the handshake limits: \d+ over max_handshakes = 128/);
});

t.test("connections from a blocked address leave a summary line in the master's log", async (t) => {
  const m = await MasterProcess.start(t);
  const realmKey = await loadRealmKey(m.keyFile);
  // Ten wrong MACs from 127.0.0.2 within the minute (another realm key): blocked.
  const wrong = {
    host: "127.0.0.1",
    port: m.port,
    localAddress: "127.0.0.2",
    name: "intruder",
    auth: { mode: "realm-key" as const, realmKey: Buffer.alloc(32, 7) },
  };
  for (let i = 0; i < 10; i++) {
    t.equal((await rejection(connectToMaster(wrong))).code, "AUTH_FAILED", `failure ${i + 1}`);
  }
  await m.waitForOutput(/slave link: 127\.0\.0\.2 failed to authenticate 10 times/);
  // Its further connections, even with the right key, are refused at once.
  for (let i = 0; i < 4; i++) {
    const refused = await rejection(
      connectToMaster({ ...wrong, auth: { mode: "realm-key", realmKey } }),
    );
    t.equal(refused.code, "AUTH_RATE_LIMITED");
  }
  t.notMatch(
    m.log,
    /refused \d+ new connections? from 127\.0\.0\.2/,
    "no line yet: the period runs",
  );
  // A stopping master logs what it counted; its period is a minute.
  t.equal((await m.stop()).code, 0);
  t.match(
    m.log,
    /warn slave link: refused 4 new connections from 127\.0\.0\.2 between \S+Z and \S+Z while it was blocked \(10 failed authentications within 60 s; blocked until \S+Z\) peer=127\.0\.0\.2/,
  );
});
