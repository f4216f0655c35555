// The slave link over real TLS sockets on 127.0.0.1 (port 0, temp dirs), in
// realm-key mode: success both ways, wrong keys, a relay, replayed and
// out-of-order messages, stalling peers, rate limiting, bad frames, and
// the slave's certificate checks (pin, CA). Kerberos over the link is in
// link-kerberos.test.ts.

import { randomBytes } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import t, { type Test } from "tap";
import type { MasterSideConnection, SlaveSideConnection } from "../../src/auth/link-connection.js";
import { connectToMaster, type ConnectOptions } from "../../src/auth/link-client.js";
import {
  MASTER_LABEL,
  SLAVE_LABEL,
  realmKeyFromBytes,
  realmKeyMac,
  type MacKey,
} from "../../src/auth/realm-key.js";
import { deriveSlaveKey, formatSlaveKey } from "../../src/auth/slave-key.js";
import { SLAVE_PROTOCOL_VERSION } from "../../src/protocol/slave-messages.js";
import { loadOrCreateMasterTls } from "../../src/auth/tls.js";
import { AbsError } from "../../src/errors.js";
import {
  RawClient,
  nextEvent,
  rejection,
  startMaster,
  startRelay,
  within,
  type TestMaster,
} from "../fixtures/link-harness.js";
import { tempDir } from "../helpers/tmp.js";
import { generate } from "selfsigned";
import { writeFile } from "node:fs/promises";
import path from "node:path";

function slaveOptions(master: TestMaster, overrides: Partial<ConnectOptions> = {}): ConnectOptions {
  return {
    host: "127.0.0.1",
    port: master.port,
    name: "slave1",
    auth: { mode: "realm-key", realmKey: master.key },
    tls: { pin: master.tls.fingerprint },
    ...overrides,
  };
}

/** Connects a slave and waits for both ends: the slave's connection and the master's. */
async function connectBoth(
  master: TestMaster,
  overrides: Partial<ConnectOptions> = {},
): Promise<{ slave: SlaveSideConnection; onMaster: MasterSideConnection }> {
  const options = slaveOptions(master, overrides);
  // Several slaves may connect at once: wait for this one's connection.
  const accepted = within(
    new Promise<MasterSideConnection>((resolve) => {
      const listener = (conn: MasterSideConnection): void => {
        if (conn.name !== options.name) return;
        master.server.off("connection", listener);
        resolve(conn);
      };
      master.server.on("connection", listener);
    }),
    `the master's connection of ${options.name}`,
  );
  const slave = await within(connectToMaster(options), "connectToMaster");
  return { slave, onMaster: await accepted };
}

/** The single warn/error line the master logged about a refusal. */
function refusalLines(master: TestMaster): string[] {
  return master.logger.messages().filter((m) => m.startsWith("slave link: refused"));
}

/** A heartbeat each way over an authenticated pair: proof the connection still works. */
async function roundTrip(
  slave: SlaveSideConnection,
  onMaster: MasterSideConnection,
): Promise<void> {
  const atMaster = new Promise((resolve) => onMaster.onMessage(resolve));
  slave.send({ type: "heartbeat", time: 1 });
  await within(atMaster, "the slave's heartbeat at the master");
  const atSlave = new Promise((resolve) => slave.onMessage(resolve));
  onMaster.send({ type: "heartbeat", time: 2 });
  await within(atSlave, "the master's heartbeat at the slave");
}

/** Runs the realm-key exchange by hand on a raw client up to the master's auth-ok. */
async function rawAuthenticate(client: RawClient, master: TestMaster, name = "raw"): Promise<void> {
  client.send({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name, mode: "realm-key" });
  const challenge = await client.next("auth-challenge");
  const masterNonce = Buffer.from(challenge.nonce as string, "base64");
  const slaveNonce = randomBytes(32);
  const input = { masterNonce, slaveNonce, name, ekm: client.ekm };
  client.send({
    type: "auth-response",
    nonce: slaveNonce.toString("base64"),
    mac: realmKeyMac(deriveSlaveKey(master.key, name), SLAVE_LABEL, input).toString("base64"),
  });
  const proof = await client.next("auth-proof");
  t.equal(
    proof.mac,
    realmKeyMac(deriveSlaveKey(master.key, name), MASTER_LABEL, input).toString("base64"),
  );
  t.match(await client.next("auth-ok"), { type: "auth-ok", identity: name });
}

