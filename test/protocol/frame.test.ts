import t, { type Test } from "tap";
import { AbsError, BadArgumentError, FrameTooLargeError, ProtocolError } from "../../src/errors.js";
import {
  DEFAULT_MAX_DEPTH,
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  ETX,
  FrameDecoder,
  nestingExceeds,
} from "../../src/protocol/frame.js";
import { below, prng, thrown } from "./helpers.js";

const MESSAGES: object[] = [
  { type: "hello", version: 1, name: "green-acres", mode: "realm-key" },
  { type: "progress", jobId: 7, attempt: 1, files: 3, bytes: 4096, path: "/home/é/日本.txt" },
  {
    type: "result",
    message: "tar said:\u0003 \u0000 \n done",
    data: { nested: [1, [2, { x: 3 }]] },
  },
  [],
  ["a string with an ETX \u0003 inside", 42, null, true, -1.5e300],
  { "\u0003": "a key with an ETX" },
];

function frames(...values: object[]): Buffer {
  return Buffer.concat(values.map((v) => encodeFrame(v)));
}

function protocolError(t: Test, err: unknown, message: string | RegExp): void {
  t.ok(err instanceof ProtocolError, `a ProtocolError, got ${String(err)}`);
  t.equal((err as AbsError).code, "PROTOCOL");
  if (typeof message === "string") t.equal((err as Error).message, message);
  else t.match((err as Error).message, message);
}

t.test("encodeFrame writes JSON then one ETX", (t) => {
  const frame = encodeFrame({ a: 1 });
  t.equal(frame.toString("utf8"), '{"a":1}\u0003');
  t.end();
});

t.test("a payload containing ETX and every control character round-trips", (t) => {
  const text = Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join("") + "\u007f";
  const frame = encodeFrame({ text });
  // JSON.stringify escapes control characters, so the only 0x03 byte is the terminator.
  t.equal(frame.indexOf(ETX), frame.length - 1);
  t.same(new FrameDecoder().push(frame), [{ text }]);
  t.end();
});

t.test("encodeFrame refuses what it cannot send", (t) => {
  const big = { data: "x".repeat(100) };
  const err = thrown(() => encodeFrame(big, 50));
  t.ok(err instanceof FrameTooLargeError);
  t.equal((err as AbsError).code, "FRAME_TOO_LARGE");
  t.equal((err as Error).message, "frame exceeds the limit of 50 bytes");
  // Exactly at the limit is fine: the limit counts the JSON, not the ETX.
  const json = JSON.stringify(big);
  t.equal(encodeFrame(big, Buffer.byteLength(json)).length, json.length + 1);

  const cycle: Record<string, unknown> = {};
  cycle["self"] = cycle;
  const cycleErr = thrown(() => encodeFrame(cycle));
  t.ok(cycleErr instanceof AbsError);
  t.equal((cycleErr as AbsError).code, "INTERNAL");
  t.match((cycleErr as Error).message, /^cannot encode message as JSON: /);
  const fnErr = thrown(() => encodeFrame(() => 1));
  t.equal((fnErr as AbsError).code, "INTERNAL");
  t.equal((fnErr as Error).message, "cannot encode message as JSON: not a JSON value");
  t.end();
});

