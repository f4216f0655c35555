// The startup vote against two masters (Ganeti's voting): a master that
// lists peers asks them before it starts, refuses while another master of
// its realm answers or while fewer than half plus one peers answer, and
// starts with --no-voting only when told so explicitly.

import { spawn } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, watch } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import path from "node:path";
import t, { type Test } from "tap";
import { type PeerAnswer, decideVote } from "../../src/master/startup-vote.js";
import { kerberosTestOptions, startKdc } from "../helpers/kdc.js";
import { MASTER_BIN, MasterProcess, runNode } from "../helpers/master-process.js";
import { freeLoopbackPort } from "../../src/free-port.js";
import { loadOrCreateMasterTls } from "../../src/auth/tls.js";
import { FrameDecoder, encodeFrame } from "../../src/protocol/frame.js";
import { tempDir } from "../helpers/tmp.js";

/**
 * A peer that speaks the slave link's frames over TLS (any certificate:
 * the probe pins none) and answers the first frame, the probe's hello,
 * with an error message of `code`: what anyone who can listen on a peer's
 * port can send, having proved nothing. Resolves with its port and the
 * hellos it received.
 */
async function unauthenticatedPeer(
  t: Test,
  code: string,
  message: string,
): Promise<{ port: number; hellos: unknown[] }> {
  const material = await loadOrCreateMasterTls({
    stateDir: tempDir(t, "abs-rogue-"),
    hostName: "127.0.0.1",
  });
  const hellos: unknown[] = [];
  const server = tls.createServer({ cert: material.cert, key: material.key }, (socket) => {
    const decoder = new FrameDecoder();
    socket.on("error", () => undefined);
    socket.on("data", (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        hellos.push(frame);
        socket.end(encodeFrame({ type: "error", code, message }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.teardown(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, hellos };
}

t.test("decideVote: a master anywhere refuses; otherwise half plus one must vote", (t) => {
  const vote = (peer: string): PeerAnswer => ({ peer, kind: "vote", why: "connect ECONNREFUSED" });
  const silent = (peer: string): PeerAnswer => ({ peer, kind: "silent", why: "no answer" });
  t.same(decideVote("R", []), { start: true, votes: 0 }, "no peers: nothing to ask");
  t.same(decideVote("R", [vote("a")]), { start: true, votes: 1 });
  t.same(decideVote("R", [vote("a"), vote("b"), silent("c")]), { start: true, votes: 2 });
  t.same(decideVote("R", [vote("a"), silent("b")]), {
    start: false,
    why: "only 1 of 2 peers answered, and half plus one (2) must: b: no answer; check them and the network (or start with --no-voting)",
  });
  t.same(decideVote("R", [silent("a")]).start, false, "the other of two masters down: refuse");
  t.same(decideVote("R", [vote("a"), { peer: "b:7370", kind: "master", master: "barn" }]), {
    start: false,
    why: "another master of realm R answers at b:7370 (master barn); stop it first (or start with --no-voting)",
  });
  t.end();
});

t.test("real masters: refused while a peer runs a master of the realm", async (t) => {
  const b = await MasterProcess.start(t);
  const a = await MasterProcess.prepare(t, { master: `peers = 127.0.0.1:${b.port}` });
  copyFileSync(b.keyFile, a.keyFile); // the same realm
  const r = await runNode([MASTER_BIN, "-f", "-c", a.confPath]);
  t.equal(r.status, 1);
  t.match(
    r.stderr,
    new RegExp(
      `abs-master: startup vote: another master of realm TEST\\.ABS answers at 127\\.0\\.0\\.1:${b.port} \\(master \\S+\\); stop it first \\(or start with --no-voting\\)\\n$`,
    ),
  );

  // --no-voting without a terminal to confirm on is refused; --yes-do-it starts.
  const noTty = await runNode([MASTER_BIN, "-f", "-c", a.confPath, "--no-voting"]);
  t.equal(noTty.status, 1);
  t.match(noTty.stderr, /--no-voting needs a confirmation on a terminal; add --yes-do-it/);
  await a.launch(["--no-voting", "--yes-do-it"]);
  t.match(a.log, /started with --no-voting: the peers were not asked whether a master runs/);
  await a.stop();
  await b.stop();
});

t.test("real masters: a peer with no master votes; another realm's is no answer", async (t) => {
  const other = await MasterProcess.start(t); // its own realm key: another realm
  const nobody = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await MasterProcess.start(t, {
    master: `peers = ${nobody.map((p) => `127.0.0.1:${p}`).join(", ")}, 127.0.0.1:${other.port}`,
  });
  t.match(a.log, /startup vote: 127\.0\.0\.1:\d+: no master \(cannot connect .*ECONNREFUSED/);
  t.match(
    a.log,
    new RegExp(
      `startup vote: 127\\.0\\.0\\.1:${other.port}: no answer \\(unauthenticated answer: `,
    ),
  );
  t.match(a.log, /startup vote: 2 of 3 peers agree that no master runs/);
  await a.stop();
  await other.stop();
});

t.test("real masters: a peer that does not answer is no vote", async (t) => {
  // Accepts TCP and says nothing: a hung host, or a black hole.
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => sockets.add(s));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const port = (silent.address() as net.AddressInfo).port;
  const a = await MasterProcess.prepare(t, { master: `peers = 127.0.0.1:${port}` });
  const r = await runNode([MASTER_BIN, "-f", "-c", a.confPath]);
  t.equal(r.status, 1);
  t.match(
    r.stderr,
    `abs-master: startup vote: only 0 of 1 peers answered, and half plus one (1) must: 127.0.0.1:${port}: no TLS connection to the master at 127.0.0.1:${port} within 5000 ms; check them and the network (or start with --no-voting)`,
  );
});

t.test("an unauthenticated error is no answer: neither a master nor a vote", async (t) => {
  // On main, "rate-limited" from anyone counted as a master (a peer could
  // keep the master from starting), and a refusal as a vote (it could make
  // one start while the real peer is cut off).
  for (const [code, message] of [
    ["AUTH_RATE_LIMITED", "too many failed attempts from 127.0.0.1"],
    ["AUTH_FAILED", "wrong realm key"],
  ] as const) {
    const rogue = await unauthenticatedPeer(t, code, message);
    const a = await MasterProcess.prepare(t, { master: `peers = 127.0.0.1:${rogue.port}` });
    const r = await runNode([MASTER_BIN, "-f", "-c", a.confPath]);
    t.match(rogue.hellos, [{ type: "hello" }], `${code}: the probe asked the rogue peer`);
    t.equal(r.status, 1, `${code}: not started`);
    const said = `unauthenticated answer: master refused authentication: ${message}`;
    t.equal(
      r.stderr,
      `abs-master: startup vote: 127.0.0.1:${rogue.port}: no answer (${said})\n` +
        `abs-master: startup vote: only 0 of 1 peers answered, and half plus one (1) must: 127.0.0.1:${rogue.port}: ${said}; check them and the network (or start with --no-voting)\n`,
      code,
    );
  }
});

t.test("--no-voting asks on the terminal: 'no' does not start, 'yes' does", async (t) => {
  const b = await MasterProcess.start(t);
  const a = await MasterProcess.prepare(t, { master: `peers = 127.0.0.1:${b.port}` });
  copyFileSync(b.keyFile, a.keyFile);
  /** Runs abs-master on a pseudo-terminal (util-linux script) and answers its question. */
  const onTerminal = (answer: string): Promise<{ status: number | null; out: string }> =>
    new Promise((resolve, reject) => {
      const command = [process.execPath, MASTER_BIN, "-c", a.confPath, "--no-voting"]
        .map((w) => `'${w}'`)
        .join(" ");
      const child = spawn("script", ["-qfec", command, "/dev/null"], {
        stdio: ["pipe", "pipe", "pipe"],
      });
      let out = "";
      let answered = false;
      const onData = (c: Buffer): void => {
        out += c.toString();
        if (!answered && out.includes("Type yes to continue:")) {
          answered = true;
          child.stdin.write(`${answer}\n`);
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.once("error", reject);
      child.once("close", (status) => resolve({ status, out }));
    });
  const no = await onTerminal("no");
  t.equal(no.status, 1);
  t.match(no.out, /two masters will\s+dispatch the same jobs/);
  t.match(no.out, /abs-master: not started/);
  // "yes": the master goes into the background once it serves (no -f), so
  // the command returns 0; it is then stopped by its pid file.
  const yes = await onTerminal("yes");
  t.equal(yes.status, 0, yes.out);
  const pidFile = path.join(path.dirname(a.socket), "abs-master.pid");
  const pid = Number(readFileSync(pidFile, "utf8"));
  t.teardown(() => {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  });
  const log = readFileSync(path.join(a.dir, "log", "master-daemon.log"), "utf8");
  t.match(log, /started with --no-voting: the peers were not asked whether a master runs/);
  // Stopped by its pid file, as an init script would; gone when it removes it.
  const gone = new Promise<void>((resolve, reject) => {
    const watcher = watch(path.dirname(pidFile), () => {
      if (!existsSync(pidFile)) {
        watcher.close();
        clearTimeout(timer);
        resolve();
      }
    });
    const timer = setTimeout(() => {
      watcher.close();
      reject(new Error(`${pidFile} still there 30 s after SIGTERM`));
    }, 30_000);
  });
  process.kill(pid, "SIGTERM");
  await gone;
  await b.stop();
});

const kerberosOptions = await kerberosTestOptions(t);

t.test(
  "Kerberos: a master of the realm answers the vote; the second master does not start",
  kerberosOptions,
  async (t) => {
    const kdc = await startKdc({ realm: "VOTE.TEST" });
    t.teardown(() => kdc.stop());
    const keytab = await kdc.addPrincipal("abs/127.0.0.1");
    const kerberos = { realm: "VOTE.TEST", keytab, servicePrincipal: "abs/127.0.0.1" };
    const b = await MasterProcess.start(t, { kerberos, env: kdc.env });
    const a = await MasterProcess.prepare(t, {
      kerberos,
      env: kdc.env,
      master: `peers = 127.0.0.1:${b.port}`,
    });
    const r = await runNode([MASTER_BIN, "-f", "-c", a.confPath], kdc.env);
    t.equal(r.status, 1);
    t.match(
      r.stderr,
      new RegExp(
        `startup vote: another master of realm VOTE\\.TEST answers at 127\\.0\\.0\\.1:${b.port} \\(master \\S+\\)`,
      ),
    );
    await b.stop();
    // With the peer's master stopped, nothing listens there: a vote.
    await a.launch();
    t.match(a.log, /startup vote: 1 of 1 peers agree that no master runs/);
    await a.stop();
  },
);