t.test("realm key: slave and master authenticate each other", async (t) => {
  const master = await startMaster(t);
  const { slave, onMaster } = await connectBoth(master);
  t.same(
    { mode: slave.mode, name: slave.name, identity: slave.identity, master: slave.master },
    { mode: "realm-key", name: "slave1", identity: "slave1", master: "master.test" },
  );
  t.same(
    { mode: onMaster.mode, name: onMaster.name, identity: onMaster.identity },
    { mode: "realm-key", name: "slave1", identity: "slave1" },
  );
  t.match(onMaster.peer, /^127\.0\.0\.1:\d+$/);
  t.equal(slave.peer, `127.0.0.1:${master.port}`);
  await roundTrip(slave, onMaster);
  t.match(master.logger.messages("info"), [
    /^slave link: slave1 authenticated from 127\.0\.0\.1:\d+ \(realm-key, name slave1\)$/,
  ]);

  const closedAtMaster = new Promise<AbsError | null>((resolve) => onMaster.onClose(resolve));
  slave.close();
  t.equal(await within(closedAtMaster, "the close at the master"), null, "an orderly close");
  t.equal(slave.send({ type: "heartbeat", time: 3 }), false, "send after close is dropped");
});

t.test(
  "a slave's own key from its key file; the realm key and another's key are refused",
  async (t) => {
    const master = await startMaster(t);
    const dir = tempDir(t);
    const keyFile = path.join(dir, "slave1.key");
    await writeFile(keyFile, formatSlaveKey(deriveSlaveKey(master.key, "slave1")), { mode: 0o600 });
    const { slave } = await connectBoth(master, { auth: { mode: "realm-key", keyFile } });
    t.equal(slave.identity, "slave1");
    slave.close();

    const realmKeyFile = path.join(dir, "realm.key");
    await writeFile(realmKeyFile, `abs-realm-key 1 ${master.key.bytes.toString("base64")}\n`, {
      mode: 0o600,
    });
    const holdsRealmKey = await rejection(
      connectToMaster(slaveOptions(master, { auth: { mode: "realm-key", keyFile: realmKeyFile } })),
    );
    t.equal(holdsRealmKey.code, "CONFIG");
    t.match(
      holdsRealmKey.message,
      /realm\.key holds the realm key: a slave must hold only its own key/,
    );
    t.match(holdsRealmKey.message, /abs keygen --slave slave1 slave1\.key/);

    const otherFile = path.join(dir, "slave2.key");
    await writeFile(otherFile, formatSlaveKey(deriveSlaveKey(master.key, "slave2")), {
      mode: 0o600,
    });
    const other = await rejection(
      connectToMaster(slaveOptions(master, { auth: { mode: "realm-key", keyFile: otherFile } })),
    );
    t.equal(other.code, "CONFIG");
    t.match(
      other.message,
      /slave2\.key is the key of slave "slave2", but this slave is named "slave1"/,
    );

    await writeFile(path.join(dir, "open.key"), "x", { mode: 0o644 });
    const err = await rejection(
      connectToMaster(
        slaveOptions(master, { auth: { mode: "realm-key", keyFile: path.join(dir, "open.key") } }),
      ),
    );
    t.equal(err.code, "CONFIG");
    t.match(err.message, /chmod 600 .*open\.key/);
  },
);

t.test("wrong realm key: both sides get clear errors, the master one log line", async (t) => {
  const master = await startMaster(t);
  const refused = nextEvent<{ identity: string }>(master.server, "refused");
  const err = await rejection(
    connectToMaster(
      slaveOptions(master, {
        name: "intruder",
        auth: { mode: "realm-key", realmKey: randomBytes(32) },
      }),
    ),
  );
  t.equal(err.code, "AUTH_FAILED");
  t.match(
    err.message,
    /^master refused authentication: wrong key: the MAC of slave "intruder" does not verify/,
  );
  t.equal((await refused).identity, "intruder");
  const lines = refusalLines(master);
  t.equal(lines.length, 1, "one line");
  t.match(
    lines[0],
    /^slave link: refused 127\.0\.0\.1:\d+ \(identity intruder\): wrong key: the MAC of slave "intruder" does not verify/,
  );
  t.match(master.logger.lines.find((l) => l.message === lines[0])?.meta, {
    slave: "intruder",
    code: "AUTH_FAILED",
  });
});

/**
 * A rogue master that accepts slave1 without checking its MAC and proves
 * itself with `fakeKey`: the slave, holding the key of slave1 made from
 * `realm`, must refuse it.
 */