t.test("frames split at every byte boundary decode the same", (t) => {
  const bytes = frames(...MESSAGES);
  t.same(new FrameDecoder().push(bytes), MESSAGES, "all in one chunk");
  for (let cut = 0; cut <= bytes.length; cut++) {
    const decoder = new FrameDecoder();
    const got = [...decoder.push(bytes.subarray(0, cut)), ...decoder.push(bytes.subarray(cut))];
    if (JSON.stringify(got) !== JSON.stringify(MESSAGES)) {
      t.fail(`cut at byte ${cut}`, { got });
      break;
    }
    t.equal(decoder.bufferedBytes, 0);
  }
  // And every pair of cuts: three chunks, so frames also end and start mid-chunk.
  let pairs = 0;
  for (let a = 0; a <= bytes.length; a += 3) {
    for (let b = a; b <= bytes.length; b++) {
      const decoder = new FrameDecoder();
      const got = [
        ...decoder.push(bytes.subarray(0, a)),
        ...decoder.push(bytes.subarray(a, b)),
        ...decoder.push(bytes.subarray(b)),
      ];
      if (JSON.stringify(got) !== JSON.stringify(MESSAGES)) {
        t.fail(`cuts at bytes ${a} and ${b}`, { got });
        t.end();
        return;
      }
      pairs++;
    }
  }
  t.ok(pairs > 1000, `${pairs} three-chunk splits agree`);
  const decoder = new FrameDecoder();
  const oneByOne: unknown[] = [];
  for (let i = 0; i < bytes.length; i++) oneByOne.push(...decoder.push(bytes.subarray(i, i + 1)));
  t.same(oneByOne, MESSAGES, "one byte per chunk");
  t.end();
});

t.test("a large frame in many small chunks", (t) => {
  const message = { data: "y".repeat(DEFAULT_MAX_FRAME_BYTES - 20) };
  const bytes = encodeFrame(message);
  const decoder = new FrameDecoder();
  const got: unknown[] = [];
  let most = 0;
  for (let i = 0; i < bytes.length; i += 7) {
    got.push(...decoder.push(bytes.subarray(i, i + 7)));
    most = Math.max(most, decoder.bufferedBytes);
  }
  t.same(got, [message]);
  t.equal(most, bytes.length - 1 - ((bytes.length - 1) % 7), "held the frame, not more");
  t.equal(decoder.bufferedBytes, 0);
  // The decoder is still usable for the next frame.
  t.same(decoder.push(encodeFrame({ next: true })), [{ next: true }]);
  t.end();
});

t.test("a frame over the limit fails before its ETX arrives, memory bounded", (t) => {
  const limit = 1000;
  const decoder = new FrameDecoder({ maxFrameBytes: limit });
  const chunk = Buffer.alloc(100, 0x20);
  let pushes = 0;
  let err: unknown;
  for (;;) {
    try {
      decoder.push(chunk);
    } catch (e) {
      err = e;
      break;
    }
    pushes++;
    t.ok(decoder.bufferedBytes <= limit);
    if (pushes > 100) break;
  }
  t.equal(pushes, 10, "10 chunks fill the limit exactly; the 11th fails");
  t.ok(err instanceof FrameTooLargeError);
  t.equal((err as AbsError).code, "FRAME_TOO_LARGE");
  t.equal((err as Error).message, "frame exceeds the limit of 1000 bytes");
  t.equal(decoder.bufferedBytes, 0, "nothing held once failed");
  t.end();
});

t.test("frame size limit: exact boundaries", (t) => {
  const limit = 64;
  const cases: { name: string; chunks: Buffer[]; ok: boolean }[] = [
    { name: "exactly the limit, one chunk", chunks: [jsonOf(limit), etx()], ok: true },
    { name: "one byte over, one chunk", chunks: [jsonOf(limit + 1), etx()], ok: false },
    {
      name: "one byte over with ETX in the same chunk",
      chunks: [Buffer.concat([jsonOf(limit + 1), etx()])],
      ok: false,
    },
    {
      name: "exactly the limit, split",
      chunks: [jsonOf(limit).subarray(0, 10), jsonOf(limit).subarray(10), etx()],
      ok: true,
    },
    {
      name: "one byte over, ETX after buffered part",
      chunks: [
        jsonOf(limit + 1).subarray(0, 10),
        Buffer.concat([jsonOf(limit + 1).subarray(10), etx()]),
      ],
      ok: false,
    },
    { name: "a huge chunk without ETX", chunks: [Buffer.alloc(10 * 1024 * 1024, 0x31)], ok: false },
  ];
  for (const c of cases) {
    const decoder = new FrameDecoder({ maxFrameBytes: limit });
    let err: unknown;
    const got: unknown[] = [];
    try {
      for (const chunk of c.chunks) got.push(...decoder.push(chunk));
    } catch (e) {
      err = e;
    }
    if (c.ok) {
      t.equal(err, undefined, c.name);
      t.same(got, [JSON.parse(jsonOf(limit).toString())], c.name);
    } else {
      t.ok(err instanceof FrameTooLargeError, c.name);
    }
    t.ok(decoder.bufferedBytes <= limit, `${c.name}: buffered ${decoder.bufferedBytes}`);
  }
  t.end();
});

