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
