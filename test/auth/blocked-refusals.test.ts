// The summary of connections refused from blocked addresses, on a fake
// clock: one line per address and period, bounded memory and a bounded
// number of lines under a flood from many addresses.

import t from "tap";
import { BlockedRefusals, SUMMARY_LINES } from "../../src/auth/blocked-refusals.js";
import { within } from "../fixtures/link-harness.js";
import { CollectingLogger } from "../helpers/log.js";

const T0 = Date.UTC(2026, 11, 8, 1, 0, 0);
const RULE = { maxFailures: 10, windowMs: 60_000 };

function setup(maxAddresses = 10_000): {
  log: BlockedRefusals;
  logger: CollectingLogger;
  clock: { now: number };
} {
  const clock = { now: T0 };
  const logger = new CollectingLogger();
  // A period longer than the test: close() logs what was counted.
  const log = new BlockedRefusals(
    { summaryMs: 3_600_000, maxAddresses, rule: RULE, now: () => clock.now },
    logger,
  );
  t.teardown(() => log.close());
  return { log, logger, clock };
}

t.test("one line per address, with the times and the rule", (t) => {
  const { log, logger, clock } = setup();
  log.note("127.0.0.2", 300_000);
  clock.now += 1_000;
  log.note("127.0.0.2", 299_000);
  clock.now += 4_000;
  log.note("127.0.0.2", 295_000);
  log.note("::ffff:192.0.2.7", 1_000);
  clock.now += 10_000;
  log.close();
  t.same(logger.messages("warn"), [
    "slave link: refused 3 new connections from 127.0.0.2 between 2026-12-08T01:00:00Z and 2026-12-08T01:00:05Z while it was blocked (10 failed authentications within 60 s; blocked until 2026-12-08T01:05:00Z)",
    "slave link: refused 1 new connection from 192.0.2.7 between 2026-12-08T01:00:05Z and 2026-12-08T01:00:05Z while it was blocked (10 failed authentications within 60 s; the block ended at 2026-12-08T01:00:06Z)",
  ]);
  t.equal(log.size, 0);
  log.close();
  t.equal(logger.lines.length, 2, "nothing counted, nothing logged");
  t.end();
});

t.test("a flood from many addresses: bounded memory and lines", (t) => {
  const { log, logger } = setup(30);
  for (let a = 0; a < 1000; a++) {
    for (let i = 0; i <= a % 3; i++) log.note(`10.0.${a >> 8}.${a & 255}`, 60_000);
  }
  t.equal(log.size, 30, "at most maxAddresses counted one by one");
  log.close();
  const lines = logger.messages("warn");
  t.equal(lines.length, SUMMARY_LINES + 1);
  t.match(lines[0], /^slave link: refused 3 new connections from 10\.0\.0\.2 between /);
  // 1000 addresses sent 1, 2, 3, 1, 2, 3, ... connections: 1999 in all.
  const named = lines
    .slice(0, SUMMARY_LINES)
    .reduce((n, l) => n + Number(/refused (\d+) new/.exec(l)?.[1]), 0);
  t.match(
    lines[SUMMARY_LINES],
    new RegExp(
      `^slave link: refused ${1999 - named} new connections from 10 more blocked addresses and others not counted one by one between .* while they were blocked \\(10 failed authentications within 60 s\\)$`,
    ),
  );
  t.end();
});

t.test("a period ends on its own and the next starts with the next refusal", async (t) => {
  const logger = new CollectingLogger();
  const log = new BlockedRefusals({ summaryMs: 50, rule: RULE }, logger);
  t.teardown(() => log.close());
  log.note("127.0.0.2", 60_000);
  // (within keeps the process up: the summary timer does not.)
  const first = await within(logger.next(/refused 1 new connection from /), "the first line");
  t.match(first, /from 127\.0\.0\.2 .*blocked until/);
  log.note("127.0.0.2", 60_000);
  log.note("127.0.0.2", 60_000);
  await within(logger.next(/refused 2 new connections from 127\.0\.0\.2/), "the second line");
  t.equal(logger.lines.length, 2);
});
