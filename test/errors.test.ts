import t from "tap";
import { AbsError, errorFromWire } from "../src/errors.js";

t.test("errors round-trip through their wire form", (t) => {
  const err = new AbsError("QUEUE_FULL", "full", { context: { jobId: 3 } });
  const back = errorFromWire(err.toWire());
  t.equal(back.code, "QUEUE_FULL");
  t.equal(back.message, "full");
  t.same(back.context, { jobId: 3 });
  t.end();
});

t.test("every code survives the wire; an unknown one arrives as INTERNAL", (t) => {
  // DEFINITION_NOT_FOUND once arrived as INTERNAL: it was in ErrorCode but not in the known set.
  t.equal(
    errorFromWire({ code: "DEFINITION_NOT_FOUND", message: "x" }).code,
    "DEFINITION_NOT_FOUND",
  );
  t.equal(errorFromWire({ code: "FROM_A_NEWER_PEER", message: "x" }).code, "INTERNAL");
  t.end();
});
