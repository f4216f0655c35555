// The handshake state machines without sockets: a master and a slave
// handshake wired to each other through in-memory ports, with fake
// Kerberos initiators and acceptors where GSSAPI would be.

import { randomBytes } from "node:crypto";
import t from "tap";
import type { HandshakeFailure, HandshakePort, HandshakeResult } from "../../src/auth/handshake.js";
import type { KerberosAcceptor, KerberosInitiator } from "../../src/auth/kerberos.js";
import { MasterHandshake, type MasterHandshakeOptions } from "../../src/auth/master-handshake.js";
import { realmKeyFromBytes } from "../../src/auth/realm-key.js";
import { deriveSlaveKey } from "../../src/auth/slave-key.js";
import { SlaveHandshake, type SlaveHandshakeAuth } from "../../src/auth/slave-handshake.js";
import { AuthError } from "../../src/errors.js";
import type {
  MasterToSlaveMessage,
  SlaveLinkMessage,
  SlaveToMasterMessage,
} from "../../src/protocol/slave-messages.js";
import { SLAVE_PROTOCOL_VERSION } from "../../src/protocol/slave-messages.js";

/** A port that records what the handshake did. */
class RecordingPort<Out extends SlaveLinkMessage> implements HandshakePort<Out> {
  readonly sent: Out[] = [];
  failure: HandshakeFailure | undefined;
  result: HandshakeResult | undefined;
  onSend: ((message: Out) => void) | undefined;
  send(message: Out): void {
    this.sent.push(message);
    this.onSend?.(message);
  }
  close(failure: HandshakeFailure): void {
    if (this.failure !== undefined || this.result !== undefined)
      throw new Error("port closed twice");
    this.failure = failure;
  }
  authenticated(result: HandshakeResult): void {
    if (this.failure !== undefined || this.result !== undefined) throw new Error("port used twice");
    this.result = result;
  }
  types(): string[] {
    return this.sent.map((m) => m.type);
  }
}

const KEY = realmKeyFromBytes(randomBytes(32), "test key");
/** The key of slave s1, the name every slave handshake here says hello with. */
const S1_KEY = deriveSlaveKey(KEY, "s1");

function master(overrides: Partial<MasterHandshakeOptions> = {}) {
  const port = new RecordingPort<MasterToSlaveMessage>();
  const hs = new MasterHandshake(
    {
      masterName: "m",
      peer: "192.0.2.1:1000",
      realmKey: KEY,
      binding: Buffer.alloc(32, 1),
      ...overrides,
    },
    port,
  );
  return { hs, port };
}

function slave(
  auth: SlaveHandshakeAuth = { mode: "realm-key", key: S1_KEY },
  binding = Buffer.alloc(32, 1),
) {
  const port = new RecordingPort<SlaveToMasterMessage>();
  const hs = new SlaveHandshake({ name: "s1", auth, master: "192.0.2.9:7370", binding }, port);
  return { hs, port };
}

/**
 * Connects the two machines: each message one sends is fed to the other,
 * in order, one at a time (as the links do). Resolves when both are quiet.
 */
async function run(m: ReturnType<typeof master>, s: ReturnType<typeof slave>): Promise<void> {
  const toMaster: SlaveToMasterMessage[] = [];
  const toSlave: MasterToSlaveMessage[] = [];
  s.port.onSend = (msg) => toMaster.push(msg);
  m.port.onSend = (msg) => toSlave.push(msg);
  await s.hs.start();
  while (toMaster.length > 0 || toSlave.length > 0) {
    const a = toMaster.shift();
    if (a !== undefined) await m.hs.feed(a);
    const b = toSlave.shift();
    if (b !== undefined) await s.hs.feed(b);
  }
}

function fakeInitiator(
  opts: { failFirst?: AuthError; failReply?: AuthError } = {},
): () => Promise<KerberosInitiator> {
  return () =>
    Promise.resolve({
      principal: "s1@MAIN.TEST",
      step: (token: Buffer | null) => {
        if (token === null) {
          if (opts.failFirst !== undefined) return Promise.reject(opts.failFirst);
          return Promise.resolve({ tokenOut: Buffer.from("ap-req"), done: false });
        }
        if (opts.failReply !== undefined) return Promise.reject(opts.failReply);
        if (token.toString() !== "ap-rep")
          return Promise.reject(new AuthError("AUTH_FAILED", "bad reply"));
        return Promise.resolve({ tokenOut: null, done: true, principal: "s1@MAIN.TEST" });
      },
    });
}