async function rogueMasterIsRefused(t: Test, realm: Buffer, fakeKey: MacKey): Promise<void> {
  // The master's MAC check comes first, so to reach the slave's check the
  // master must accept the slave: a fake master that skips its check and
  // answers with a proof made with another key.
  const dir = tempDir(t);
  const material = await loadOrCreateMasterTls({ stateDir: dir, hostName: "127.0.0.1" });
  const slaveKey = realm;
  const gotError = new Promise<Record<string, unknown>>((resolveError) => {
    const server = tls.createServer({ cert: material.cert, key: material.key }, (socket) => {
      const ekm = socket.exportKeyingMaterial(32, "EXPORTER-abs-realm-key-v1", Buffer.alloc(0));
      const masterNonce = randomBytes(32);
      const decoder = new (class {
        buf = "";
      })();
      socket.on("data", (chunk: Buffer) => {
        decoder.buf += chunk.toString();
        const frames = decoder.buf.split("\u0003");
        decoder.buf = frames.pop() ?? "";
        for (const text of frames) {
          const message = JSON.parse(text) as Record<string, string>;
          if (message.type === "hello") {
            socket.write(
              `${JSON.stringify({ type: "auth-challenge", nonce: masterNonce.toString("base64") })}\u0003`,
            );
          } else if (message.type === "auth-response") {
            const input = {
              masterNonce,
              slaveNonce: Buffer.from(message.nonce, "base64"),
              name: "slave1",
              ekm,
            };
            const mac = realmKeyMac(fakeKey, MASTER_LABEL, input).toString("base64");
            socket.write(`${JSON.stringify({ type: "auth-proof", mac })}\u0003`);
            socket.write(
              `${JSON.stringify({ type: "auth-ok", master: "fake", identity: "slave1" })}\u0003`,
            );
          } else if (message.type === "error") {
            resolveError(message);
          }
        }
      });
    });
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
      void rejection(
        connectToMaster({
          host: "127.0.0.1",
          port,
          name: "slave1",
          auth: { mode: "realm-key", realmKey: slaveKey },
          tls: { pin: material.fingerprint },
        }),
      ).then((err) => {
        t.equal(err.code, "AUTH_FAILED");
        t.match(
          err.message,
          /^master failed to prove the key of this slave: possible relay or wrong key/,
        );
      });
    });
  });
  const told = await within(gotError, "the slave's error message to the fake master");
  t.match(told, {
    type: "error",
    code: "AUTH_FAILED",
    message: /master failed to prove the key of this slave/,
  });
}

t.test("a master with the wrong key fails to prove it to the slave", async (t) => {
  await rogueMasterIsRefused(t, randomBytes(32), { bytes: randomBytes(32) });
});

t.test("a host holding one slave's key cannot pose as the master to another slave", async (t) => {
  // The attack of issue 19: slave2's host, holding slave2's key, acts as the
  // master towards slave1. With one realm key on every slave this worked.
  const realm = randomBytes(32);
  const slave2 = deriveSlaveKey(realmKeyFromBytes(realm), "slave2");
  await rogueMasterIsRefused(t, realm, slave2);
  // Nor does the realm key's bytes used as slave2's key (a slave that still holds it).
  await rogueMasterIsRefused(t, realm, { bytes: realm });
});

t.test("a slave cannot register under another slave's name", async (t) => {
  // thief holds its own key and claims victim's name, with its key relabelled.
  const master = await startMaster(t);
  const thief = deriveSlaveKey(master.key, "thief");
  const err = await rejection(
    connectToMaster(
      slaveOptions(master, {
        name: "victim",
        auth: { mode: "realm-key", key: { ...thief, name: "victim" } },
      }),
    ),
  );
  t.equal(err.code, "AUTH_FAILED");
  t.match(
    err.message,
    /^master refused authentication: wrong key: the MAC of slave "victim" does not verify/,
  );
  // And with its own key under its own name it is let in: the refusal was the name.
  const { slave } = await connectBoth(master, {
    name: "thief",
    auth: { mode: "realm-key", key: thief },
  });
  t.equal(slave.identity, "thief");
  slave.close();
});

t.test(
  "a relay that terminates TLS on both sides cannot complete realm-key authentication",
  async (t) => {
    const master = await startMaster(t);
    const relay = await startRelay(t, master.port);
    // Without a pin (allowed in realm-key mode) the slave talks to the relay;
    // the channel binding is what stops it.
    const err = await rejection(
      connectToMaster({
        host: "127.0.0.1",
        port: relay.port,
        name: "slave1",
        auth: { mode: "realm-key", realmKey: master.key },
      }),
    );
    t.equal(err.code, "AUTH_FAILED");
    t.match(
      err.message,
      /^master refused authentication: wrong key: the MAC of slave "slave1" does not verify .*relay/,
    );
    t.match(refusalLines(master), [
      /refused 127\.0\.0\.1:\d+ \(identity slave1\): wrong key: the MAC/,
    ]);

    // With the pin, the slave refuses the relay's certificate before anything is sent.
    const pinned = await rejection(
      connectToMaster({
        host: "127.0.0.1",
        port: relay.port,
        name: "slave1",
        auth: { mode: "realm-key", realmKey: master.key },
        tls: { pin: master.tls.fingerprint },
      }),
    );
    t.equal(pinned.code, "TLS");
    t.equal(
      pinned.message,
      `the TLS certificate of 127.0.0.1:${relay.port} has fingerprint ${relay.fingerprint}, not the pinned master fingerprint ${master.tls.fingerprint}: another host (or a relay) answered, or the master's certificate changed (check with \`abs fingerprint\` on the master)`,
    );
  },
);

