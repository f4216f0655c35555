// The disaster log's key and MACs, pure: the key is derived (HKDF, labelled)
// and not the realm key itself; a sealed line opens to the exact record
// text; any change, another key, or no MAC at all is refused with a reason.

import { createHmac, hkdfSync, randomBytes } from "node:crypto";
import t from "tap";
import {
  DISASTER_LOG_LABEL,
  deriveDisasterLogKey,
  openRecord,
  sealRecord,
} from "../../src/auth/disaster-log-key.js";

const realmKey = randomBytes(32);
const key = deriveDisasterLogKey(realmKey, "/etc/abs/realm.key");

t.test("the key is HKDF-SHA256 of the key file's bytes under a versioned label", (t) => {
  t.equal(DISASTER_LOG_LABEL, "abs-disaster-log-v1");
  t.same(
    key.bytes,
    Buffer.from(hkdfSync("sha256", realmKey, Buffer.alloc(0), "abs-disaster-log-v1", 32)),
  );
  t.notSame(key.bytes, realmKey, "never the realm key itself");
  t.same(deriveDisasterLogKey(realmKey, "x").bytes, key.bytes, "the same bytes give the same key");
  t.notSame(deriveDisasterLogKey(randomBytes(32), "x").bytes, key.bytes);
  t.end();
});

t.test("a sealed line opens to its record; a changed one does not", (t) => {
  const record = JSON.stringify({ time: 5, slave: "s", jobId: 50, outcome: "succeeded" });
  const line = sealRecord(key, record);
  t.match(line, /^\{"time":5,"slave":"s","jobId":50,"outcome":"succeeded","mac":"[0-9a-f]{64}"\}$/);
  t.same(
    JSON.parse(line),
    { ...JSON.parse(record), mac: line.slice(-66, -2) },
    "still one JSON object",
  );
  const mac = createHmac("sha256", key.bytes).update(record).digest("hex");
  t.equal(line.slice(-66, -2), mac, "HMAC-SHA256 of the record's exact text");
  t.same(openRecord(key, line), { recordJson: record });

  const refusals: [string, RegExp][] = [
    [
      line.replace('"jobId":50', '"jobId":51'),
      /^the MAC does not verify with the key derived from \/etc\/abs\/realm\.key/,
    ],
    [
      sealRecord(deriveDisasterLogKey(randomBytes(32), "other"), record),
      /^the MAC does not verify/,
    ],
    [record, /^no MAC/],
    [line.replace(/"mac":"[0-9a-f]{4}/, '"mac":"ABCD'), /^no MAC/],
    [line.slice(0, -3) + '"}', /^no MAC/],
    ["", /^no MAC/],
  ];
  for (const [bad, why] of refusals) {
    const r = openRecord(key, bad);
    t.ok("why" in r && why.test(r.why), bad.slice(0, 60));
  }
  t.throws(() => sealRecord(key, "[1]"), /must be a non-empty JSON object/);
  t.end();
});
