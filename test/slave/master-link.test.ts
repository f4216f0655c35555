// The slave's link to its master, as its log shows it: a failure that
// repeats the one before it goes to debug level, also when the master's
// text of it carries a number that changes at every attempt (the source
// port, the seconds a block has left).

import t from "tap";
import { connectToMaster } from "../../src/auth/link-client.js";
import { AuthError, ConfigError } from "../../src/errors.js";
import { failureKey } from "../../src/slave/master-link.js";
import { rejection } from "../fixtures/link-harness.js";
import { MasterProcess } from "../helpers/master-process.js";
import { SlaveProcess } from "../helpers/slave-process.js";

t.test("failureKey: the same failure with other numbers, and other failures", (t) => {
  const refused = (message: string, code: "AUTH_FAILED" | "AUTH_RATE_LIMITED" = "AUTH_FAILED") =>
    failureKey(new AuthError(code, `master refused authentication: ${message}`));
  const principal = (from: string) =>
    refused(
      `Kerberos: refused slave principal host/a@R from ${from}: it matches none of the allowed principals (b)`,
    );
  t.equal(principal("127.0.0.1:41234"), principal("127.0.0.1:41240"), "source port");
  t.equal(principal("[::1]:41234"), principal("[::1]:5"), "IPv6 source port");
  const blocked = (s: number) =>
    refused(
      `too many failed authentication attempts from 127.0.0.1; new connections are refused for ${s} more seconds`,
      "AUTH_RATE_LIMITED",
    );
  t.equal(blocked(300), blocked(9), "the seconds left");
  t.not(blocked(300), principal("127.0.0.1:41234"), "another failure");
  t.not(
    refused("wrong key", "AUTH_FAILED"),
    refused("wrong key", "AUTH_RATE_LIMITED"),
    "another code, the same text",
  );
  t.not(failureKey(new ConfigError("x")), failureKey(new AuthError("AUTH_FAILED", "x")));
  t.equal(
    failureKey(new Error("connect ECONNREFUSED 127.0.0.1:7370")),
    ": connect ECONNREFUSED N.N.N.N:N",
  );
  t.end();
});

t.test(
  "a real slave refused again and again by a real master: warn once, then debug",
  async (t) => {
    const m = await MasterProcess.start(t);
    // Ten wrong MACs from 127.0.0.1, the slave's address: it is blocked,
    // and the master's refusal counts the seconds down.
    for (let i = 0; i < 10; i++) {
      const err = await rejection(
        connectToMaster({
          host: "127.0.0.1",
          port: m.port,
          name: "intruder",
          auth: { mode: "realm-key", realmKey: Buffer.alloc(32, 7) },
        }),
      );
      t.equal(err.code, "AUTH_FAILED");
    }
    await m.waitForOutput(/slave link: 127\.0\.0\.1 failed to authenticate 10 times/);

    const s = SlaveProcess.prepare(t, { master: m });
    await s.launch(["-d"]);
    // Four attempts: after backoff waits of at least 0.5, 1 and 2 s, so
    // the seconds left in the master's text are not all the same.
    const refusal =
      /^\S+ (\w+) cannot reach the master at 127\.0\.0\.1:\d+: master refused authentication: too many failed authentication attempts from 127\.0\.0\.1; new connections are refused for (\d+) more seconds$/gm;
    let from = 0;
    for (let i = 0; i < 4; i++) {
      const match = await s.waitForOutput(new RegExp(refusal.source, "m"), 30_000, from);
      from += (match.index ?? 0) + match[0].length;
    }
    const lines = [...s.log.matchAll(refusal)].slice(0, 4);
    t.ok(new Set(lines.map((l) => l[2])).size > 1, "the seconds left changed between attempts");
    t.same(
      lines.map((l) => l[1]),
      ["warn", "debug", "debug", "debug"],
      "the first refusal at warn, its repeats at debug",
    );
    t.equal((await s.stop()).code, 0);
  },
);
