// Step 1 of reading a config: text → sections of `key = value` entries, each
// with its line number. Pure code.
//
// Why not `ini.decode`: it returns a plain object, so every line number is
// lost (it even splits on /[\r\n]+/, merging blank lines), and it silently
// keeps the last of two equal keys. Messages must say `file:line`, and a
// duplicate must be refused, so this tokenizer follows the `ini` package's
// syntax line by line instead (test/config/ini-tokenizer.test.ts checks that
// both read well-formed files alike):
//
// - Lines end at CRLF, LF or CR. A byte order mark at the start is skipped
//   (`ini` reads "\ufeff[master]" as a key named "[master]").
// - `;` or `#` as the first non-blank character: a comment line.
// - `[name]`: a section header (a comment may follow the `]`).
// - `key = value`: key and value trimmed. A value in double quotes is a JSON
//   string (`"a \"b\" ; c"`); a value in single quotes is taken literally.
//   In an unquoted value, `;` or `#` starts a comment unless escaped as `\;`
//   or `\#`; other backslashes stay as written.
//
// Where it is stricter than `ini`, on purpose:
// - a line that is neither (`enabled` alone, `key: value` in master.conf) is
//   an error, where `ini` would read it as `key = true`;
// - the same key twice in one section is an error naming both lines;
// - control characters, bytes that were not UTF-8 (U+FFFD after decoding)
//   and lines over 64 Ki characters are errors: this is not a config file;
// - section names are not split at dots (`ini` nests `[a.b]` into `a`).
//
// With `colon: true` (slave.conf) `key: value` is accepted too, as the ABS
// seed writes it (`master: green-acres`): the key ends at the first `:` or `=`.

import { type ConfigIssue, makeIssue } from "./issues.js";

/** Lines longer than this (in UTF-16 code units) are refused. */
export const MAX_LINE_LENGTH = 64 * 1024;
/** After this many syntax errors in one file, the rest of it is not read. */
export const MAX_SYNTAX_ERRORS = 20;

export interface IniEntry {
  key: string;
  /** The value after INI unquoting and comment removal. */
  value: string;
  /**
   * The text after the separator, trimmed, with quotes and comments left as
   * written: for values with their own quoting (`command.args`).
   */
  raw: string;
  line: number;
}

export interface IniSection {
  /** The text between the brackets, trimmed; "" for entries before any header. */
  header: string;
  /** Line of the header; 1 for the headerless part. */
  line: number;
  entries: IniEntry[];
}

export interface IniDocument {
  file: string;
  /** Entries before the first header first (header ""), then each section in order. */
  sections: IniSection[];
  issues: ConfigIssue[];
}

// C0 controls except tab, DEL, and U+FFFD (what a decoder puts for bytes that are not UTF-8).
// eslint-disable-next-line no-control-regex
const BAD_CHAR = /[\u0000-\u0008\u000a-\u001f\u007f\ufffd]/;

