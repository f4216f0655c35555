// The request-id record, purely: repeats, reused ids, expiry, and the
// requests file's lines read back from split, torn and hostile text.

import t from "tap";
import {
  REQUEST_ID_RE,
  RETAIN_COUNT,
  RETAIN_MS,
  RequestRecords,
  parseRequests,
  requestDigest,
  requestLine,
} from "../../src/jobsdir/request-records.js";

const HOUR = 3600 * 1000;

function record(id: string, at: number, args: Record<string, string> = { definition: "home" }) {
  return { id, method: "run", digest: requestDigest("run", args), at, reply: { jobs: [1, 2] } };
}

t.test("a repeat answers the first reply; the id with other arguments is a reuse", (t) => {
  const records = new RequestRecords();
  const first = record("req-00000001", 1000);
  t.same(records.lookup(first), { kind: "new" });
  records.add(first);
  t.same(records.lookup({ ...first }), { kind: "repeat", record: first });
  const other = { id: first.id, method: "run", digest: requestDigest("run", { definition: "x" }) };
  t.same(records.lookup(other), { kind: "reused", record: first });
  const otherMethod = { id: first.id, method: "cancel", digest: first.digest };
  t.equal(records.lookup(otherMethod).kind, "reused", "another method with the same id");
  records.add({ ...first, reply: { jobs: [9] } });
  t.same(records.lookup(first), { kind: "repeat", record: first }, "the first record stays");
  t.end();
});

t.test("the digest does not depend on key order, and does on every value", (t) => {
  t.equal(
    requestDigest("run", { definition: "home", slave: "a" }),
    requestDigest("run", { slave: "a", definition: "home" }),
  );
  t.not(
    requestDigest("run", { definition: "home" }),
    requestDigest("cancel", { definition: "home" }),
  );
  t.not(requestDigest("archive", { ids: [1, 2] }), requestDigest("archive", { ids: [2, 1] }));
  t.not(requestDigest("run", { a: { b: 1 } }), requestDigest("run", { a: { b: "1" } }));
  t.end();
});

t.test("records are kept 24 hours or the newest 100,000, whichever keeps more", (t) => {
  const now = 10 * 24 * HOUR;
  // Small limits, the same rule: 2 days old or more than 3 back are forgotten only together.
  const records = new RequestRecords();
  for (let i = 0; i < 6; i++) records.add(record(`req-0000000${i}`, now - (6 - i) * HOUR));
  t.equal(records.expire(now, 2 * HOUR + 1, 3), 3, "the 6 h, 5 h and 4 h old ones go");
  t.same(
    ["req-00000003", "req-00000004", "req-00000005"].map((id) => records.has(id)),
    [true, true, true],
  );
  t.equal(records.expire(now, 1, 3), 0, "never below the count kept, however old");
  t.equal(records.expire(now, 1, 1), 2, "old and beyond the count: forgotten");
  t.equal(records.size, 1);

  const recent = new RequestRecords();
  for (let i = 0; i < 10; i++) recent.add(record(`req-1000000${i}`, now - i));
  t.equal(recent.expire(now, HOUR, 2), 0, "young ones are kept beyond the count");

  // The real limits.
  t.equal(RETAIN_MS, 24 * HOUR);
  t.equal(RETAIN_COUNT, 100_000);
  const many = new RequestRecords();
  for (let i = 0; i < RETAIN_COUNT + 5; i++)
    many.add(record(`old-${String(i).padStart(8, "0")}`, 0));
  t.equal(many.expire(RETAIN_MS + 1), 5, "a day and a second later, the 5 oldest go");
  t.equal(many.size, RETAIN_COUNT);
  t.notOk(many.has("old-00000004"));
  t.ok(many.has("old-00000005"));
  t.end();
});

t.test("lines round-trip, with and without the jobs they carry", (t) => {
  const r = record("3f2a9c1e-0b7d-4e55-9a61-2c8f0d4b7e19", 1234);
  const jobs = ['{"id":1,"x":"a\\nb"}\n', '{"id":2}\n'];
  const text = requestLine(r) + requestLine({ ...r, id: "req-00000002" }, jobs);
  t.equal(text.split("\n").length, 3, "one line each, whatever the jobs hold");
  const parsed = parseRequests(text);
  t.same(parsed.bad, []);
  t.equal(parsed.torn, null);
  t.same(parsed.lines[0], { record: r, jobs: [] });
  t.same(parsed.lines[1], {
    record: { ...r, id: "req-00000002" },
    jobs: [{ id: 1, x: "a\nb" }, { id: 2 }],
  });
  const all = new RequestRecords();
  for (const l of parsed.lines) all.add(l.record);
  t.equal(
    all.toText(),
    requestLine(r) + requestLine({ ...r, id: "req-00000002" }),
    "rewritten without jobs",
  );
  t.end();
});

t.test("a torn, bad or hostile file loses only the lines it spoils", (t) => {
  const good = requestLine(record("req-00000001", 1));
  const good2 = requestLine(record("req-00000002", 2));
  t.same(parseRequests(""), { lines: [], bad: [], torn: null });
  // Every cut of a two-line file: the lines before the cut stay, the rest is torn.
  const text = good + good2;
  for (let cut = 0; cut <= text.length; cut++) {
    const p = parseRequests(text.slice(0, cut));
    const whole = cut >= text.length ? 2 : cut >= good.length ? 1 : 0;
    if (p.lines.length !== whole || p.bad.length !== 0) {
      t.fail(`cut at ${cut}: ${p.lines.length} lines, ${p.bad.length} bad`);
      break;
    }
  }
  t.pass("every cut keeps the whole lines before it");
  const hostile = [
    "not json",
    "[]",
    "null",
    '{"id":"req-00000003"}',
    '{"id":"a b","method":"run","digest":"d","at":1,"reply":null}',
    '{"id":"req-00000004","method":"run","digest":"d","at":-1,"reply":null}',
    '{"id":"req-00000005","method":"run","digest":"d","at":1,"reply":null,"jobs":{}}',
    '{"__proto__":{"x":1},"id":"req-00000006"}',
    "",
  ];
  const p = parseRequests(good + hostile.join("\n") + "\n" + good2 + '{"id":"torn');
  t.equal(p.lines.length, 2, "the good lines around them are read");
  t.same(
    p.bad.map((b) => b.line),
    [2, 3, 4, 5, 6, 7, 8, 9, 10],
    "each bad one is reported by its line number",
  );
  t.match(p.bad[0].reason, /not valid JSON/);
  t.match(p.bad[3].reason, /request.method: expected a string/);
  t.match(p.bad[4].reason, /request.id: is not a request id/);
  t.match(p.bad[6].reason, /request.jobs: expected an array/);
  t.equal(p.torn, '{"id":"torn');
  t.end();
});

t.test("request ids: what abs makes and what a script may choose", (t) => {
  for (const ok of [
    "3f2a9c1e-0b7d-4e55-9a61-2c8f0d4b7e19",
    "nightly.2026-12-08:home",
    "abcdefgh",
  ]) {
    t.ok(REQUEST_ID_RE.test(ok), ok);
  }
  for (const bad of [
    "",
    "short",
    "-leading-dash",
    "a b c d e",
    "x".repeat(65),
    "naïve-id-1",
    "id\nforged1",
  ]) {
    t.notOk(REQUEST_ID_RE.test(bad), JSON.stringify(bad));
  }
  t.end();
});
