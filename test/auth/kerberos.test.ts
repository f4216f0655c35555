// Kerberos wrapper without a KDC: names, keytab parsing, the explanation of
// GSSAPI failures, a missing `kerberos` package, and every refusal that
// happens before GSSAPI is called (keytab checks, realm check). These run on
// any machine; test/auth/kerberos-kdc.test.ts runs a real MIT KDC.
import { chmod, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import t, { type Test } from "tap";
import {
  createKerberosAcceptor,
  createKerberosInitiator,
  dropServiceTickets,
  explainGssError,
  loadKerberos,
  parseKeytab,
  parseServicePrincipal,
  realmOf,
  withoutServiceTickets,
} from "../../src/auth/kerberos.js";
import { AbsError } from "../../src/errors.js";
import { callAsNobody, runningAsRoot } from "../helpers/as-nobody.js";
import { tempDir } from "../helpers/tmp.js";

// --- building keytab bytes (MIT format 0x0502) by hand ---

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
function i32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}
function counted(data: string | Buffer): Buffer {
  const b = Buffer.from(data);
  return Buffer.concat([u16(b.length), b]);
}
function entry(principal: string, kvno: number, enctype = 18, kvno32 = true): Buffer {
  const [name, realm] = principal.split("@") as [string, string];
  const components = name.split("/");
  const body = Buffer.concat([
    u16(components.length),
    counted(realm),
    ...components.map((c) => counted(c)),
    u32(1), // name type KRB5_NT_PRINCIPAL
    u32(1_700_000_000), // timestamp
    Buffer.from([kvno & 0xff]),
    u16(enctype),
    counted(Buffer.alloc(enctype === 18 ? 32 : 16, 7)),
    ...(kvno32 ? [u32(kvno)] : []),
  ]);
  return Buffer.concat([i32(body.length), body]);
}
const HEADER = Buffer.from([0x05, 0x02]);

function keytab(...entries: Buffer[]): Buffer {
  return Buffer.concat([HEADER, ...entries]);
}

/** Asserts that `promise` rejects with an AbsError of `code` whose message matches every pattern. */
async function rejectsWith(
  t: Test,
  promise: Promise<unknown>,
  code: string,
  ...patterns: RegExp[]
): Promise<AbsError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, AbsError, "rejects with an AbsError");
  const abs = err as AbsError;
  t.equal(abs.code, code, `code ${code}`);
  for (const p of patterns) t.match(abs.message, p);
  return abs;
}

t.test("parseServicePrincipal", async (t) => {
  t.same(parseServicePrincipal("abs/127.0.0.1"), {
    service: "abs",
    host: "127.0.0.1",
    realm: undefined,
    hostBased: "abs@127.0.0.1",
  });
  t.same(parseServicePrincipal("abs/backup.example.com@EXAMPLE.COM"), {
    service: "abs",
    host: "backup.example.com",
    realm: "EXAMPLE.COM",
    hostBased: "abs@backup.example.com",
  });
  for (const bad of ["abs", "abs@host", "abs/", "/host", "abs/a/b", "abs/host@", "abs/ho st"]) {
    await rejectsWith(
      t,
      Promise.resolve().then(() => parseServicePrincipal(bad)),
      "CONFIG",
      new RegExp(
        `"${bad.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}" is not of the form service/host`,
      ),
    );
  }
});

t.test("realmOf takes the part after the last unescaped @", (t) => {
  t.equal(realmOf("slave1@MAIN.TEST"), "MAIN.TEST");
  t.equal(realmOf("host/a.example.com@EXAMPLE.COM"), "EXAMPLE.COM");
  t.equal(realmOf("odd\\@name@R"), "R");
  t.equal(realmOf("odd\\@name"), undefined);
  t.equal(realmOf("noreal"), undefined);
  t.end();
});

t.test("parseKeytab", (t) => {
  t.test("entries, 32-bit kvno, holes left by deleted entries", (t) => {
    const bytes = keytab(
      entry("abs/127.0.0.1@MAIN.TEST", 300, 18),
      i32(-12),
      Buffer.alloc(12),
      entry("slave1@MAIN.TEST", 2, 17, false),
    );
    t.same(parseKeytab(bytes), [
      { principal: "abs/127.0.0.1@MAIN.TEST", kvno: 300, enctype: 18 },
      { principal: "slave1@MAIN.TEST", kvno: 2, enctype: 17 },
    ]);
    t.end();
  });
  t.test("a header alone holds no entries", (t) => {
    t.same(parseKeytab(HEADER), []);
    t.end();
  });
  const bad: Array<[string, Buffer, RegExp]> = [
    ["empty file", Buffer.alloc(0), /not a keytab/],
    ["text file", Buffer.from("principal = slave1\n"), /not a keytab/],
    ["old format 0x0501", Buffer.from([0x05, 0x01]), /version 0x0501 is not supported/],
    [
      "entry longer than the file",
      Buffer.concat([HEADER, i32(500), Buffer.alloc(10)]),
      /entry at byte 2 runs past the end/,
    ],
    [
      "entry shorter than its fields",
      Buffer.concat([HEADER, i32(6), u16(1), counted("R"), Buffer.alloc(1)]),
      /entry at byte 2 is truncated/,
    ],
  ];
  for (const [name, bytes, message] of bad) {
    t.test(name, (t) => {
      t.throws(() => parseKeytab(bytes), message);
      t.end();
    });
  }
  t.end();
});

