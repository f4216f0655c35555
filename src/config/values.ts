// The kinds of values config keys take, each a parser from the text as
// written to a typed value or the reason it is wrong. Pure code.

import path from "node:path";
import { parseCron, type CronSchedule } from "./cron.js";
import { parseDuration } from "./duration.js";
import { parseHostPort, type HostPort } from "./host-port.js";

/** Why a value is wrong: the part after `key "value": ` in a message. */
export class Invalid {
  constructor(readonly why: string) {}
}

/** Reads a value of one key; returns Invalid rather than throwing. */
export type Parser<T> = (text: string) => T | Invalid;

function fromResult<T extends object>(r: T | { why: string }): T | Invalid {
  return "why" in r ? new Invalid(r.why) : r;
}

/** An integer (decimal digits, optional sign) from min to max. */
export function integer(min: number, max: number): Parser<number> {
  return (text) => {
    if (!/^[+-]?\d+$/.test(text)) return new Invalid(`expected an integer from ${min} to ${max}`);
    const n = Number(text);
    if (n < min || n > max) return new Invalid(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

const TRUE = ["true", "yes", "on"];
const FALSE = ["false", "no", "off"];

/** true/yes/on or false/no/off, in any case. */
export const boolean: Parser<boolean> = (text) => {
  const t = text.toLowerCase();
  if (TRUE.includes(t)) return true;
  if (FALSE.includes(t)) return false;
  return new Invalid("expected true or false (or yes/no, on/off)");
};

function orList(values: readonly string[]): string {
  if (values.length <= 1) return values.join("");
  return `${values.slice(0, -1).join(", ")} or ${values[values.length - 1]}`;
}

/** One of a fixed set of words, exactly as listed. */
export function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  return (text) =>
    (values as readonly string[]).includes(text)
      ? (text as T)
      : new Invalid(`expected ${orList(values.map((v) => JSON.stringify(v)))}`);
}

/** A duration in milliseconds, at least `minMs`. */
export function duration(minMs = 0): Parser<number> {
  return (text) => {
    const r = parseDuration(text);
    if ("why" in r) return new Invalid(r.why);
    if (r.ms < minMs) {
      return new Invalid(minMs === 1 ? "must be more than 0" : `must be at least ${minMs}ms`);
    }
    return r.ms;
  };
}

/** An absolute path without `.` or `..` parts, returned normalized (no double or trailing slash). */
export const absolutePath: Parser<string> = (text) => {
  if (!text.startsWith("/")) return new Invalid("expected an absolute path (starting with /)");
  if (text.split("/").some((part) => part === ".." || part === ".")) {
    return new Invalid('a path must not contain "." or ".." parts');
  }
  const normal = path.posix.normalize(text);
  return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
};

/**
 * An absolute path of a program, or a glob of them (`*`, `?` and `[...]`
 * within one part, `**` as a whole part for any number of parts), as
 * allowed_programs takes them (matched in slave/methods/allowed-programs.ts).
 * Without "." or ".." parts, as absolutePath, and not ending in "/". Braces
 * are not special (the list is split at commas), nor is a leading "!"; an
 * unclosed "[" is a literal character.
 */
export const programPattern: Parser<string> = (text) => {
  const p = absolutePath(text);
  if (p instanceof Invalid) return p;
  if (text.endsWith("/")) {
    return new Invalid(
      `a directory is not a program; write ${JSON.stringify(p === "/" ? "/*" : p + "/*")} for the programs in it`,
    );
  }
  return p;
};

/** A non-empty string of at most `max` characters. */
export function text(max = 4096): Parser<string> {
  return (t) => {
    if (t === "") return new Invalid("expected a value, got an empty string");
    if (t.length > max) return new Invalid(`longer than ${max} characters`);
    return t;
  };
}

/** Letters, digits, -, _ and .: the names of job definitions and slaves. At most 255 characters. */
export const name: Parser<string> = (t) => {
  if (t === "") return new Invalid("a name cannot be empty");
  if (t.length > 255) return new Invalid("a name has at most 255 characters");
  if (!/^[A-Za-z0-9_.-]+$/.test(t)) {
    return new Invalid('a name holds only letters a-z and A-Z, digits, "-", "_" and "."');
  }
  if (t === "." || t === "..") return new Invalid('"." and ".." are not names');
  return t;
};

/**
 * A comma-separated list of items, each trimmed and read by `item`; empty
 * items and repeated items are refused.
 */
export function list<T>(item: Parser<T>, options: { allowEmpty?: boolean } = {}): Parser<T[]> {
  return (t) => {
    if (t.trim() === "") {
      return options.allowEmpty === true ? [] : new Invalid("expected at least one item");
    }
    const out: T[] = [];
    const seen = new Set<string>();
    for (const raw of t.split(",")) {
      const s = raw.trim();
      if (s === "") return new Invalid("the list has an empty item (two commas, or one at an end)");
      const v = item(s);
      if (v instanceof Invalid) return new Invalid(`${JSON.stringify(s)}: ${v.why}`);
      const k = JSON.stringify(v);
      if (seen.has(k)) return new Invalid(`${JSON.stringify(s)} is listed twice`);
      seen.add(k);
      out.push(v);
    }
    return out;
  };
}

export function hostPort(defaultPort: number, allowPortZero = false): Parser<HostPort> {
  return (t) => fromResult(parseHostPort(t, { defaultPort, allowPortZero }));
}

export const cron: Parser<CronSchedule> = (t) => fromResult(parseCron(t));

/** An IANA time zone the runtime knows (Intl refuses the others with a RangeError). */
export const timeZone: Parser<string> = (t) => {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: t });
    return t;
  } catch (err) {
    if (err instanceof RangeError) {
      return new Invalid("unknown time zone; expected an IANA name such as Europe/Paris or UTC");
    }
    throw err;
  }
};

