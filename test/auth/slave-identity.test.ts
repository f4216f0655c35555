import t from "tap";
import { principalMatches } from "../../src/auth/kerberos.js";
import { principalMayUseName, type SlaveNamePolicy } from "../../src/auth/slave-identity.js";

const POLICY: SlaveNamePolicy = { service: "host", realm: "EXAMPLE.COM", map: {} };
const NONE = (p: string): string =>
  `principal ${p} may register under no slave name: only a host's principal host/<host>@EXAMPLE.COM names a slave (its host, or the host's first label), or a slave_principal.NAME entry in master.conf`;

t.test("a host principal vouches for its own slave name only", (t) => {
  const ok: [string, string][] = [
    ["host/green-acres.example.com@EXAMPLE.COM", "green-acres.example.com"],
    ["host/green-acres.example.com@EXAMPLE.COM", "green-acres"],
    ["host/Green-Acres.example.com@EXAMPLE.COM", "green-acres"],
    ["host/green-acres@EXAMPLE.COM", "green-acres"],
  ];
  for (const [p, n] of ok) t.equal(principalMayUseName(p, n, POLICY), null, `${p} as ${n}`);
  t.equal(
    principalMayUseName("host/red-barn.example.com@EXAMPLE.COM", "green-acres", POLICY),
    'principal host/red-barn.example.com@EXAMPLE.COM may register as "red-barn.example.com" or "red-barn", not "green-acres"',
  );
  t.equal(
    principalMayUseName("host/green-acres.example.com@EXAMPLE.COM", "example.com", POLICY),
    'principal host/green-acres.example.com@EXAMPLE.COM may register as "green-acres.example.com" or "green-acres", not "example.com"',
    "a suffix is not the host",
  );
  t.end();
});

t.test("the loose forms vouch for no name", (t) => {
  // Each of these registered as db1 before: another service's keytab (a web
  // server's), a user's instance, a user, a host of another realm, three parts.
  for (const p of [
    "HTTP/db1.example.com@EXAMPLE.COM",
    "alice/db1@EXAMPLE.COM",
    "db1@EXAMPLE.COM",
    "host/db1.example.com@OTHER.ORG",
    "host/db1/x@EXAMPLE.COM",
    "host/@EXAMPLE.COM",
  ]) {
    t.equal(principalMayUseName(p, "db1", POLICY), NONE(p), p);
  }
  t.end();
});

t.test("the service is configurable", (t) => {
  const policy = { ...POLICY, service: "abs-slave" };
  t.equal(principalMayUseName("abs-slave/db1.example.com@EXAMPLE.COM", "db1", policy), null);
  t.match(principalMayUseName("host/db1.example.com@EXAMPLE.COM", "db1", policy), /no slave name/);
  t.end();
});

t.test("an explicit map: the mapped principal, and only it, uses the name", (t) => {
  const policy = { ...POLICY, map: { db1: "backup/db1@EXAMPLE.COM" } };
  t.equal(principalMayUseName("backup/db1@EXAMPLE.COM", "db1", policy), null);
  t.equal(
    principalMayUseName("host/db1.example.com@EXAMPLE.COM", "db1", policy),
    'slave name "db1" belongs to principal backup/db1@EXAMPLE.COM (slave_principal.db1 in master.conf), not to host/db1.example.com@EXAMPLE.COM',
  );
  t.equal(principalMayUseName("host/db2.example.com@EXAMPLE.COM", "db2", policy), null);
  t.end();
});

t.test("allowed_principals patterns: * is any run but @", (t) => {
  const cases: [string, string, boolean][] = [
    ["host/*", "host/db1.example.com@EXAMPLE.COM", true],
    ["host/*", "HTTP/db1.example.com@EXAMPLE.COM", false],
    ["host/*", "host/db1.example.com@OTHER.ORG", false],
    ["host/*@EXAMPLE.COM", "host/db1@EXAMPLE.COM", true],
    ["*", "alice@EXAMPLE.COM", true],
    ["host/db1.example.com", "host/db1.example.com@EXAMPLE.COM", true],
    ["host/db1.example.com", "host/db1xexample.com@EXAMPLE.COM", false],
    ["host/*.example.com", "host/db1.example.com@EXAMPLE.COM", true],
  ];
  for (const [pattern, p, want] of cases) {
    t.equal(principalMatches(pattern, p, "EXAMPLE.COM"), want, `${pattern} ${p}`);
  }
  t.end();
});
