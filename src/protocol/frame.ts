// ETX-framed JSON, as in Ganeti's LUXI: every message is one JSON text
// followed by the byte ETX (0x03). Both links (admin Unix socket, slave TCP/TLS)
// use it. Pure code: bytes in, values out; the socket code owns the I/O.
//
// Why ETX is unambiguous: JSON forbids raw control characters inside strings,
// and JSON.stringify writes U+0003 as the escape "\u0003", so a correctly
// encoded frame never contains the byte 0x03 before its end. Multi-byte UTF-8
// sequences only use bytes >= 0x80, so they cannot contain it either.

import { isUtf8 } from "node:buffer";
import {
  AbsError,
  BadArgumentError,
  describeError,
  FrameTooLargeError,
  ProtocolError,
} from "../errors.js";

/** The frame terminator. */
export const ETX = 0x03;

/** Default limit on one frame's JSON, in bytes, ETX excluded: 1 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

/**
 * Default limit on how deeply arrays and objects may nest in one frame.
 * Real messages nest a handful of levels (register → running[] → progress),
 * plus whatever a job's `params` hold; 64 leaves ample room. A deeper frame is
 * hostile or broken, and refusing it here keeps every later recursive walk
 * (JSON.stringify, logging, validation) safe from stack overflow.
 */
export const DEFAULT_MAX_DEPTH = 64;

/**
 * Encodes one message as a frame: its JSON followed by ETX.
 *
 * Refuses a message whose JSON exceeds `maxFrameBytes` (default 1 MiB) with
 * FrameTooLargeError, so the sender gets a clear local error instead of the
 * peer closing the connection. A value that JSON cannot represent (a cycle,
 * a BigInt) is a bug in the caller and throws AbsError INTERNAL.
 */
export function encodeFrame(message: object, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  let json: string | undefined;
  try {
    json = JSON.stringify(message);
  } catch (err) {
    throw new AbsError("INTERNAL", `cannot encode message as JSON: ${describeError(err)}`, {
      cause: err,
    });
  }
  if (json === undefined) {
    throw new AbsError("INTERNAL", "cannot encode message as JSON: not a JSON value");
  }
  const length = Buffer.byteLength(json, "utf8");
  if (length > maxFrameBytes) throw new FrameTooLargeError(maxFrameBytes);
  const frame = Buffer.allocUnsafe(length + 1);
  frame.write(json, 0, "utf8");
  frame[length] = ETX;
  return frame;
}

export interface FrameDecoderOptions {
  /**
   * Largest JSON text accepted in one frame, in bytes, ETX excluded.
   * Default 1 MiB. The decoder never holds more than this many bytes of an
   * unfinished frame: a longer one fails as soon as the limit is passed, even
   * if its ETX never comes.
   */
  maxFrameBytes?: number;
  /** Deepest nesting of arrays and objects accepted in one frame. Default 64. */
  maxDepth?: number;
  /**
   * Whether to check the nesting depth at all. Default true. The check scans
   * every byte in JavaScript (some 200 ms for a 35 MB reply); a client
   * reading its own master's replies (whom the socket's mode already trusts)
   * may skip it.
   */
  checkDepth?: boolean;
  /**
   * Whether to JSON.parse each frame. Default true. False returns each
   * frame's text (checked to be UTF-8, not parsed): for a client that passes
   * a large reply on as it is.
   */
  parse?: boolean;
}

/**
 * Splits a byte stream into frames and parses each one.
 *
 * `push(chunk)` returns the values of every frame the chunk completes, in
 * order. It throws only AbsError: FrameTooLargeError for a frame over the
 * limit, ProtocolError for an empty frame, invalid UTF-8, invalid JSON or
 * nesting beyond `maxDepth`. After an error the decoder is poisoned: every
 * later `push` throws the same error, because the caller is expected to close
 * the connection (the stream position is lost, so nothing after the bad frame
 * can be trusted). Frames completed earlier in the same chunk as the bad one
 * are not returned; the protocol's acknowledgements make the peer resend what
 * mattered on its next connection.
 */
export class FrameDecoder {
  readonly maxFrameBytes: number;
  readonly maxDepth: number;
  private readonly checkDepth: boolean;
  private readonly parseFrames: boolean;

  // The unfinished frame: bytes [0, length) of `buffer`. A single buffer that
  // grows by doubling (capped at maxFrameBytes) rather than a list of chunks:
  // appending stays amortised O(n) like a chunk list, but a frame trickling in
  // one byte per chunk costs no per-chunk object, so memory is bounded by the
  // byte limit alone.
  private buffer: Buffer = Buffer.alloc(0);
  private length = 0;
  private failure: AbsError | undefined;

  constructor(options: FrameDecoderOptions = {}) {
    this.maxFrameBytes = positiveInt(
      "maxFrameBytes",
      options.maxFrameBytes,
      DEFAULT_MAX_FRAME_BYTES,
    );
    this.maxDepth = positiveInt("maxDepth", options.maxDepth, DEFAULT_MAX_DEPTH);
    this.checkDepth = options.checkDepth ?? true;
    this.parseFrames = options.parse ?? true;
  }