t.test("the slave checks the master's certificate against a CA file", async (t) => {
  const dir = tempDir(t);
  const day = 24 * 60 * 60 * 1000;
  const ca = await generate([{ name: "commonName", value: "ABS test CA" }], {
    keyType: "ec",
    algorithm: "sha256",
    notBeforeDate: new Date(Date.now() - day),
    notAfterDate: new Date(Date.now() + 30 * day),
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const leaf = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    algorithm: "sha256",
    notBeforeDate: new Date(Date.now() - day),
    notAfterDate: new Date(Date.now() + 30 * day),
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
        ],
      },
    ],
  });
  const caFile = path.join(dir, "ca.pem");
  await writeFile(caFile, ca.cert);
  const master = await startMaster(t, { tls: { cert: leaf.cert, key: leaf.private } });

  for (const host of ["localhost", "127.0.0.1"]) {
    const { slave } = await connectBoth(master, { host, tls: { ca: caFile } });
    t.equal(slave.identity, "slave1", `verified through the CA as ${host}`);
    slave.close();
  }

  // Another CA: the chain does not verify.
  const otherCaFile = path.join(dir, "other-ca.pem");
  const other = await loadOrCreateMasterTls({ stateDir: path.join(dir, "other"), hostName: "x" });
  await writeFile(otherCaFile, other.cert);
  const err = await rejection(connectToMaster(slaveOptions(master, { tls: { ca: otherCaFile } })));
  t.equal(err.code, "TLS");
  t.match(
    err.message,
    /^TLS connection to the master at 127\.0\.0\.1:\d+ failed: .*\(CA file .*other-ca\.pem\)$/,
  );
});

