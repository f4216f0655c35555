import t from "tap";
import { principalMayUseName } from "../../src/auth/slave-identity.js";

t.test("a Kerberos principal vouches for its own slave name only", (t) => {
  const ok: [string, string][] = [
    ["host/green-acres.example.com@EXAMPLE.COM", "green-acres.example.com"],
    ["host/green-acres.example.com@EXAMPLE.COM", "green-acres"],
    ["host/Green-Acres.example.com@EXAMPLE.COM", "green-acres"],
    ["abs-slave/green-acres@EXAMPLE.COM", "green-acres"],
    ["green-acres@EXAMPLE.COM", "green-acres"],
  ];
  for (const [p, n] of ok) t.equal(principalMayUseName(p, n), null, `${p} as ${n}`);
  t.equal(
    principalMayUseName("host/red-barn.example.com@EXAMPLE.COM", "green-acres"),
    'principal host/red-barn.example.com@EXAMPLE.COM may register as "red-barn.example.com" or "red-barn", not "green-acres"',
  );
  t.equal(
    principalMayUseName("alice@EXAMPLE.COM", "green-acres"),
    'principal alice@EXAMPLE.COM may register as "alice", not "green-acres"',
  );
  t.equal(
    principalMayUseName("host/green-acres.example.com@EXAMPLE.COM", "example.com"),
    'principal host/green-acres.example.com@EXAMPLE.COM may register as "green-acres.example.com" or "green-acres", not "example.com"',
    "a suffix is not the host",
  );
  t.end();
});
