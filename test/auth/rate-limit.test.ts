// The per-address limit on failed attempts, on a fake clock.

import t from "tap";
import { FailureRateLimiter, addressKey } from "../../src/auth/rate-limit.js";

function limiter(
  opts: {
    maxFailures?: number;
    windowMs?: number;
    cooldownMs?: number;
    maxAddresses?: number;
  } = {},
) {
  let now = 1_000_000;
  const l = new FailureRateLimiter({
    maxFailures: 3,
    windowMs: 1000,
    cooldownMs: 5000,
    ...opts,
    now: () => now,
  });
  return { l, advance: (ms: number) => (now += ms) };
}

t.test("N failures within the window block the address for the cool-down", (t) => {
  const { l, advance } = limiter();
  t.same(l.recordFailure("192.0.2.1"), { blocked: false, failures: 1 });
  t.same(l.recordFailure("192.0.2.1"), { blocked: false, failures: 2 });
  t.equal(l.blockedFor("192.0.2.1"), 0);
  t.same(l.recordFailure("192.0.2.1"), { blocked: true, failures: 3 });
  t.equal(l.blockedFor("192.0.2.1"), 5000);
  t.equal(l.blockedFor("192.0.2.2"), 0, "other addresses are free");
  advance(4999);
  t.equal(l.blockedFor("192.0.2.1"), 1);
  advance(1);
  t.equal(l.blockedFor("192.0.2.1"), 0, "the cool-down ends");
  t.same(
    l.recordFailure("192.0.2.1"),
    { blocked: false, failures: 1 },
    "and counting starts afresh",
  );
  t.end();
});

t.test("failures spread over more than the window do not block", (t) => {
  const { l, advance } = limiter();
  for (let i = 0; i < 10; i++) {
    t.equal(l.recordFailure("192.0.2.1").blocked, false);
    advance(600); // two per window at most
  }
  t.end();
});

t.test("IPv4-mapped addresses count as IPv4; IPv6 counts by /64", (t) => {
  t.equal(addressKey("::ffff:192.0.2.1"), "192.0.2.1");
  t.equal(addressKey("192.0.2.1"), "192.0.2.1");
  t.equal(addressKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  t.equal(addressKey("2001:db8:1:2::ff"), "2001:db8:1:2::/64");
  t.equal(addressKey("2001:DB8:0001:0002::1"), "2001:db8:1:2::/64");
  t.equal(addressKey("::1"), "0:0:0:0::/64");
  const { l } = limiter();
  l.recordFailure("2001:db8:1:2::1");
  l.recordFailure("2001:db8:1:2::2");
  t.equal(l.recordFailure("2001:db8:1:2::3").blocked, true, "one /64, one count");
  t.equal(l.blockedFor("2001:db8:1:3::1"), 0);
  t.end();
});

t.test("memory is bounded: stale entries go first, then the oldest", (t) => {
  const { l, advance } = limiter({ maxAddresses: 3 });
  l.recordFailure("10.0.0.1");
  l.recordFailure("10.0.0.1");
  l.recordFailure("10.0.0.1"); // blocked
  l.recordFailure("10.0.0.2");
  advance(2000); // 10.0.0.2's window is over; 10.0.0.1 is still blocked
  l.recordFailure("10.0.0.3");
  l.recordFailure("10.0.0.4"); // full: the stale 10.0.0.2 is dropped
  t.equal(l.size, 3);
  t.ok(l.blockedFor("10.0.0.1") > 0, "the block survives");
  for (let i = 5; i < 100; i++) l.recordFailure(`10.0.0.${i}`);
  t.equal(l.size, 3, "never more than maxAddresses");
  t.end();
});

t.test("bad options are refused", (t) => {
  t.throws(
    () => new FailureRateLimiter({ maxFailures: 0 }),
    /rate limit maxFailures: expected an integer >= 1, got 0/,
  );
  t.throws(() => new FailureRateLimiter({ windowMs: 1.5 }), /windowMs/);
  t.end();
});
