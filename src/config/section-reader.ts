// Step 2 of reading a config, for one section: every entry is read by the
// parser its key names in a schema, into a typed value that remembers its
// line (so later checks between keys can point at the right place). Unknown
// keys are reported with the closest known key. Pure code.

import type { IniEntry, IniSection } from "./ini-tokenizer.js";
import { closest, type ConfigIssue, makeIssue } from "./issues.js";
import { Invalid, type Parser } from "./values.js";

/** A checked value and where it was written. */
export interface Located<T> {
  value: T;
  line: number;
  /** The value as written (for messages about conflicts). */
  text: string;
}

// `any` here only lets each key keep its own parser type; Read<S> below
// recovers every value type exactly.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Schema = Record<string, Parser<any>>;

export type Read<S extends Schema> = {
  [K in keyof S]?: Located<S[K] extends Parser<infer T> ? T : never>;
};

export interface SectionOptions {
  /** Keys whose parser gets the text as written (quotes and comments included), not the INI value. */
  rawKeys?: readonly string[];
  /** Handles keys outside the schema (e.g. `command.env.NAME`); returns true when it took the key. */
  extra?: (entry: IniEntry) => boolean;
  /** Keys of another kind of section, to say where a misplaced key belongs. */
  elsewhere?: { keys: readonly string[]; where: string };
}

export interface SectionRead<S extends Schema> {
  values: Read<S>;
  /** Every key written in the section, valid or not, with its entry. */
  written: Map<string, IniEntry>;
}

export function readSection<S extends Schema>(
  file: string,
  section: IniSection,
  schema: S,
  issues: ConfigIssue[],
  options: SectionOptions = {},
): SectionRead<S> {
  const values: Record<string, Located<unknown>> = {};
  const written = new Map<string, IniEntry>();
  const known = Object.keys(schema);
  for (const entry of section.entries) {
    written.set(entry.key, entry);
    const parser = Object.hasOwn(schema, entry.key) ? schema[entry.key] : undefined;
    if (parser === undefined) {
      if (options.extra?.(entry) === true) continue;
      issues.push(
        makeIssue(file, entry.line, entry.key, entry.value, unknownKey(entry.key, known, options)),
      );
      continue;
    }
    const text = options.rawKeys?.includes(entry.key) === true ? entry.raw : entry.value;
    const v: unknown = parser(text);
    if (v instanceof Invalid) {
      issues.push(makeIssue(file, entry.line, entry.key, entry.value, v.why));
      continue;
    }
    values[entry.key] = { value: v, line: entry.line, text: entry.value };
  }
  return { values: values as Read<S>, written };
}

function unknownKey(key: string, known: readonly string[], options: SectionOptions): string {
  const other = options.elsewhere;
  if (other !== undefined && other.keys.includes(key)) {
    return `unknown key here; it belongs in ${other.where}`;
  }
  const guess = closest(key, known);
  return guess === undefined ? "unknown key" : `unknown key; did you mean "${guess}"?`;
}
