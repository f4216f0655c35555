// Kerberos authentication against real MIT KDCs on loopback (Debian's
// krb5-kdc, started by test/helpers/kdc.ts).
//
// Realms:
//   MAIN.TEST     the master's realm: abs/127.0.0.1 and the slaves.
//   FOREIGN.TEST  another realm, no trust with MAIN.TEST and no ABS service:
//                 its slaves cannot even get a ticket for the master.
//   ROGUE.TEST    another realm whose abs/127.0.0.1 key sits in the master's
//                 keytab too (a keytab shared by mistake): GSSAPI accepts its
//                 tickets, and only the acceptor's realm check refuses them.
//
// MIT selects keytabs and caches through process-wide variables, so this
// process holds one slave identity (slave1, from its keytab) and one master
// keytab; other slaves run test/fixtures/kerberos-initiator.ts as children.

import { spawn, type ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { refusal } from "../helpers/refusal.js";
import t from "tap";
import {
  createKerberosAcceptor,
  createKerberosInitiator,
  dropServiceTickets,
  initiatorCcache,
  MasterKerberosFault,
  parseKeytab,
  type KerberosAcceptor,
  type KerberosInitiatorOptions,
} from "../../src/auth/kerberos.js";
import { AbsError } from "../../src/errors.js";
import { kerberosTestOptions, startKdc } from "../helpers/kdc.js";

/** Bound on every wait for a child's next message, in ms. */
const STEP_TIMEOUT_MS = 15_000;
const FIXTURE = fileURLToPath(new URL("../fixtures/kerberos-initiator.js", import.meta.url));
const SERVICE = "abs/127.0.0.1";

/** A line from the fixture: a step, or the error that ended it. */
interface ChildMessage {
  tokenOut?: string | null;
  done?: boolean;
  principal?: string;
  error?: { code: string; message: string };
}

/** A slave initiator in a child process, driven line by line. */
class ChildInitiator {
  private readonly child: ChildProcess;
  private readonly lines: AsyncIterator<string>;
  private readonly exited: Promise<void>;
  private stderr = "";

  constructor(options: KerberosInitiatorOptions, env: Record<string, string>) {
    this.child = spawn(process.execPath, [FIXTURE, JSON.stringify(options)], {
      env: { ...process.env, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.child.stderr!.on("data", (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.lines = createInterface({ input: this.child.stdout! })[Symbol.asyncIterator]();
    this.exited = new Promise((resolve) => this.child.once("exit", () => resolve()));
  }

  /** The child's next message; rejects when it exits without one or the bound passes. */
  async next(): Promise<ChildMessage> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no message from the initiator child within ${STEP_TIMEOUT_MS} ms`)),
        STEP_TIMEOUT_MS,
      );
    });
    try {
      const line = await Promise.race([this.lines.next(), timeout]);
      if (line.done === true) {
        throw new Error(`the initiator child exited without a message; stderr:\n${this.stderr}`);
      }
      return JSON.parse(line.value) as ChildMessage;
    } finally {
      clearTimeout(timer);
    }
  }

  send(token: Buffer): void {
    this.child.stdin!.write(`${JSON.stringify({ token: token.toString("base64") })}\n`);
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
    await this.exited;
  }
}

/**
 * Runs one exchange between a child slave and an in-process acceptor.
 * Returns how each side ended: the child's last message, and the acceptor's
 * principal or error (undefined when the slave failed before sending).
 */
async function exchangeWithChild(
  options: KerberosInitiatorOptions,
  env: Record<string, string>,
  acceptor: KerberosAcceptor,
): Promise<{ slave: ChildMessage; master?: { principal?: string; error?: AbsError } }> {
  const child = new ChildInitiator(options, env);
  try {
    const first = await child.next();
    if (first.error !== undefined) return { slave: first };
    let reply: Buffer;
    let principal: string | undefined;
    try {
      const step = await acceptor.step(Buffer.from(first.tokenOut!, "base64"));
      reply = step.tokenOut!;
      principal = step.principal;
    } catch (err) {
      if (!(err instanceof AbsError)) throw err;
      return { slave: first, master: { error: err } };
    }
    child.send(reply);
    return { slave: await child.next(), master: { principal } };
  } finally {
    await child.close();
  }
}

const options = await kerberosTestOptions(t);

t.test("Kerberos against real MIT KDCs", options, async (t) => {
  const main = await startKdc({ realm: "MAIN.TEST" });
  t.teardown(() => main.stop());
  const foreign = await startKdc({ realm: "FOREIGN.TEST" });
  t.teardown(() => foreign.stop());
  const rogue = await startKdc({ realm: "ROGUE.TEST" });
  t.teardown(() => rogue.stop());

  const masterKeytab = await main.addPrincipal(SERVICE);
  await rogue.addPrincipal(SERVICE, { keytab: masterKeytab });
  const slave1 = await main.addPrincipal("slave1");
  const slave2 = await main.addPrincipal("slave2");
  const foreignSlave = await foreign.addPrincipal("slave1");
  const rogueSlave = await rogue.addPrincipal("slave1");

  const acceptor = (allowedPrincipals?: string[]): Promise<KerberosAcceptor> =>
    createKerberosAcceptor({
      keytab: masterKeytab,
      realm: "MAIN.TEST",
      servicePrincipal: SERVICE,
      peer: "127.0.0.1:40000",
      ...(allowedPrincipals === undefined ? {} : { allowedPrincipals }),
    });

  t.test("the harness's keytabs are what parseKeytab reads", async (t) => {
    const entries = parseKeytab(await readFile(masterKeytab));
    t.same(
      [...new Set(entries.map((e) => e.principal))],
      ["abs/127.0.0.1@MAIN.TEST", "abs/127.0.0.1@ROGUE.TEST"],
    );
  });

  t.test("a slave and the master authenticate each other, in one process", async (t) => {
    const initiator = await createKerberosInitiator({ servicePrincipal: SERVICE, keytab: slave1 });
    t.equal(initiator.principal, "slave1@MAIN.TEST", "the principal comes from the keytab");
    const master = await acceptor();

    const request = await initiator.step(null);
    t.equal(request.done, false, "the slave waits for the master's proof");
    t.ok(request.tokenOut !== null && request.tokenOut.length > 0, "the slave sends a token");

    const reply = await master.step(request.tokenOut!);
    t.equal(reply.done, true, "the master is done after one token");
    t.equal(reply.principal, "slave1@MAIN.TEST", "the master learns the slave principal");
    t.ok(reply.tokenOut !== null && reply.tokenOut.length > 0, "the master answers (mutual)");

    const final = await initiator.step(reply.tokenOut);
    t.same(final, { tokenOut: null, done: true, principal: "slave1@MAIN.TEST" });

    // The tickets came from the keytab through KRB5_CLIENT_KTNAME, into a
    // private cache file: no kinit.
    t.equal(process.env.KRB5_CLIENT_KTNAME, `FILE:${slave1}`);
    t.match(process.env.KRB5CCNAME, /^FILE:.*\/abs-krb5cc-[^/]+\/ccache$/);
    t.equal(process.env.KRB5CCNAME, initiatorCcache({}), "one private cache per process");

    // The service ticket is in it; dropping it leaves the cache usable, and
    // the next exchange gets a new ticket from the KDC.
    t.equal(await dropServiceTickets(initiatorCcache({}), SERVICE), 1, "the ticket was cached");
    t.equal(await dropServiceTickets(initiatorCcache({}), SERVICE), 0, "and is gone");
    const again = await createKerberosInitiator({ servicePrincipal: SERVICE, keytab: slave1 });
    const request2 = await again.step(null);
    const reply2 = await (await acceptor()).step(request2.tokenOut!);
    t.equal((await again.step(reply2.tokenOut)).done, true, "a new ticket authenticates");
    t.equal(await dropServiceTickets(initiatorCcache({}), SERVICE), 1, "cached again");
    t.equal(process.env.KRB5_KTNAME, `FILE:${masterKeytab}`);
  });

  t.test("the slave refuses a master that cannot prove the service key", async (t) => {
    const initiator = await createKerberosInitiator({ servicePrincipal: SERVICE, keytab: slave1 });
    const request = await initiator.step(null);
    const reply = await (await acceptor()).step(request.tokenOut!);
    const forged = Buffer.from(reply.tokenOut!);
    forged[forged.length - 4] ^= 0x01;
    const err = await refusal(initiator.step(forged));
    t.equal(err.code, "AUTH_FAILED");
    t.match(
      err.message,
      /slave1@MAIN.TEST .* to abs\/127.0.0.1 failed: the master did not prove it holds the key of abs\/127.0.0.1 \(mutual authentication failed\): the token is invalid or was altered in transit \[GSSAPI: .*\]/,
    );

    // A genuine reply, but to another exchange, proves nothing either.
    const other = await createKerberosInitiator({ servicePrincipal: SERVICE, keytab: slave1 });
    await other.step(null);
    const replayed = await refusal(other.step(reply.tokenOut));
    t.equal(replayed.code, "AUTH_FAILED");
    t.match(replayed.message, /mutual authentication failed/);
  });

  t.test("a replayed slave token is refused", async (t) => {
    const initiator = await createKerberosInitiator({ servicePrincipal: SERVICE, keytab: slave1 });
    const request = await initiator.step(null);
    await (await acceptor()).step(request.tokenOut!);
    const err = await refusal((await acceptor()).step(request.tokenOut!));
    t.equal(err.code, "AUTH_FAILED");
    t.match(
      err.message,
      /^Kerberos: refused a slave from 127.0.0.1:40000 authenticating to abs\/127.0.0.1@MAIN.TEST: the token was already used once \(a replayed authentication\) \[GSSAPI: .*Request is a replay\]$/,
    );
    // The slave's fault, told to it in full (and without the master's keytab path).
    t.notOk(err instanceof MasterKerberosFault, "not a fault of the master's own");
    t.same(err.context, { file: masterKeytab, peer: "127.0.0.1:40000" });
  });

  t.test("a slave in another process authenticates", async (t) => {
    const result = await exchangeWithChild(
      { servicePrincipal: `${SERVICE}@MAIN.TEST`, keytab: slave2 },
      main.env,
      await acceptor(),
    );
    t.same(result.slave, { tokenOut: null, done: true, principal: "slave2@MAIN.TEST" });
    t.same(result.master, { principal: "slave2@MAIN.TEST" });
  });

  t.test("a slave whose tickets come from kinit (a cache, no keytab)", async (t) => {
    const ccache = `FILE:${main.dir}/slave3.ccache`;
    await main.kinit("slave3", await main.addPrincipal("slave3"), ccache);
    const result = await exchangeWithChild(
      { servicePrincipal: SERVICE, ccache },
      main.env,
      await acceptor(),
    );
    t.same(result.slave, { tokenOut: null, done: true, principal: "slave3@MAIN.TEST" });
    t.same(result.master, { principal: "slave3@MAIN.TEST" });
  });

  t.test("the allow-list narrows the realm", async (t) => {
    const refused = await exchangeWithChild(
      { servicePrincipal: SERVICE, keytab: slave2 },
      main.env,
      await acceptor(["slave1"]),
    );
    t.equal(refused.master?.error?.code, "AUTH_FAILED");
    t.equal(
      refused.master?.error?.message,
      "Kerberos: refused slave principal slave2@MAIN.TEST from 127.0.0.1:40000: it matches none of the allowed principals (slave1)",
    );

    const initiator = await createKerberosInitiator({ servicePrincipal: SERVICE, keytab: slave1 });
    const request = await initiator.step(null);
    const reply = await (await acceptor(["slave1@MAIN.TEST"])).step(request.tokenOut!);
    t.equal(reply.principal, "slave1@MAIN.TEST", "a listed principal is accepted");
  });

  t.test("a slave of another realm is refused", (t) => {
    t.test("without trust it gets no ticket for the master", async (t) => {
      const result = await exchangeWithChild(
        { servicePrincipal: SERVICE, keytab: foreignSlave },
        foreign.env,
        await acceptor(),
      );
      t.equal(result.master, undefined, "the master never hears from it");
      t.equal(result.slave.error?.code, "AUTH_FAILED");
      t.match(
        result.slave.error?.message,
        /^Kerberos authentication of slave1@FOREIGN.TEST \(keytab .*\) to abs\/127.0.0.1 failed: the KDC has no service principal abs\/127.0.0.1@FOREIGN.TEST: the slave principal must belong to the master's realm/,
      );
    });

    t.test("with a ticket the master's keytab can read, the acceptor refuses it", async (t) => {
      const result = await exchangeWithChild(
        { servicePrincipal: SERVICE, keytab: rogueSlave },
        rogue.env,
        await acceptor(),
      );
      t.equal(result.master?.error?.code, "AUTH_FAILED");
      t.equal(
        result.master?.error?.message,
        "Kerberos: refused slave principal slave1@ROGUE.TEST from 127.0.0.1:40000: its realm ROGUE.TEST is not the master's realm MAIN.TEST",
      );
    });
    t.end();
  });

  t.test("a principal the KDC does not know", async (t) => {
    const keytab = await main.addPrincipal("gone");
    await main.deletePrincipal("gone");
    const result = await exchangeWithChild(
      { servicePrincipal: SERVICE, keytab },
      main.env,
      await acceptor(),
    );
    t.equal(result.slave.error?.code, "AUTH_FAILED");
    t.match(
      result.slave.error?.message,
      /^Kerberos authentication of gone@MAIN.TEST \(keytab .*gone\.keytab\) to abs\/127.0.0.1 failed: the KDC does not know the principal gone@MAIN.TEST/,
    );
  });

  t.test("a second slave identity in one process is refused", async (t) => {
    const err = await refusal(
      createKerberosInitiator({ servicePrincipal: SERVICE, keytab: slave2 }),
    );
    t.equal(err.code, "CONFIG");
    t.match(
      err.message,
      `KRB5_CLIENT_KTNAME is process-wide and this process already uses FILE:${slave1}`,
    );
    t.match(err.message, `it cannot also use FILE:${slave2}`);
  });

  t.test("a stopped KDC", async (t) => {
    await main.stopServer();

    // A fresh slave has no tickets and must reach the KDC.
    const result = await exchangeWithChild(
      { servicePrincipal: SERVICE, keytab: slave2 },
      main.env,
      await acceptor(),
    );
    t.equal(result.slave.error?.code, "KDC_UNREACHABLE");
    t.match(
      result.slave.error?.message,
      /^Kerberos authentication of slave2@MAIN.TEST \(keytab .*slave2\.keytab\) to abs\/127.0.0.1 failed: no KDC of realm MAIN.TEST answered \(is krb5kdc running and reachable\? the KDC addresses come from the \[realms\] section of KRB5_CONFIG=.*krb5\.conf.*\)/,
    );

    // A slave holding a valid ticket (this process, in its memory cache)
    // still authenticates: the master never needs the KDC.
    const initiator = await createKerberosInitiator({ servicePrincipal: SERVICE, keytab: slave1 });
    const request = await initiator.step(null);
    const reply = await (await acceptor()).step(request.tokenOut!);
    t.equal((await initiator.step(reply.tokenOut)).done, true);

    // Once the KDC is back, the fresh slave gets in.
    await main.restart();
    const again = await exchangeWithChild(
      { servicePrincipal: SERVICE, keytab: slave2 },
      main.env,
      await acceptor(),
    );
    t.equal(again.slave.done, true);
    t.same(again.master, { principal: "slave2@MAIN.TEST" });
  });
});