/** A JSON string literal of exactly `n` bytes. */
function jsonOf(n: number): Buffer {
  return Buffer.from(`"${"z".repeat(n - 2)}"`);
}
function etx(): Buffer {
  return Buffer.from([ETX]);
}

t.test("malformed frames are ProtocolErrors with a clear message", (t) => {
  const cases: { name: string; bytes: Buffer; message: string | RegExp }[] = [
    { name: "empty frame", bytes: etx(), message: "empty frame: ETX with no JSON before it" },
    {
      name: "blank frame",
      bytes: Buffer.from(" \t\r\n\u0003"),
      message: "empty frame: ETX with no JSON before it",
    },
    {
      name: "invalid JSON",
      bytes: Buffer.from('{"a":x}\u0003'),
      message: /^frame is not valid JSON: .*token/,
    },
    {
      name: "truncated JSON",
      bytes: Buffer.from('{"a":\u0003'),
      message: /^frame is not valid JSON: /,
    },
    {
      name: "two values in one frame",
      bytes: Buffer.from("{} {}\u0003"),
      message: /^frame is not valid JSON: /,
    },
    {
      name: "invalid UTF-8",
      bytes: Buffer.from([0x22, 0xff, 0xfe, 0x22, ETX]),
      message: "frame is not valid UTF-8",
    },
    {
      name: "overlong UTF-8 encoding of a quote",
      bytes: Buffer.from([0x22, 0xc0, 0xa2, 0x22, ETX]),
      message: "frame is not valid UTF-8",
    },
    {
      name: "a byte order mark is not JSON",
      bytes: Buffer.from([0xef, 0xbb, 0xbf, 0x31, ETX]),
      message: /^frame is not valid JSON: /,
    },
    {
      name: "100k nested arrays",
      bytes: Buffer.from("[".repeat(100_000) + "]".repeat(100_000) + "\u0003"),
      message: "frame nests arrays and objects deeper than 64 levels",
    },
    {
      name: "100k unclosed arrays",
      bytes: Buffer.from("[".repeat(100_000) + "\u0003"),
      message: "frame nests arrays and objects deeper than 64 levels",
    },
    {
      name: "nested objects one past the limit",
      bytes: Buffer.from('{"a":'.repeat(65) + "1" + "}".repeat(65) + "\u0003"),
      message: "frame nests arrays and objects deeper than 64 levels",
    },
  ];
  for (const c of cases) {
    t.test(c.name, (t) => {
      const decoder = new FrameDecoder({ maxFrameBytes: 1024 * 1024 });
      protocolError(
        t,
        thrown(() => decoder.push(c.bytes)),
        c.message,
      );
      t.end();
    });
  }
  t.end();
});

t.test("control characters from the frame are escaped in the error message", (t) => {
  const err = thrown(() => new FrameDecoder().push(Buffer.from("\u0001\u001b[31m\u0003")));
  protocolError(t, err, /^frame is not valid JSON: /);
  const message = (err as Error).message;
  t.ok(message.includes("\\x01"), message);
  t.ok(
    [...message].every((c) => c.charCodeAt(0) >= 0x20 && c.charCodeAt(0) !== 0x7f),
    "no raw control characters",
  );
  t.end();
});