  /** Bytes held for the unfinished frame; never more than maxFrameBytes. */
  get bufferedBytes(): number {
    return this.length;
  }

  /** Feeds bytes from the stream; returns the values of the frames they complete. */
  push(chunk: Buffer): unknown[] {
    if (this.failure !== undefined) throw this.failure;
    try {
      return this.split(chunk);
    } catch (err) {
      // Everything thrown below is already an AbsError; the wrap is a guard so
      // the promise "only AbsError escapes" holds even against a bug.
      this.failure =
        err instanceof AbsError
          ? err
          : new ProtocolError(`frame decoder failed: ${describeError(err)}`);
      this.buffer = Buffer.alloc(0);
      this.length = 0;
      throw this.failure;
    }
  }

  private split(chunk: Buffer): unknown[] {
    const values: unknown[] = [];
    let start = 0;
    // Only the new chunk is scanned for ETX: bytes already buffered are known
    // not to contain one.
    for (let end = chunk.indexOf(ETX, start); end !== -1; end = chunk.indexOf(ETX, start)) {
      const size = this.length + (end - start);
      if (size > this.maxFrameBytes) throw new FrameTooLargeError(this.maxFrameBytes);
      let frame: Buffer;
      if (this.length === 0) {
        // The whole frame is inside this chunk: parse it in place, no copy.
        frame = chunk.subarray(start, end);
      } else {
        this.append(chunk.subarray(start, end));
        frame = this.buffer.subarray(0, this.length);
      }
      values.push(this.parse(frame));
      this.reset();
      start = end + 1;
    }
    const rest = chunk.length - start;
    if (rest > 0) {
      if (this.length + rest > this.maxFrameBytes) {
        throw new FrameTooLargeError(this.maxFrameBytes);
      }
      // Copied, not kept as a view: a view would pin the caller's whole chunk
      // in memory, and the caller may reuse it.
      this.append(chunk.subarray(start));
    }
    return values;
  }

  private append(bytes: Buffer): void {
    const needed = this.length + bytes.length;
    if (needed > this.buffer.length) {
      const capacity = Math.min(
        this.maxFrameBytes,
        Math.max(needed, this.buffer.length * 2, INITIAL_CAPACITY),
      );
      const grown = Buffer.allocUnsafe(capacity);
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    bytes.copy(this.buffer, this.length);
    this.length = needed;
  }

  private reset(): void {
    this.length = 0;
    // Keep a small buffer for the next frame, but let a large one go so one
    // big message does not pin up to maxFrameBytes for the connection's life.
    if (this.buffer.length > RETAINED_CAPACITY) this.buffer = Buffer.alloc(0);
  }

  private parse(frame: Buffer): unknown {
    if (isBlank(frame)) {
      throw new ProtocolError("empty frame: ETX with no JSON before it");
    }
    // Checked before decoding: Buffer#toString would silently replace bad
    // sequences with U+FFFD and so alter what the peer sent.
    if (!isUtf8(frame)) throw new ProtocolError("frame is not valid UTF-8");
    if (!this.parseFrames) return frame.toString("utf8");
    if (this.checkDepth && nestingExceeds(frame, this.maxDepth)) {
      throw new ProtocolError(`frame nests arrays and objects deeper than ${this.maxDepth} levels`);
    }
    try {
      return JSON.parse(frame.toString("utf8"));
    } catch (err) {
      // V8's parser is iterative today, but older or other engines throw
      // RangeError on deep nesting; the depth check above should prevent it.
      if (err instanceof RangeError) {
        throw new ProtocolError("frame nests arrays and objects too deeply to parse");
      }
      throw new ProtocolError(`frame is not valid JSON: ${printable(describeError(err))}`);
    }
  }
}

// First allocation for a frame that spans chunks, and the most kept between
// frames, in bytes.
const INITIAL_CAPACITY = 4096;
const RETAINED_CAPACITY = 64 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * Whether arrays and objects in `json` nest deeper than `maxDepth`, by one
 * linear scan that skips string contents (where brackets mean nothing). For
 * valid JSON the count is exact; for invalid JSON it may be anything, but then
 * JSON.parse refuses the frame anyway.
 */
export function nestingExceeds(json: Uint8Array, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const byte = json[i];
    if (inString) {
      if (byte === BACKSLASH)
        i++; // skip the escaped character, e.g. \"
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === OPEN_BRACKET || byte === OPEN_BRACE) {
      if (++depth > maxDepth) return true;
    } else if (byte === CLOSE_BRACKET || byte === CLOSE_BRACE) {
      depth--;
    }
  }
  return false;
}

/** True when the frame holds only JSON whitespace (or nothing). */
function isBlank(frame: Buffer): boolean {
  for (const byte of frame) {
    if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) return false;
  }
  return true;
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new BadArgumentError(`${name}: expected an integer >= 1, got ${String(value)}`, name);
  }
  return value;
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/g;

/** Escapes control characters so a hostile frame quoted in an error cannot forge log lines. */
function printable(text: string): string {
  return text.replace(CONTROL_CHARS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