function describeChar(ch: string): string {
  const code = ch.codePointAt(0) ?? 0;
  if (code === 0xfffd) return "bytes that are not UTF-8 text";
  return `the control character U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
}

function isQuoted(v: string): boolean {
  return (
    v.length >= 2 &&
    ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))
  );
}

/** Strips an unquoted value's comment, as `ini` does: `\;` and `\#` escape, other backslashes stay. */
function stripComment(v: string): string {
  let out = "";
  for (let i = 0; i < v.length; i++) {
    const c = v.charAt(i);
    if (c === "\\" && i + 1 < v.length && (v[i + 1] === ";" || v[i + 1] === "#")) {
      out += v[i + 1];
      i++;
    } else if (c === ";" || c === "#") {
      break;
    } else {
      out += c;
    }
  }
  return out.trim();
}

/** Decodes a value; returns an error text for a double-quoted value that is not a JSON string. */
function decodeValue(raw: string): { value: string } | { why: string } {
  if (!isQuoted(raw)) return { value: stripComment(raw) };
  if (raw.startsWith("'")) return { value: raw.slice(1, -1) };
  try {
    const v: unknown = JSON.parse(raw);
    if (typeof v === "string") return { value: v };
  } catch {
    // fall through
  }
  return {
    why: 'not a valid double-quoted string (escape " and \\ with a backslash, or use single quotes)',
  };
}

/** The header text if the line is `[...]` (with an optional comment after it). */
function sectionHeader(line: string): { header: string } | { why: string } | null {
  if (!line.startsWith("[")) return null;
  const close = line.indexOf("]");
  if (close < 0) return { why: 'a section header needs a closing "]"' };
  const rest = line.slice(close + 1).trim();
  if (rest !== "" && !rest.startsWith(";") && !rest.startsWith("#")) {
    return { why: `unexpected text after "]": ${JSON.stringify(rest.slice(0, 40))}` };
  }
  return { header: line.slice(1, close).trim() };
}

/** Splits text into lines as `ini` does (CRLF, LF or CR), keeping one entry per line. */
export function splitLines(text: string): string[] {
  const body = text.startsWith("\ufeff") ? text.slice(1) : text;
  return body.split(/\r\n|\r|\n/);
}

export function tokenizeIni(
  file: string,
  text: string,
  options: { colon?: boolean } = {},
): IniDocument {
  const issues: ConfigIssue[] = [];
  const preamble: IniSection = { header: "", line: 1, entries: [] };
  const sections: IniSection[] = [preamble];
  let current = preamble;
  // Per section: key -> line it was first set on.
  let seen = new Map<string, number>();
  let syntaxErrors = 0;

  const lines = splitLines(text);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const text = lines[i] ?? "";
    const bad = (key: string, value: string, why: string): void => {
      issues.push(makeIssue(file, lineNo, key, value, why));
      syntaxErrors++;
    };
    if (syntaxErrors >= MAX_SYNTAX_ERRORS) {
      issues.push(
        makeIssue(
          file,
          lineNo,
          "file",
          file,
          `${MAX_SYNTAX_ERRORS} lines could not be read; stopped here (is this a config file?)`,
        ),
      );
      break;
    }
    if (text.length > MAX_LINE_LENGTH) {
      bad("line", text, `longer than ${MAX_LINE_LENGTH} characters`);
      continue;
    }
    const badChar = BAD_CHAR.exec(text);
    if (badChar !== null) {
      bad("line", text, `contains ${describeChar(badChar[0])}; is this a text config file?`);
      continue;
    }
    const line = text.trim();
    if (line === "" || line.startsWith(";") || line.startsWith("#")) continue;

    const header = sectionHeader(line);
    if (header !== null) {
      if ("why" in header) {
        bad("line", line, header.why);
        // Entries up to the next good header belong to no known section.
        current = { header: "\u0000invalid", line: lineNo, entries: [] };
      } else {
        current = { header: header.header, line: lineNo, entries: [] };
        sections.push(current);
      }
      seen = new Map();
      continue;
    }

    const sep = options.colon === true ? /[=:]/.exec(line) : /=/.exec(line);
    if (sep === null) {
      const expected = options.colon === true ? '"key: value" or "key = value"' : '"key = value"';
      const hint =
        options.colon !== true && /^[A-Za-z0-9_.-]+\s*:/.test(line)
          ? ' (this file separates keys from values with "=", not ":")'
          : "";
      bad("line", line, `expected ${expected}, a [section] header or a comment${hint}`);
      continue;
    }
    const key = line.slice(0, sep.index).trim();
    const raw = line.slice(sep.index + 1).trim();
    if (key === "") {
      bad("line", line, `a key is missing before "${sep[0]}"`);
      continue;
    }
    const decoded = decodeValue(raw);
    if ("why" in decoded) {
      bad(key, raw, decoded.why);
      continue;
    }
    const first = seen.get(key);
    if (first !== undefined) {
      issues.push(makeIssue(file, lineNo, key, decoded.value, `already set at line ${first}`));
      continue;
    }
    seen.set(key, lineNo);
    current.entries.push({ key, value: decoded.value, raw, line: lineNo });
  }
  return { file, sections, issues };
}