function fakeAcceptor(
  opts: { refuse?: AuthError; hold?: Promise<void> } = {},
): () => Promise<KerberosAcceptor> {
  return () =>
    Promise.resolve({
      step: async (token: Buffer) => {
        await opts.hold;
        if (opts.refuse !== undefined) throw opts.refuse;
        if (token.toString() !== "ap-req") throw new AuthError("AUTH_FAILED", "bad request");
        return { tokenOut: Buffer.from("ap-rep"), done: true, principal: "s1@MAIN.TEST" };
      },
    });
}

t.test("realm key: both sides authenticate", async (t) => {
  const m = master();
  const s = slave();
  await run(m, s);
  t.equal(m.hs.state, "authenticated");
  t.equal(s.hs.state, "authenticated");
  t.same(m.port.types(), ["auth-challenge", "auth-proof", "auth-ok"]);
  t.same(s.port.types(), ["hello", "auth-response"]);
  t.same(m.port.result, { mode: "realm-key", name: "s1", identity: "s1", master: "m" });
  t.same(s.port.result, { mode: "realm-key", name: "s1", identity: "s1", master: "m" });
});

t.test("realm key: a different key fails at the master, which tells the slave", async (t) => {
  const m = master();
  const s = slave({
    mode: "realm-key",
    key: deriveSlaveKey(realmKeyFromBytes(randomBytes(32)), "s1"),
  });
  await run(m, s);
  t.equal(m.hs.state, "failed");
  t.equal(m.port.failure?.blame, "proof");
  t.match(m.port.failure?.error.message, /^wrong key: the MAC of slave "s1" does not verify/);
  t.equal(s.hs.state, "failed");
  t.equal(s.port.failure?.error.code, "AUTH_FAILED");
  t.match(s.port.failure?.error.message, /^master refused authentication: wrong key: the MAC/);
  t.same(
    s.port.types(),
    ["hello", "auth-response"],
    "the slave does not answer an error with an error",
  );
});

t.test("realm key: different TLS sessions (a relay) fail", async (t) => {
  const m = master();
  const s = slave({ mode: "realm-key", key: S1_KEY }, Buffer.alloc(32, 2));
  await run(m, s);
  t.equal(m.hs.state, "failed");
  t.match(m.port.failure?.error.message, /wrong key: the MAC/);
});

