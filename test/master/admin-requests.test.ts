// The request gate: a changing request done once, whatever the retries.

import t from "tap";
import type { JsonValue } from "../../src/json-shape.js";
import { type RequestTag, requestDigest } from "../../src/jobsdir/request-records.js";
import { MemoryRequestLog, RequestGate } from "../../src/master/admin-requests.js";

const tag = (id: string, definition = "home"): RequestTag => ({
  id,
  method: "run",
  digest: requestDigest("run", { definition }),
});

class CountingLog extends MemoryRequestLog {
  recorded = 0;
  override recordRequest(tag: RequestTag, reply: JsonValue): Promise<void> {
    this.recorded += 1;
    return super.recordRequest(tag, reply);
  }
}

t.test("a repeat, at once or later, gets the first answer; the work is done once", async (t) => {
  const log = new CountingLog();
  const gate = new RequestGate(log);
  let works = 0;
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  const work = async () => {
    works += 1;
    await held;
    return { jobs: [works] };
  };
  const first = gate.run(tag("req-00000001"), work);
  const second = gate.run(tag("req-00000001"), work);
  const reused = gate.run(tag("req-00000001", "etc"), work).catch((e: unknown) => e);
  release();
  t.same(await first, { result: { jobs: [1] }, repeat: false });
  t.same(await second, { result: { jobs: [1] }, repeat: true }, "waited for the first");
  t.match(await reused, {
    code: "REQUEST_ID_REUSED",
    message:
      /request id req-00000001 was used by a request still under way for run with other arguments/,
  });
  t.same(await gate.run(tag("req-00000001"), work), { result: { jobs: [1] }, repeat: true });
  await t.rejects(gate.run(tag("req-00000001", "etc"), work), {
    code: "REQUEST_ID_REUSED",
    message:
      /was used at \d{4}-\d\d-\d\dT.* for run with other arguments; a new request needs a new id/,
  });
  t.equal(works, 1);
  t.equal(log.recorded, 1);
});

t.test(
  "a handler that records with its change is not recorded twice; a failure is not recorded",
  async (t) => {
    const log = new CountingLog();
    const gate = new RequestGate(log);
    await gate.run(tag("req-00000002"), async () => {
      await log.recordRequest(tag("req-00000002"), { jobs: [5] });
      return { jobs: [5] };
    });
    t.equal(log.recorded, 1);
    await t.rejects(
      gate.run(tag("req-00000003"), () => Promise.reject(new Error("disk full"))),
      /disk full/,
    );
    t.same(
      await gate.run(tag("req-00000003"), () => Promise.resolve({ jobs: [6] })),
      {
        result: { jobs: [6] },
        repeat: false,
      },
      "a request that failed is done again when retried",
    );
  },
);