t.test("replayed and out-of-order messages fail the handshake", async (t) => {
  const master = await startMaster(t);

  t.test("an auth-response replayed on a new connection", async (t) => {
    const first = await RawClient.connect(master.port);
    first.send({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name: "raw", mode: "realm-key" });
    const challenge = await first.next("auth-challenge");
    const slaveNonce = randomBytes(32);
    const response = {
      type: "auth-response",
      nonce: slaveNonce.toString("base64"),
      mac: realmKeyMac(deriveSlaveKey(master.key, "raw"), SLAVE_LABEL, {
        masterNonce: Buffer.from(challenge.nonce as string, "base64"),
        slaveNonce,
        name: "raw",
        ekm: first.ekm,
      }).toString("base64"),
    };
    first.send(response);
    t.match(await first.next(), { type: "auth-proof" });
    first.destroy();

    const second = await RawClient.connect(master.port);
    second.send({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name: "raw", mode: "realm-key" });
    await second.next("auth-challenge");
    second.send(response);
    t.match(await second.next(), {
      type: "error",
      code: "AUTH_FAILED",
      message: /wrong key: the MAC/,
    });
    await second.waitClosed();
  });

  const cases: Array<[string, (c: RawClient) => void | Promise<void>, RegExp]> = [
    [
      "a register before authentication",
      (c) => c.send({ type: "register", name: "raw", maxJobs: 1, running: [], results: [] }),
      /^unexpected register message while the master was waiting for hello: messages out of order or replayed$/,
    ],
    [
      "a heartbeat after hello",
      async (c) => {
        c.send({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name: "raw", mode: "realm-key" });
        await c.next("auth-challenge");
        c.send({ type: "heartbeat", time: 1 });
      },
      /^unexpected heartbeat message while the master was waiting for auth-response/,
    ],
    [
      "a second hello",
      async (c) => {
        c.send({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name: "raw", mode: "realm-key" });
        await c.next("auth-challenge");
        c.send({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name: "raw", mode: "realm-key" });
      },
      /^unexpected hello message while the master was waiting for auth-response/,
    ],
    [
      "an auth-token in realm-key mode",
      async (c) => {
        c.send({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name: "raw", mode: "realm-key" });
        await c.next("auth-challenge");
        c.send({ type: "auth-token", token: "AAAA" });
      },
      /^unexpected auth-token message while the master was waiting for auth-response/,
    ],
    [
      "a Kerberos hello to a realm-key master",
      (c) =>
        c.send({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name: "raw", mode: "kerberos" }),
      /^this master does not accept Kerberos authentication/,
    ],
    [
      "another protocol version",
      (c) =>
        c.send({
          type: "hello",
          version: SLAVE_PROTOCOL_VERSION + 1,
          name: "raw",
          mode: "realm-key",
        }),
      /^slave protocol version 3 is not spoken by this master \(it speaks 2\)/,
    ],
    [
      "a message of the wrong shape",
      (c) => c.send({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name: 7, mode: "realm-key" }),
      /^hello\.name: expected a string, got 7$/,
    ],
    [
      "a nonce of the wrong size",
      async (c) => {
        c.send({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name: "raw", mode: "realm-key" });
        await c.next("auth-challenge");
        c.send({ type: "auth-response", nonce: "AAAA", mac: "AAAA" });
      },
      /^auth-response\.nonce: expected 32 bytes, got 3$/,
    ],
  ];
  for (const [name, act, reason] of cases) {
    t.test(name, async (t) => {
      const before = refusalLines(master).length;
      const client = await RawClient.connect(master.port);
      await act(client);
      const error = await client.next("the master's error");
      t.match(error, { type: "error", message: reason });
      await client.waitClosed();
      const lines = refusalLines(master).slice(before);
      t.equal(lines.length, 1, "one log line");
      t.match(lines[0], /^slave link: refused 127\.0\.0\.1:\d+ \(identity (raw|\(none\))\): /);
    });
  }

  t.test("a replayed auth-response after authentication", async (t) => {
    const client = await RawClient.connect(master.port);
    const accepted = nextEvent<MasterSideConnection>(master.server, "connection");
    await rawAuthenticate(client, master);
    const conn = await accepted;
    const closed = new Promise<AbsError | null>((resolve) => conn.onClose(resolve));
    client.send({ type: "auth-response", nonce: randomBytes(32).toString("base64"), mac: "AAAA" });
    t.match(await client.next(), {
      type: "error",
      code: "PROTOCOL",
      message:
        "unexpected auth-response message after authentication had completed: messages out of order or replayed",
    });
    await client.waitClosed();
    t.match(await within(closed, "onClose"), { code: "PROTOCOL" });
  });

  t.test("a message only a master sends, after authentication", async (t) => {
    const client = await RawClient.connect(master.port);
    const accepted = nextEvent<MasterSideConnection>(master.server, "connection");
    await rawAuthenticate(client, master);
    await accepted;
    client.send({ type: "ack", jobId: 1, attempt: 1 });
    t.match(await client.next(), {
      type: "error",
      code: "PROTOCOL",
      message: "a slave never sends a ack message",
    });
    await client.waitClosed();
  });

  t.test("an error message from the slave ends its handshake", async (t) => {
    const client = await RawClient.connect(master.port);
    const refused = nextEvent<{ error: AbsError }>(master.server, "refused");
    client.send({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name: "raw", mode: "realm-key" });
    await client.next("auth-challenge");
    client.send({ type: "error", code: "AUTH_FAILED", message: "giving up" });
    t.match((await refused).error.message, "the slave gave up: giving up (AUTH_FAILED)");
    await client.waitClosed();
  });
});