t.test("nesting up to the limit is accepted; brackets inside strings do not count", (t) => {
  const deep = "[".repeat(DEFAULT_MAX_DEPTH) + "]".repeat(DEFAULT_MAX_DEPTH);
  t.equal(new FrameDecoder().push(Buffer.from(deep + "\u0003")).length, 1);
  const inString = { s: "[".repeat(1000) + '\\"{{{{' + "{".repeat(1000) };
  t.same(new FrameDecoder().push(encodeFrame(inString)), [inString]);
  t.same(new FrameDecoder({ maxDepth: 2 }).push(Buffer.from("[[1]]\u0003")), [[[1]]]);
  const err = thrown(() => new FrameDecoder({ maxDepth: 2 }).push(Buffer.from("[[[1]]]\u0003")));
  protocolError(t, err, "frame nests arrays and objects deeper than 2 levels");
  t.end();
});

t.test("nestingExceeds", (t) => {
  const cases: [string, number, boolean][] = [
    ["1", 0, false],
    ["[]", 0, true],
    ["[]", 1, false],
    ['{"a":[{"b":[]}]}', 4, false],
    ['{"a":[{"b":[]}]}', 3, true],
    ['["[[[[", "\\"[[[["]', 1, false],
    ['["\\\\", [[]]]', 2, true],
    ["[][][][]", 1, false],
  ];
  for (const [json, max, want] of cases) {
    t.equal(nestingExceeds(Buffer.from(json), max), want, `${json} deeper than ${max}`);
  }
  t.end();
});

t.test("after an error the decoder is poisoned", (t) => {
  const decoder = new FrameDecoder();
  // Garbage, then a valid frame in the same chunk: the valid one is not reached.
  const bytes = Buffer.concat([Buffer.from("garbage\u0003"), encodeFrame({ type: "heartbeat" })]);
  const first = thrown(() => decoder.push(bytes));
  protocolError(t, first, /^frame is not valid JSON: /);
  const second = thrown(() => decoder.push(encodeFrame({ type: "heartbeat", time: 1 })));
  t.equal(second, first, "the same error again, not the valid frame");

  const big = new FrameDecoder({ maxFrameBytes: 10 });
  const tooLarge = thrown(() => big.push(Buffer.alloc(11)));
  t.ok(tooLarge instanceof FrameTooLargeError);
  t.ok(thrown(() => big.push(encodeFrame({}))) instanceof FrameTooLargeError);
  t.end();
});

t.test("non-object JSON values are returned as they are", (t) => {
  t.same(new FrameDecoder().push(Buffer.from('5\u0003"x"\u0003null\u0003 [1] \u0003')), [
    5,
    "x",
    null,
    [1],
  ]);
  t.end();
});

t.test("bad options are refused", (t) => {
  for (const options of [{ maxFrameBytes: 0 }, { maxFrameBytes: 1.5 }, { maxDepth: -1 }]) {
    const err = thrown(() => new FrameDecoder(options));
    t.ok(err instanceof BadArgumentError, JSON.stringify(options));
  }
  t.equal(new FrameDecoder().maxFrameBytes, DEFAULT_MAX_FRAME_BYTES);
  t.equal(new FrameDecoder().maxDepth, DEFAULT_MAX_DEPTH);
  t.end();
});

// Bytes the fuzzer draws from: mostly JSON punctuation and ETX, so random
// input often forms (or nearly forms) frames, plus arbitrary bytes.
const ALPHABET = Buffer.from('{}[]":,\\ 0123456789-.eEtruefalsnl\u0003\u0003\u0003');

/** A random JSON value, nested at most `depth` levels. */
function randomJson(random: () => number, depth: number): unknown {
  const kind = below(random, depth > 0 ? 6 : 4);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return random() < 0.5;
    case 2:
      return below(random, 2_000_001) - 1_000_000;
    case 3:
      return Array.from({ length: below(random, 6) }, () =>
        String.fromCharCode(below(random, 0x3000)),
      ).join("");
    case 4:
      return Array.from({ length: below(random, 4) }, () => randomJson(random, depth - 1));
    default:
      return Object.fromEntries(
        Array.from({ length: below(random, 4) }, (_, i) => [
          `k${i}`,
          randomJson(random, depth - 1),
        ]),
      );
  }
}

