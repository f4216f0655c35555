// Aligned plain-text output for people: tables (`abs show jobs`) and
// "key: value" blocks (`abs show job`, `abs status`). Pure code.
//
// Columns are separated by two spaces and padded to their widest cell; the
// last column is not padded, so no line ends in blanks. Cells are passed
// through printable(): values come from slaves and job output, and a
// newline or escape sequence in one must not break the layout or drive the
// terminal. Widths count UTF-16 code units, which is exact for the ASCII
// names and paths ABS mostly shows.

import { printable } from "./format.js";

export interface Column {
  title: string;
  /** "right" for numbers (ids, counts). Default "left". */
  align?: "left" | "right";
}

const GAP = "  ";

/** The table as text, one line per row after the title line, each ending in "\n". */
export function renderTable(
  columns: readonly Column[],
  rows: readonly (readonly string[])[],
): string {
  const cells = rows.map((row) => columns.map((_, i) => printable(row[i] ?? "")));
  const widths = columns.map((c) => c.title.length);
  for (const row of cells) {
    row.forEach((cell, i) => {
      if (cell.length > (widths[i] ?? 0)) widths[i] = cell.length;
    });
  }
  const last = columns.length - 1;
  const line = (row: readonly string[]): string =>
    row
      .map((cell, i) => {
        const width = widths[i] ?? 0;
        if (columns[i]?.align === "right") return cell.padStart(width);
        return i === last ? cell : cell.padEnd(width);
      })
      .join(GAP)
      .trimEnd();
  const out = [line(columns.map((c) => c.title))];
  for (const row of cells) out.push(line(row));
  return out.join("\n") + "\n";
}

/** "key: value" lines with the values aligned; each value passed through printable(). */
export function renderFields(fields: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...fields.map(([key]) => key.length + 1));
  return fields
    .map(([key, value]) => `${`${key}:`.padEnd(width)} ${printable(value)}`.trimEnd() + "\n")
    .join("");
}