t.test("handshake timeout", (t) => {
  t.test("the master closes a slave that stalls mid-handshake", async (t) => {
    const master = await startMaster(t, { handshakeTimeoutMs: 300 });
    const client = await RawClient.connect(master.port);
    client.send({
      type: "hello",
      version: SLAVE_PROTOCOL_VERSION,
      name: "staller",
      mode: "realm-key",
    });
    await client.next("auth-challenge");
    t.match(await client.next("the timeout"), {
      type: "error",
      code: "AUTH_TIMEOUT",
      message:
        "authentication did not complete within 300 ms (the master was waiting for auth-response)",
    });
    await client.waitClosed();
    t.match(refusalLines(master), [
      /^slave link: refused 127\.0\.0\.1:\d+ \(identity staller\): authentication did not complete within 300 ms/,
    ]);
  });

  t.test("a slave gives up on a master that never answers", async (t) => {
    const dir = tempDir(t);
    const material = await loadOrCreateMasterTls({ stateDir: dir, hostName: "127.0.0.1" });
    const sockets = new Set<tls.TLSSocket>();
    const server = tls.createServer({ cert: material.cert, key: material.key }, (s) => {
      sockets.add(s);
      s.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    t.teardown(() => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const err = await rejection(
      connectToMaster({
        host: "127.0.0.1",
        port: (server.address() as { port: number }).port,
        name: "slave1",
        auth: { mode: "realm-key", realmKey: randomBytes(32) },
        handshakeTimeoutMs: 300,
      }),
    );
    t.equal(err.code, "AUTH_TIMEOUT");
    t.match(
      err.message,
      /did not complete within 300 ms \(the slave was waiting for auth-challenge\)/,
    );
  });
  t.end();
});

t.test("rate limiting of failed attempts per address", async (t) => {
  const master = await startMaster(t, {
    rateLimit: { maxFailures: 3, windowMs: 60_000, cooldownMs: 60_000 },
  });
  const badKey = { mode: "realm-key" as const, realmKey: randomBytes(32) };
  // An authenticated connection from the address that will be blocked.
  const early = await connectBoth(master, { localAddress: "127.0.0.2", name: "early" });

  for (let i = 0; i < 3; i++) {
    const err = await rejection(
      connectToMaster(
        slaveOptions(master, { localAddress: "127.0.0.2", name: "bad", auth: badKey }),
      ),
    );
    t.equal(err.code, "AUTH_FAILED", `failure ${i + 1}`);
  }
  t.match(
    master.logger.messages("warn").at(-1),
    /^slave link: 127\.0\.0\.2 failed to authenticate 3 times/,
  );

  // Now even the right key is refused from that address, at once.
  const refused = await rejection(
    connectToMaster(slaveOptions(master, { localAddress: "127.0.0.2", name: "good-but-blocked" })),
  );
  t.equal(refused.code, "AUTH_RATE_LIMITED");
  t.match(
    refused.message,
    /^master refused authentication: too many failed authentication attempts from 127\.0\.0\.2; new connections are refused for \d+ more seconds$/,
  );

  // Another address is not disturbed, nor is the connection already open.
  const other = await connectBoth(master, { localAddress: "127.0.0.1", name: "other" });
  t.equal(other.slave.identity, "other");
  await roundTrip(early.slave, early.onMaster);
  await roundTrip(other.slave, other.onMaster);
  t.equal(master.server.openConnections, 2);
});

t.test("connections refused from a blocked address are summed up in the log", async (t) => {
  const master = await startMaster(t, {
    rateLimit: { maxFailures: 3, windowMs: 60_000, cooldownMs: 60_000 },
    // Longer than the test: the line below comes from close().
    blockedSummaryMs: 3_600_000,
  });
  const badKey = { mode: "realm-key" as const, realmKey: randomBytes(32) };
  const from = (localAddress: string): ConnectOptions =>
    slaveOptions(master, { localAddress, name: "bad", auth: badKey });
  for (let i = 0; i < 3; i++) await rejection(connectToMaster(from("127.0.0.2")));
  for (let i = 0; i < 3; i++) await rejection(connectToMaster(from("127.0.0.3")));
  for (let i = 0; i < 5; i++) {
    t.equal((await rejection(connectToMaster(from("127.0.0.2")))).code, "AUTH_RATE_LIMITED");
  }
  t.equal((await rejection(connectToMaster(from("127.0.0.3")))).code, "AUTH_RATE_LIMITED");
  t.equal(master.server.blockedRefusals.size, 2, "two addresses counted");
  const before = master.logger.messages("warn").filter((m) => /while it was blocked/.test(m));
  t.same(before, [], "nothing logged before the period ends");

  await master.server.close();
  const lines = master.logger.messages("warn").filter((m) => /while it was blocked/.test(m));
  const time = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ";
  t.equal(lines.length, 2, "one line per address");
  t.match(
    lines[0],
    new RegExp(
      `^slave link: refused 5 new connections from 127\\.0\\.0\\.2 between ${time} and ${time} while it was blocked \\(3 failed authentications within 60 s; blocked until ${time}\\)$`,
    ),
  );
  t.match(lines[1], /^slave link: refused 1 new connection from 127\.0\.0\.3 between /);
  t.equal(master.server.blockedRefusals.size, 0, "the counts are gone once logged");
});

t.test("the summary of a blocked address comes at the end of its period", async (t) => {
  const master = await startMaster(t, {
    rateLimit: { maxFailures: 2, windowMs: 60_000, cooldownMs: 60_000 },
    blockedSummaryMs: 200,
  });
  const badKey = { mode: "realm-key" as const, realmKey: randomBytes(32) };
  const bad = slaveOptions(master, { localAddress: "127.0.0.2", name: "bad", auth: badKey });
  for (let i = 0; i < 2; i++) await rejection(connectToMaster(bad));
  const summary = master.logger.next(/while it was blocked/);
  t.equal((await rejection(connectToMaster(bad))).code, "AUTH_RATE_LIMITED");
  t.match(
    await within(summary, "the summary line"),
    /^slave link: refused 1 new connection from 127\.0\.0\.2 between .* while it was blocked \(2 failed authentications within 60 s; blocked until /,
  );
});

t.test("a good slave authenticates while a bad one keeps failing", async (t) => {
  const master = await startMaster(t, {
    rateLimit: { maxFailures: 5, windowMs: 60_000, cooldownMs: 60_000 },
  });
  const bad = (async () => {
    const codes: string[] = [];
    for (let i = 0; i < 8; i++) {
      const err = await rejection(
        connectToMaster(
          slaveOptions(master, {
            localAddress: "127.0.0.2",
            name: "bad",
            auth: { mode: "realm-key", realmKey: randomBytes(32) },
          }),
        ),
      );
      codes.push(err.code);
    }
    return codes;
  })();
  const good = Promise.all(
    [1, 2, 3, 4].map((i) => connectBoth(master, { name: `good${i}`, localAddress: "127.0.0.1" })),
  );
  const [codes, pairs] = await Promise.all([bad, good]);
  t.same(codes, [
    ...Array<string>(5).fill("AUTH_FAILED"),
    ...Array<string>(3).fill("AUTH_RATE_LIMITED"),
  ]);
  for (const { slave, onMaster } of pairs) await roundTrip(slave, onMaster);
});

t.test("bad frames close that connection only", async (t) => {
  const master = await startMaster(t, { maxFrameBytes: 1024 });
  const { slave, onMaster } = await connectBoth(master);

  t.test("garbage bytes before authentication", async (t) => {
    const client = await RawClient.connect(master.port);
    client.write(Buffer.concat([randomBytes(64).map((b) => (b === 3 ? 4 : b)), Buffer.from([3])]));
    t.match(await client.next(), { type: "error", code: "PROTOCOL" });
    await client.waitClosed();
  });

  t.test("an oversize frame before authentication", async (t) => {
    const client = await RawClient.connect(master.port);
    client.write(Buffer.alloc(2048, 0x20));
    t.match(await client.next(), {
      type: "error",
      code: "FRAME_TOO_LARGE",
      message: "frame exceeds the limit of 1024 bytes",
    });
    await client.waitClosed();
    t.match(
      refusalLines(master).at(-1),
      /\(identity \(none\)\): frame exceeds the limit of 1024 bytes$/,
    );
  });

  t.test("garbage after authentication", async (t) => {
    const client = await RawClient.connect(master.port);
    const accepted = nextEvent<MasterSideConnection>(master.server, "connection");
    await rawAuthenticate(client, master);
    const conn = await accepted;
    const closed = new Promise<AbsError | null>((resolve) => conn.onClose(resolve));
    client.write("{not json\u0003");
    t.match(await client.next(), {
      type: "error",
      code: "PROTOCOL",
      message: /^frame is not valid JSON/,
    });
    await client.waitClosed();
    t.match(await within(closed, "onClose"), { code: "PROTOCOL" });
    t.match(
      master.logger.messages("warn").at(-1),
      /^slave link: closed the connection of raw from 127\.0\.0\.1:\d+: frame is not valid JSON/,
    );
  });

  t.test("the other connection is undisturbed", async (t) => {
    await roundTrip(slave, onMaster);
    t.equal(slave.state, "open");
  });
});

t.test("close() stops listening and ends connections", async (t) => {
  const master = await startMaster(t);
  const { slave } = await connectBoth(master);
  const closed = new Promise<AbsError | null>((resolve) => slave.onClose(resolve));
  const pending = await RawClient.connect(master.port);
  await master.server.close();
  t.equal(master.server.state, "closed");
  t.equal(await within(closed, "the slave's close"), null);
  await pending.waitClosed();
  const err = await rejection(connectToMaster(slaveOptions(master)));
  t.equal(err.code, "UNREACHABLE");
  t.match(err.message, /^cannot connect to the master at 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
});

t.test("only a refused proof counts towards the rate limit", async (t) => {
  const master = await startMaster(t, {
    handshakeTimeoutMs: 300,
    rateLimit: { maxFailures: 2, windowMs: 60_000, cooldownMs: 60_000 },
  });
  const from = "127.0.0.2";
  // Three of each kind of failure that proves nothing, from one address.
  for (let i = 0; i < 3; i++) {
    // A slave that gives up by itself (its KDC did not answer, say).
    const quitter = await RawClient.connect(master.port, from);
    quitter.send({ type: "hello", version: 1, name: "quitter", mode: "realm-key" });
    await quitter.next("auth-challenge");
    quitter.send({ type: "error", code: "KDC_UNREACHABLE", message: "no KDC answered" });
    await quitter.waitClosed();
    // A silent one, after TLS, closed at the timeout.
    const silent = await RawClient.connect(master.port, from);
    t.match(await silent.next("the timeout"), { type: "error", code: "AUTH_TIMEOUT" });
    await silent.waitClosed();
    // Garbage.
    const garbage = await RawClient.connect(master.port, from);
    garbage.write("{not json\u0003");
    t.match(await garbage.next(), { type: "error", code: "PROTOCOL" });
    await garbage.waitClosed();
  }
  t.equal(master.server.limiter.blockedFor(from), 0, "nine failures, no block");
  const good = await connectBoth(master, { localAddress: from, name: "good" });
  t.equal(good.onMaster.identity, "good");

  // Two wrong keys do block the address.
  for (let i = 0; i < 2; i++) {
    const err = await rejection(
      connectToMaster(
        slaveOptions(master, {
          localAddress: from,
          name: "guesser",
          auth: { mode: "realm-key", realmKey: randomBytes(32) },
        }),
      ),
    );
    t.equal(err.code, "AUTH_FAILED");
  }
  t.ok(master.server.limiter.blockedFor(from) > 0, "two wrong MACs block it");
});

t.test("a TLS handshake that trickles is cut at the deadline from the accept", async (t) => {
  const master = await startMaster(t, { handshakeTimeoutMs: 300 });
  const refused = nextEvent<{ error: AbsError }>(master.server, "refused");
  const socket = net.connect({ port: master.port, host: "127.0.0.1" });
  socket.on("error", () => undefined);
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  // One byte of a ClientHello every 50 ms: never idle for 300 ms.
  const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, ...randomBytes(200)]);
  let sent = 0;
  const trickle = setInterval(() => {
    if (sent < hello.length && !socket.destroyed) socket.write(hello.subarray(sent, ++sent));
  }, 50);
  t.teardown(() => {
    clearInterval(trickle);
    socket.destroy();
  });
  t.match((await refused).error, {
    code: "AUTH_TIMEOUT",
    message: "the TLS handshake did not complete within 300 ms of the connection",
  });
  await within(closed, "the master closing the trickling connection");
  t.ok(sent < hello.length, "closed before the ClientHello was complete");
});

t.test("the caps on connections in handshake", async (t) => {
  const master = await startMaster(t, {
    maxHandshakes: 3,
    maxHandshakesPerAddress: 2,
    shedSummaryMs: 200,
    handshakeTimeoutMs: 1_000,
  });
  const open = (localAddress: string): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const s = net.connect({ port: master.port, host: "127.0.0.1", localAddress });
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
  const held: net.Socket[] = [];
  t.teardown(() => held.forEach((s) => s.destroy()));
  const shedNow = async (localAddress: string): Promise<{ cap: string; closed: Promise<void> }> => {
    const shed = nextEvent<{ cap: string }>(master.server, "shed");
    const s = await open(localAddress);
    s.on("error", () => undefined);
    const closed = new Promise<void>((resolve) => s.once("close", () => resolve()));
    return { cap: (await shed).cap, closed };
  };
  const hold = async (localAddress: string): Promise<void> => {
    const s = await open(localAddress);
    held.push(s);
  };
  await hold("127.0.0.2");
  await hold("127.0.0.2");
  const perAddress = await shedNow("127.0.0.2");
  t.equal(perAddress.cap, "address");
  await within(perAddress.closed, "the third from 127.0.0.2 closed at once");
  await hold("127.0.0.3");
  const total = await shedNow("127.0.0.4");
  t.equal(total.cap, "total");
  await within(total.closed, "the fourth in all closed at once");
  t.equal(master.server.limits.inHandshake, 3);
  // The first shed is logged at once; the second goes into a summary.
  const lines = (): string[] =>
    master.logger.messages("warn").filter((l) => l.startsWith("slave link: closed"));
  t.match(lines(), [
    /^slave link: closed a new connection from 127\.0\.0\.2:\d+ at once: 2 connections from 127\.0\.0\.2 are in handshake \(max_handshakes_per_address = 2\); further ones are counted and logged every 0\.2 s$/,
  ]);
  const summary = await within(
    master.logger.next(/^slave link: closed 1 more/),
    "the summary line",
  );
  t.match(
    summary,
    /^slave link: closed 1 more new connections at once in the last 0\.2 s, over the handshake limits: 1 over max_handshakes = 3; from 127\.0\.0\.4 1$/,
  );
  t.equal(lines().length, 2, "two lines for two connections closed, the second a summary");
  // Once they are out of time, there is room again.
  await within(
    new Promise<void>((resolve) => {
      let n = 0;
      master.server.on("refused", () => {
        if (++n === 3) resolve();
      });
    }),
    "the three held connections timing out",
  );
  t.equal(master.server.limits.inHandshake, 0);
  const { slave } = await connectBoth(master, { localAddress: "127.0.0.2", name: "in-room" });
  t.equal(slave.identity, "in-room");
  slave.close();
});