/**
 * The input of one fuzz round: a third are random bytes; the rest are valid
 * frames with, half the time, a few bytes overwritten. Valid rounds must
 * decode to exactly what was encoded.
 */
function fuzzInput(random: () => number): { bytes: Buffer; expected: unknown[] | undefined } {
  if (random() < 1 / 3) {
    const bytes = Buffer.alloc(below(random, 600));
    for (let i = 0; i < bytes.length; i++) {
      bytes[i] = random() < 0.8 ? ALPHABET[below(random, ALPHABET.length)] : below(random, 256);
    }
    return { bytes, expected: undefined };
  }
  const values = Array.from({ length: 1 + below(random, 5) }, () => [randomJson(random, 4)]);
  const bytes = Buffer.concat(values.map((v) => encodeFrame(v)));
  if (random() < 0.5) return { bytes, expected: values };
  for (let n = 1 + below(random, 3); n > 0; n--) {
    bytes[below(random, bytes.length)] =
      random() < 0.5 ? ALPHABET[below(random, ALPHABET.length)] : below(random, 256);
  }
  return { bytes, expected: undefined };
}

t.test("random and mutated input never throws anything but AbsError", (t) => {
  const random = prng(0xab5);
  const outcomes = { failed: 0, decoded: 0, exact: 0 };
  for (let round = 0; round < 2000; round++) {
    const { bytes, expected } = fuzzInput(random);
    // Small limits in some rounds, so the size check is fuzzed too.
    const limit = random() < 0.3 ? 1 + below(random, 128) : DEFAULT_MAX_FRAME_BYTES;
    const decoder = new FrameDecoder({ maxFrameBytes: limit, maxDepth: 1 + below(random, 8) });
    const got: unknown[] = [];
    let failed: unknown;
    for (let start = 0; start < bytes.length;) {
      const end = start + 1 + below(random, 64);
      try {
        got.push(...decoder.push(bytes.subarray(start, end)));
      } catch (err) {
        if (!(err instanceof AbsError)) {
          t.fail(`round ${round}: threw ${String(err)}`);
          t.end();
          return;
        }
        if (failed !== undefined && err !== failed) {
          t.fail(`round ${round}: a poisoned decoder threw a new error`);
          t.end();
          return;
        }
        failed = err;
      }
      if (decoder.bufferedBytes > limit) {
        t.fail(`round ${round}: buffered ${decoder.bufferedBytes} > ${limit}`);
        t.end();
        return;
      }
      start = end;
    }
    if (failed !== undefined) outcomes.failed++;
    else outcomes.decoded++;
    if (expected !== undefined && failed === undefined) {
      if (JSON.stringify(got) !== JSON.stringify(expected)) {
        t.fail(`round ${round}: decoded values differ`, { got, expected });
        t.end();
        return;
      }
      outcomes.exact++;
    }
  }
  // Every path was exercised, so the loop tested something.
  t.ok(outcomes.failed > 200, `${outcomes.failed} rounds failed cleanly`);
  t.ok(outcomes.decoded > 200, `${outcomes.decoded} rounds decoded`);
  t.ok(outcomes.exact > 200, `${outcomes.exact} valid rounds decoded exactly`);
  t.end();
});

t.test("a client trusting its peer may skip the depth check, nothing else", (t) => {
  const deep = Buffer.from("[".repeat(1000) + "]".repeat(1000) + "\u0003");
  const trusting = new FrameDecoder({ checkDepth: false });
  const [value] = trusting.push(deep);
  t.ok(Array.isArray(value), "1000 levels parsed");
  t.throws(() => new FrameDecoder({ checkDepth: false }).push(Buffer.from("{nope\u0003")), {
    code: "PROTOCOL",
    message: /^frame is not valid JSON: /,
  });
  t.throws(() => new FrameDecoder().push(deep), {
    message: "frame nests arrays and objects deeper than 64 levels",
  });
  t.end();
});