t.test("GSSAPI failures are explained", (t) => {
  const cases: Array<[string, string, RegExp]> = [
    [
      "No credentials were supplied, or the credentials were unavailable or inaccessible: Cannot contact any KDC for realm 'MAIN.TEST'",
      "KDC_UNREACHABLE",
      /no KDC of realm MAIN.TEST answered/,
    ],
    [
      'No credentials were supplied, or the credentials were unavailable or inaccessible: Cannot find KDC for realm "X.TEST"',
      "KDC_UNREACHABLE",
      /no KDC is configured for realm X.TEST/,
    ],
    [
      "No credentials were supplied, or the credentials were unavailable or inaccessible: Client 'gone@MAIN.TEST' not found in Kerberos database",
      "AUTH_FAILED",
      /the KDC does not know the principal gone@MAIN.TEST/,
    ],
    [
      "Unspecified GSS failure.  Minor code may provide more information: Server abs/127.0.0.1@OTHER.TEST not found in Kerberos database",
      "AUTH_FAILED",
      /no service principal abs\/127.0.0.1@OTHER.TEST: the slave principal must belong to the master's realm/,
    ],
    [
      "Unspecified GSS failure.  Minor code may provide more information: Server 'abs/h@R' not found in Kerberos database",
      "AUTH_FAILED",
      /no service principal abs\/h@R:/,
    ],
    ["x: Preauthentication failed", "AUTH_FAILED", /keytab is out of date/],
    ["x: Clock skew too great", "AUTH_FAILED", /synchronise them with NTP/],
    ["x: Request is a replay", "AUTH_FAILED", /replayed/],
    [
      "x: Request ticket server abs/h@R kvno 3 not found in keytab; keytab is likely out of date",
      "AUTH_FAILED",
      /master's keytab holds no key of version 3, the version of the slave's ticket: the KDC has a newer key than the keytab; export it again/,
    ],
    [
      "x: Server abs/h@R not found in keytab",
      "AUTH_FAILED",
      /master's keytab holds no key matching/,
    ],
    ["x: Decrypt integrity check failed", "AUTH_FAILED", /invalid or was altered/],
    ["x: Ticket expired", "AUTH_FAILED", /expired/],
    ["x: something new", "AUTH_FAILED", /GSSAPI refused the exchange/],
  ];
  for (const [raw, code, reason] of cases) {
    const explained = explainGssError(raw);
    t.equal(explained.code, code, raw);
    t.match(explained.reason, reason, raw);
    // Only the keytab's own faults are the master's; a bad token is the peer's.
    t.equal(explained.ownKeytab === true, /keytab/.test(raw), `${raw}: whose fault`);
  }
  t.end();
});

t.test("a credential cache ABS cannot edit is refused, not mangled", async (t) => {
  t.throws(() => withoutServiceTickets(Buffer.from([0x05, 0x01, 0, 0]), ["abs", "h"]), {
    message: "credential cache format 0x0501 is not supported (only 0x0503 and 0x0504)",
  });
  // A header, then a principal cut short.
  t.throws(() => withoutServiceTickets(Buffer.from([0x05, 0x04, 0, 0, 0, 0, 0, 1, 0]), ["a"]), {
    message: "it is truncated at byte 8",
  });
  const memory = await rejectsWith(t, dropServiceTickets("MEMORY:x", "abs/h"), "STALE_TICKET");
  t.match(memory.message, /from credential cache MEMORY:x: ABS can edit only FILE caches/);
});

t.test("a missing kerberos package says what to install", async (t) => {
  const missing = Object.assign(new Error("Cannot find package 'kerberos'"), {
    code: "ERR_MODULE_NOT_FOUND",
  });
  const err = await rejectsWith(
    t,
    loadKerberos(() => Promise.reject(missing)),
    "KERBEROS_UNAVAILABLE",
    /Cannot find package 'kerberos'/,
    /apt-get install libkrb5-dev/,
    /npm rebuild kerberos/,
    /npm install/,
  );
  t.equal(err.cause, missing, "keeps the import error as cause");
  await rejectsWith(
    t,
    loadKerberos(() => Promise.resolve({ default: {} })),
    "KERBEROS_UNAVAILABLE",
    /no initializeClient/,
  );
});

