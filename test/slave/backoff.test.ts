// The slave's reconnect backoff: doubling steps from 0.5 s to 30 s, each
// wait random between half and all of its step.

import t from "tap";
import { BACKOFF_MAX_MS, backoffDelay } from "../../src/slave/master-link.js";

t.test("steps double up to the cap; the jitter stays within half and all of the step", (t) => {
  const low = () => 0;
  const high = () => 1;
  t.same(
    [0, 1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, high)),
    [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000],
  );
  t.same(
    [0, 1, 6, 100].map((n) => backoffDelay(n, low)),
    [250, 500, 15000, 15000],
  );
  // Many slaves that lost one master spread over the window.
  let seed = 7;
  const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const waits = Array.from({ length: 1000 }, () => backoffDelay(3, random));
  t.ok(
    waits.every((w) => w >= 2000 && w <= 4000),
    "all within [2s, 4s]",
  );
  t.ok(new Set(waits).size > 500, "spread, not in one burst");
  t.equal(backoffDelay(1e9, high), BACKOFF_MAX_MS, "a huge count is capped, not Infinity");
  t.end();
});