/** A Unix file mode in octal (`0660`, `660`, `0o660`), at most 0777. */
export const octalMode: Parser<number> = (t) => {
  const m = /^(?:0o|0)?([0-7]{3})$/.exec(t);
  if (m === null) return new Invalid("expected an octal mode such as 0660 (at most 0777)");
  return parseInt(m[1] ?? "", 8);
};

/** A SHA-256 certificate fingerprint, 32 colon-separated hex bytes; returned upper case. */
export const sha256Fingerprint: Parser<string> = (t) => {
  if (/^(?:[0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/.test(t)) return t.toUpperCase();
  const parts = t.split(":");
  const why =
    parts.length !== 32
      ? `expected a SHA-256 fingerprint, 32 hex bytes separated by ":" (AB:CD:...), got ${parts.length} part${parts.length === 1 ? "" : "s"}`
      : 'expected a SHA-256 fingerprint, 32 hex bytes separated by ":" (AB:CD:...); each part is two hex digits';
  return new Invalid(why);
};

/** A realm: no spaces, no control characters, no "@" or "/". */
export const realm: Parser<string> = (t) => {
  if (t === "" || t.length > 255 || !/^[^\s@/]+$/.test(t)) {
    return new Invalid('expected a realm name without spaces, "@" or "/" (e.g. EXAMPLE.COM)');
  }
  return t;
};

/** A Kerberos service principal, `service/host` or `service/host@REALM`. */
export const servicePrincipal: Parser<string> = (t) =>
  /^[^/@\s]+\/[^/@\s]+(?:@[^/@\s]+)?$/.test(t)
    ? t
    : new Invalid(
        'expected service/host or service/host@REALM (e.g. "abs/backup.example.com@EXAMPLE.COM")',
      );

/** A Kerberos principal, `name`, `name/instance` or either with `@REALM`. */
export const principal: Parser<string> = (t) =>
  /^[^@\s]+(?:@[^@\s]+)?$/.test(t) && t.length <= 1024
    ? t
    : new Invalid('expected a Kerberos principal such as "host/client.example.com@EXAMPLE.COM"');

/**
 * A Kerberos principal with its realm, `name@REALM` (the slave's own
 * principal: unlike master.conf, slave.conf has no realm to fill in, and
 * GSSAPI would refuse every connection of a principal without one).
 */
export const principalWithRealm: Parser<string> = (t) => {
  const p = principal(t);
  if (p instanceof Invalid) return p;
  return p.includes("@")
    ? p
    : new Invalid(
        `has no realm: write it with the master's realm, as name@REALM (e.g. "${p}@EXAMPLE.COM")`,
      );
};

/** The service part of a Kerberos principal (`host` in host/db1.example.com). */
export const principalService: Parser<string> = (t) =>
  /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(t)
    ? t
    : new Invalid('expected a Kerberos service name such as "host" (letters, digits, . _ -)');

/** A Unix group: its name (as in /etc/group) or its numeric id. */
export const groupName: Parser<string> = (t) =>
  /^(?:[0-9]{1,10}|[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?)$/.test(t)
    ? t
    : new Invalid("expected a group name (letters, digits, _ . -, at most 32) or a numeric gid");

/**
 * Splits a command line into arguments, without a shell: words separated by
 * blanks; '...' quotes literally; "..." quotes with \" and \\ escapes; a
 * backslash outside quotes escapes the next character; an unquoted ; or #
 * starts a comment (as everywhere else in the file). No variables, no globs.
 */
export const words: Parser<string[]> = (t) => {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  for (let i = 0; i < t.length; i++) {
    const c = t.charAt(i);
    if (c === "'") {
      const end = t.indexOf("'", i + 1);
      if (end < 0) return new Invalid("a ' quote is not closed");
      cur += t.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      let closed = false;
      for (; j < t.length; j++) {
        const d = t.charAt(j);
        if (d === "\\" && (t[j + 1] === '"' || t[j + 1] === "\\")) {
          cur += t[j + 1];
          j++;
        } else if (d === '"') {
          closed = true;
          break;
        } else {
          cur += d;
        }
      }
      if (!closed) return new Invalid('a " quote is not closed');
      inWord = true;
      i = j;
    } else if (c === "\\") {
      if (i + 1 >= t.length) return new Invalid("a backslash at the end escapes nothing");
      cur += t.charAt(i + 1);
      inWord = true;
      i++;
    } else if (c === ";" || c === "#") {
      break;
    } else if (c === " " || c === "\t") {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
};