t.test("refusals before GSSAPI is called", async (t) => {
  const dir = t.testdir({});
  const slaveKeytab = path.join(dir, "slave.keytab");
  const foreignKeytab = path.join(dir, "foreign.keytab");
  const serviceKeytab = path.join(dir, "service.keytab");
  const garbage = path.join(dir, "garbage.keytab");
  const empty = path.join(dir, "empty.keytab");
  const aDirectory = path.join(dir, "dir.keytab");
  await writeFile(
    slaveKeytab,
    keytab(entry("slave1@MAIN.TEST", 2), entry("slave1@MAIN.TEST", 2, 17)),
  );
  await writeFile(foreignKeytab, keytab(entry("slave1@FOREIGN.TEST", 2)));
  await writeFile(serviceKeytab, keytab(entry("host/127.0.0.1@MAIN.TEST", 2)));
  await writeFile(garbage, "not a keytab\n");
  await writeFile(empty, HEADER);
  await mkdir(aDirectory);
  const missing = path.join(dir, "nope.keytab");
  const service = "abs/127.0.0.1@MAIN.TEST";

  t.test("initiator keytab problems name the keytab", async (t) => {
    const cases: Array<[string, RegExp]> = [
      [missing, /^slave keytab .*nope\.keytab does not exist$/],
      [aDirectory, /^slave keytab .*dir\.keytab is not a regular file$/],
      [garbage, /^slave keytab .*garbage\.keytab cannot be used: not a keytab/],
      [empty, /^slave keytab .*empty\.keytab holds no keys$/],
    ];
    for (const [file, message] of cases) {
      const err = await rejectsWith(
        t,
        createKerberosInitiator({ servicePrincipal: service, keytab: file }),
        "AUTH_FAILED",
        message,
      );
      t.equal(err.context.file, file);
    }
  });

  t.test("an unreadable keytab", async (t) => {
    const own = tempDir(t);
    const locked = path.join(own, "locked.keytab");
    await writeFile(locked, keytab(entry("slave1@MAIN.TEST", 2)), { mode: 0o000 });
    const expected = /locked\.keytab is not readable by this process \(uid \d+\)/;
    if (runningAsRoot()) {
      // Root reads any file: try it as nobody.
      await chmod(own, 0o755);
      const outcome = callAsNobody(
        new URL("../../src/auth/kerberos.js", import.meta.url),
        "createKerberosInitiator",
        [{ servicePrincipal: service, keytab: locked }],
      );
      t.match(outcome, /^AUTH_FAILED /);
      t.match(outcome, expected);
    } else {
      await rejectsWith(
        t,
        createKerberosInitiator({ servicePrincipal: service, keytab: locked }),
        "AUTH_FAILED",
        expected,
      );
    }
  });

  t.test("a principal the keytab does not hold", async (t) => {
    await rejectsWith(
      t,
      createKerberosInitiator({
        servicePrincipal: service,
        keytab: slaveKeytab,
        principal: "slave9@MAIN.TEST",
      }),
      "AUTH_FAILED",
      /slave keytab .*slave\.keytab holds no key for slave9@MAIN.TEST; it holds: slave1@MAIN.TEST$/,
    );
  });

  t.test("a slave of another realm is refused before the KDC is asked", async (t) => {
    await rejectsWith(
      t,
      createKerberosInitiator({ servicePrincipal: service, keytab: foreignKeytab }),
      "AUTH_FAILED",
      /authentication of slave1@FOREIGN.TEST \(keytab .*foreign\.keytab\) to abs\/127.0.0.1@MAIN.TEST failed: the slave principal's realm FOREIGN.TEST is not the master's realm MAIN.TEST/,
    );
  });

  t.test("configuration mistakes", async (t) => {
    await rejectsWith(
      t,
      createKerberosInitiator({ servicePrincipal: service }),
      "CONFIG",
      /needs a keytab or a credential cache/,
    );
    await rejectsWith(
      t,
      createKerberosInitiator({
        servicePrincipal: service,
        keytab: slaveKeytab,
        principal: "slave1",
      }),
      "CONFIG",
      /principal "slave1" has no realm/,
    );
    await rejectsWith(
      t,
      createKerberosAcceptor({
        keytab: serviceKeytab,
        realm: "MAIN.TEST",
        servicePrincipal: "abs/127.0.0.1@OTHER.TEST",
      }),
      "CONFIG",
      /abs\/127.0.0.1@OTHER.TEST is not in the master's realm MAIN.TEST/,
    );
  });

  t.test("acceptor keytab problems name the keytab and what it holds", async (t) => {
    await rejectsWith(
      t,
      createKerberosAcceptor({
        keytab: missing,
        realm: "MAIN.TEST",
        servicePrincipal: "abs/127.0.0.1",
      }),
      "AUTH_FAILED",
      /^master keytab .*nope\.keytab does not exist$/,
    );
    await rejectsWith(
      t,
      createKerberosAcceptor({
        keytab: serviceKeytab,
        realm: "MAIN.TEST",
        servicePrincipal: "abs/127.0.0.1",
      }),
      "AUTH_FAILED",
      /master keytab .*service\.keytab holds no key for the service principal abs\/127.0.0.1@MAIN.TEST; it holds: host\/127.0.0.1@MAIN.TEST$/,
    );
  });
});
