// The admin contract's table: the changing methods, a parser for each
// method, and (at compile time) that every result is JSON all through.

import t from "tap";
import type { JsonCompatible } from "../../src/json-shape.js";
import { ADMIN_METHODS, type StatusResult } from "../../src/protocol/admin-api.js";
import { ADMIN_CONTRACT, CHANGING_METHODS } from "../../src/protocol/admin-contract.js";

t.test("the changing methods are those that carry a request id", (t) => {
  t.same([...CHANGING_METHODS].sort(), [
    "archive",
    "autoarchive",
    "cancel",
    "drain",
    "import-disaster-log",
    "reload",
    "run",
  ]);
  t.end();
});

t.test("every method's parser refuses an argument it does not know, by name", (t) => {
  for (const method of ADMIN_METHODS) {
    t.throws(
      () => ADMIN_CONTRACT[method].parse({ bogus: 1 }),
      { name: "ShapeError", field: "args.bogus" },
      method,
    );
  }
  t.end();
});

t.test("results are typed as JSON: a Date or a function is not", (t) => {
  const status: StatusResult = {
    master: "m",
    realm: "R",
    mode: "real",
    pid: 1,
    startedAt: 0,
    listen: "0.0.0.0:7370",
    auth: "realm-key",
    servicePrincipal: null,
    jobsDir: "/var/lib/abs/jobs",
    jobs: 0,
    drained: false,
    slavesConnected: 0,
  };
  const json: JsonCompatible<StatusResult> = status;
  // @ts-expect-error: JSON.stringify writes a Date as a string
  const withDate: JsonCompatible<{ at: Date }> = { at: new Date(0) };
  // @ts-expect-error: and leaves a function out
  const withFunction: JsonCompatible<{ f: () => number }> = { f: () => 1 };
  t.equal(ADMIN_CONTRACT.status.toWire(json), status, "sent as it is");
  t.same(JSON.parse(JSON.stringify([withDate, withFunction])), [{ at: new Date(0).toJSON() }, {}]);
  t.end();
});
