#!/usr/bin/env node
// Writes the Debian package's copyright file (DEP-5) on standard output:
// ABS's own licence, then a paragraph for each package bundled in the
// node_modules directory given, with its licence as its package.json says
// and its copyright lines as its licence file has them; then the text of
// every licence named, from the first package that ships it.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";

const nodeModules = process.argv[2];
const abs = JSON.parse(readFileSync("package.json", "utf8"));

/** Every package directory under `dir`, nested ones too. */
function packages(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith(".")) continue;
    const full = path.join(dir, entry.name);
    if (entry.name.startsWith("@")) {
      found.push(...packages(full));
    } else if (existsSync(path.join(full, "package.json"))) {
      found.push(full);
      if (existsSync(path.join(full, "node_modules")))
        found.push(...packages(path.join(full, "node_modules")));
    }
  }
  return found;
}

function licenseFile(dir) {
  const name = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  return name === undefined ? null : readFileSync(path.join(dir, name), "utf8");
}

/** The short names in an SPDX expression such as "(MIT OR Apache-2.0)". */
function names(expression) {
  return expression
    .replace(/[()]/g, " ")
    .split(/\s+(?:OR|AND)\s+|\s+/)
    .filter(Boolean);
}

function field(text) {
  return text
    .trim()
    .split("\n")
    .map((l) => (l.trim() === "" ? " ." : ` ${l.trimEnd()}`))
    .join("\n");
}

const texts = new Map();
const paragraphs = [];
for (const dir of packages(nodeModules).sort()) {
  const meta = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));
  const license = typeof meta.license === "string" ? meta.license : "UNKNOWN";
  const text = licenseFile(dir);
  const notices =
    text === null ? [] : text.split("\n").filter((l) => /^\s*(copyright|\(c\))/i.test(l));
  const author = typeof meta.author === "string" ? meta.author : meta.author?.name;
  const copyright =
    notices.length > 0
      ? notices.map((l) => l.trim()).join("\n ")
      : `the authors of ${meta.name}${author ? ` (${author})` : ""}`;
  const rel = path.relative(path.dirname(nodeModules), dir);
  paragraphs.push(
    `Files: usr/lib/abs/${rel}/*\nCopyright: ${copyright}\nLicense: ${license.replace(/[()]/g, "")}`,
  );
  for (const name of names(license)) {
    if (!texts.has(name) && text !== null && !names(license).slice(1).length) texts.set(name, text);
  }
}

const common = { "Apache-2.0": "/usr/share/common-licenses/Apache-2.0" };
const licenses = new Set(paragraphs.flatMap((p) => names(p.split("License: ")[1])));
licenses.add(abs.license);
const out = [
  `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: ABS\nSource: the ABS repository (${abs.name} ${abs.version})`,
  `Files: *\nCopyright: 2026 the ABS maintainers\nLicense: ${abs.license}`,
  ...paragraphs,
];
for (const name of [...licenses].sort()) {
  if (common[name] !== undefined) {
    out.push(`License: ${name}\n On Debian systems the full text is in ${common[name]}.`);
  } else if (texts.has(name)) {
    out.push(`License: ${name}\n${field(texts.get(name))}`);
  } else {
    out.push(`License: ${name}\n See https://spdx.org/licenses/${name}.html`);
  }
}
process.stdout.write(out.join("\n\n") + "\n");