t.test("realm key: a wrong master proof fails at the slave", async (t) => {
  const s = slave();
  await s.hs.start();
  await s.hs.feed({ type: "auth-challenge", nonce: randomBytes(32).toString("base64") });
  t.equal(s.hs.state, "awaiting-proof");
  await s.hs.feed({ type: "auth-proof", mac: randomBytes(32).toString("base64") });
  t.equal(s.hs.state, "failed");
  t.match(
    s.port.failure?.error.message,
    /^master failed to prove the key of this slave: possible relay or wrong key \(the master at 192\.0\.2\.9:7370 does not hold the realm key that the key of slave s1 derived from test key was made from/,
  );
  t.match(s.port.sent.at(-1), { type: "error", code: "AUTH_FAILED" }, "the master is told");
});

t.test("realm key: auth-ok naming another slave is refused", async (t) => {
  const m = master();
  const s = slave();
  const toSlave: MasterToSlaveMessage[] = [];
  m.port.onSend = (msg) => toSlave.push(msg);
  s.port.onSend = (msg) => void m.hs.feed(msg);
  await s.hs.start();
  await s.hs.feed(toSlave.shift()!); // challenge
  await s.hs.feed(toSlave.shift()!); // proof
  await s.hs.feed({ type: "auth-ok", master: "m", identity: "someone-else" });
  t.match(s.port.failure?.error.message, /authenticated this slave as someone-else, not as s1/);
});

t.test("master: out-of-order messages", async (t) => {
  const hello = {
    type: "hello",
    version: SLAVE_PROTOCOL_VERSION,
    name: "s1",
    mode: "realm-key",
  } as const;
  const response = {
    type: "auth-response",
    nonce: randomBytes(32).toString("base64"),
    mac: "AAAA",
  } as const;
  const cases: Array<[string, SlaveLinkMessage[], RegExp]> = [
    [
      "auth-response first",
      [response],
      /^unexpected auth-response message while the master was waiting for hello/,
    ],
    [
      "second hello",
      [hello, hello],
      /^unexpected hello message while the master was waiting for auth-response/,
    ],
    [
      "register before auth-ok",
      [hello, { type: "register", name: "s1", maxJobs: 1, running: [], results: [] }],
      /^unexpected register message/,
    ],
    [
      "auth-token in realm-key mode",
      [hello, { type: "auth-token", token: "AAAA" }],
      /^unexpected auth-token message/,
    ],
  ];
  for (const [name, messages, reason] of cases) {
    const m = master();
    for (const message of messages) await m.hs.feed(message);
    t.equal(m.hs.state, "failed", name);
    t.match(m.port.failure?.error.message, reason, name);
    t.match(
      m.port.sent.at(-1),
      { type: "error", code: "AUTH_FAILED" },
      `${name}: the slave is told`,
    );
  }

  const m = master();
  await m.hs.feed(hello);
  const challenge = m.port.sent[0] as { nonce: string };
  await m.hs.feed({ type: "auth-response", nonce: challenge.nonce, mac: "AAAA" });
  t.match(m.port.failure?.error.message, /the master's own nonce/, "a reflected nonce is refused");
});

t.test("master: timeout and peer close say what was awaited", async (t) => {
  const m = master();
  await m.hs.feed({
    type: "hello",
    version: SLAVE_PROTOCOL_VERSION,
    name: "s1",
    mode: "realm-key",
  });
  t.equal(m.hs.claimedIdentity, "s1");
  m.hs.timeout(500);
  t.equal(m.port.failure?.error.code, "AUTH_TIMEOUT");
  t.equal(
    m.port.failure?.error.message,
    "authentication did not complete within 500 ms (the master was waiting for auth-response)",
  );
  m.hs.peerClosed(); // no second close
  t.equal(master().hs.claimedIdentity, "(none)");

  const closed = master();
  closed.hs.peerClosed();
  t.match(
    closed.port.failure?.error.message,
    /the slave closed the connection before authentication completed \(the master was waiting for hello\)/,
  );
});

t.test("Kerberos: both sides authenticate through the tokens", async (t) => {
  const m = master({ realmKey: undefined, kerberosAcceptor: fakeAcceptor() });
  const s = slave({ mode: "kerberos", initiator: fakeInitiator() });
  await run(m, s);
  t.same(m.port.types(), ["auth-token", "auth-ok"]);
  t.same(s.port.types(), ["hello", "auth-token"]);
  t.same(m.port.result, { mode: "kerberos", name: "s1", identity: "s1@MAIN.TEST", master: "m" });
  t.same(s.port.result, { mode: "kerberos", name: "s1", identity: "s1@MAIN.TEST", master: "m" });
  t.equal(m.hs.claimedIdentity, "s1@MAIN.TEST");
});

t.test("Kerberos: the acceptor's refusal reaches the slave", async (t) => {
  const refusal = new AuthError(
    "AUTH_FAILED",
    "Kerberos: refused slave principal s1@OTHER.TEST: its realm OTHER.TEST is not the master's realm MAIN.TEST",
  );
  const m = master({ realmKey: undefined, kerberosAcceptor: fakeAcceptor({ refuse: refusal }) });
  const s = slave({ mode: "kerberos", initiator: fakeInitiator() });
  await run(m, s);
  t.equal(m.port.failure?.error, refusal);
  t.equal(m.port.failure?.blame, "proof");
  t.equal(s.port.failure?.error.message, `master refused authentication: ${refusal.message}`);
});

t.test("Kerberos: a master that cannot make its acceptor is to blame itself", async (t) => {
  const m = master({
    realmKey: undefined,
    kerberosAcceptor: () =>
      Promise.reject(
        new AuthError("AUTH_FAILED", "master keytab /etc/abs/abs.keytab does not exist"),
      ),
  });
  const s = slave({ mode: "kerberos", initiator: fakeInitiator() });
  await run(m, s);
  t.equal(m.port.failure?.blame, "local");
  t.equal(
    s.port.failure?.error.message,
    "master refused authentication: the master cannot authenticate slaves now (see the master's log)",
    "the slave does not learn the master's paths",
  );
});

t.test("Kerberos: a slave that cannot start tells the master", async (t) => {
  const m = master({ realmKey: undefined, kerberosAcceptor: fakeAcceptor() });
  const s = slave({
    mode: "kerberos",
    initiator: fakeInitiator({
      failFirst: new AuthError("KDC_UNREACHABLE", "no KDC of realm MAIN.TEST answered"),
    }),
  });
  await run(m, s);
  t.equal(s.port.failure?.error.code, "KDC_UNREACHABLE");
  t.equal(s.port.failure?.blame, "local");
  t.equal(
    m.port.failure?.error.message,
    "the slave gave up: no KDC of realm MAIN.TEST answered (KDC_UNREACHABLE)",
  );
});

t.test("Kerberos: a message while the master checks the token fails", async (t) => {
  let release: () => void = () => undefined;
  const hold = new Promise<void>((resolve) => (release = resolve));
  const m = master({ realmKey: undefined, kerberosAcceptor: fakeAcceptor({ hold }) });
  await m.hs.feed({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name: "s1", mode: "kerberos" });
  const stepping = m.hs.feed({
    type: "auth-token",
    token: Buffer.from("ap-req").toString("base64"),
  });
  await Promise.resolve();
  await m.hs.feed({ type: "auth-token", token: Buffer.from("ap-req").toString("base64") });
  t.equal(m.hs.state, "failed");
  t.match(
    m.port.failure?.error.message,
    /^unexpected auth-token message while the master was waiting for the master to check/,
  );
  release();
  await stepping;
  t.equal(m.port.result, undefined, "the step finishing later changes nothing");
  t.same(m.port.types(), ["error"]);
});

t.test("Kerberos: a realm-key-only master refuses a Kerberos hello", async (t) => {
  const m = master();
  await m.hs.feed({ type: "hello", version: SLAVE_PROTOCOL_VERSION, name: "s1", mode: "kerberos" });
  t.match(m.port.failure?.error.message, /does not accept Kerberos authentication/);
});

t.test("slave: out-of-order messages from the master", async (t) => {
  const cases: Array<[string, SlaveHandshakeAuth, MasterToSlaveMessage[], RegExp]> = [
    [
      "auth-ok before the proof",
      { mode: "realm-key", key: S1_KEY },
      [{ type: "auth-ok", master: "m", identity: "s1" }],
      /unexpected auth-ok message .* waiting for auth-challenge/,
    ],
    [
      "auth-proof in Kerberos mode",
      { mode: "kerberos", initiator: fakeInitiator() },
      [{ type: "auth-proof", mac: "AAAA" }],
      /unexpected auth-proof message .* waiting for auth-token/,
    ],
    [
      "auth-ok without the reply token",
      { mode: "kerberos", initiator: fakeInitiator() },
      [{ type: "auth-ok", master: "m", identity: "s1@MAIN.TEST" }],
      /unexpected auth-ok message/,
    ],
    [
      "a second challenge",
      { mode: "realm-key", key: S1_KEY },
      [
        { type: "auth-challenge", nonce: randomBytes(32).toString("base64") },
        { type: "auth-challenge", nonce: randomBytes(32).toString("base64") },
      ],
      /unexpected auth-challenge message .* waiting for auth-proof/,
    ],
    [
      "a dispatch before auth-ok",
      { mode: "realm-key", key: S1_KEY },
      [
        {
          type: "dispatch",
          jobId: 1,
          attempt: 1,
          definition: "d",
          method: "tar",
          params: {},
          maxRunTimeMs: null,
        },
      ],
      /unexpected dispatch message/,
    ],
  ];
  for (const [name, auth, messages, reason] of cases) {
    const s = slave(auth);
    await s.hs.start();
    for (const message of messages) await s.hs.feed(message);
    t.equal(s.hs.state, "failed", name);
    t.match(s.port.failure?.error.message, reason, name);
  }
});

t.test("slave: a refusal keeps its code; timeouts and closes say what was awaited", async (t) => {
  const limited = slave();
  await limited.hs.start();
  await limited.hs.feed({ type: "error", code: "AUTH_RATE_LIMITED", message: "too many" });
  t.equal(limited.port.failure?.error.code, "AUTH_RATE_LIMITED");
  t.equal(limited.port.failure?.error.message, "master refused authentication: too many");

  const odd = slave();
  await odd.hs.start();
  await odd.hs.feed({ type: "error", code: "PROTOCOL", message: "bad" });
  t.equal(odd.port.failure?.error.code, "AUTH_FAILED", "other codes become AUTH_FAILED");

  const slow = slave();
  await slow.hs.start();
  slow.hs.timeout(250);
  t.equal(
    slow.port.failure?.error.message,
    "authentication with the master at 192.0.2.9:7370 did not complete within 250 ms (the slave was waiting for auth-challenge)",
  );

  const dropped = slave();
  await dropped.hs.start();
  dropped.hs.peerClosed();
  t.match(
    dropped.port.failure?.error.message,
    /closed the connection during authentication \(the slave was waiting for auth-challenge\)/,
  );
  t.same(dropped.port.types(), ["hello"], "nothing is sent on a closed connection");
});
