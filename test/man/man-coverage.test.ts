// The man pages against the code: every option, subcommand, config key,
// signal and exit status that exists is documented, and nothing documented
// is gone; and every page renders without a groff warning. The options and subcommands come from the programs' own --help
// (commander's), the keys from the config schemas, so the two cannot drift
// apart without this test failing.

import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { JOB_KEYS } from "../../src/config/job-definition.js";
import { MASTER_KEYS } from "../../src/config/master-config.js";
import { SLAVE_KEYS } from "../../src/config/slave-config.js";
import { EXIT } from "../../src/cli/exit-status.js";
import { ABS_BIN, MASTER_BIN, runNode } from "../helpers/master-process.js";
import { SLAVE_BIN } from "../helpers/slave-process.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

function man(name: string): string {
  return readFileSync(path.join(repo, "man", name), "utf8");
}

/** The text of `.SH NAME` up to the next `.SH` (NAME as written, quotes aside). */
function section(page: string, name: string): string {
  const lines = page.split("\n");
  const start = lines.findIndex((l) => l.replace(/"/g, "") === `.SH ${name}`);
  if (start < 0) throw new Error(`no section ${name}`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith(".SH "));
  return lines.slice(start + 1, end < 0 ? undefined : end).join("\n");
}

/** A roff line as plain text: font escapes, macros and quotes gone, \- as -. */
function plain(line: string): string {
  return line
    .replace(/^\.(BR|BI|IR|RB|B|I)\s+/, "")
    .replace(/\\f[BIRP]/g, "")
    .replace(/\\-/g, "-")
    .replace(/"/g, "")
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * The head line of every `.TP` entry in `text`, as plain text; entries of a
 * list nested in one (between `.RS` and `.RE`) are not heads of the section.
 */
function tpHeads(text: string): string[] {
  const lines = text.split("\n");
  const heads: string[] = [];
  let depth = 0;
  lines.forEach((l, i) => {
    if (l.startsWith(".RS")) depth += 1;
    if (l.startsWith(".RE")) depth -= 1;
    if (l === ".TP" && depth === 0 && i + 1 < lines.length) heads.push(plain(lines[i + 1] ?? ""));
  });
  return heads;
}

/** Every long option written in `text` (`\-\-name` in roff). */
function longOptions(text: string): Set<string> {
  return new Set(text.replace(/\\-/g, "-").match(/--[a-z][a-z-]*/g) ?? []);
}

async function help(bin: string, args: string[] = []): Promise<string> {
  const r = await runNode([bin, ...args, "--help"]);
  if (r.status !== 0) throw new Error(`${args.join(" ")} --help: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** The long options of commander's help text (its "Options:" block). */
function helpOptions(text: string): Set<string> {
  const block = text.split(/\n\n/).find((b) => b.startsWith("Options:")) ?? "";
  return new Set([...block.matchAll(/^\s+(?:-\w, )?(--[a-z][a-z-]*)/gm)].map((m) => m[1] ?? ""));
}

/** The subcommands of commander's help text (its "Commands:" block), `help` aside. */
function helpCommands(text: string): string[] {
  const block = text.split(/\n\n/).find((b) => b.startsWith("Commands:")) ?? "";
  return [...block.matchAll(/^ {2}([a-z][a-z-]*)/gm)]
    .map((m) => m[1] ?? "")
    .filter((c) => c !== "help");
}

const sorted = (s: Iterable<string>): string[] => [...s].sort();

t.test("abs: every subcommand and option is in abs(8), and abs(8) lists no other", async (t) => {
  const page = man("abs.8");
  const top = await help(ABS_BIN);
  const commands: string[] = [];
  for (const c of helpCommands(top)) {
    if (c === "show") {
      for (const sub of helpCommands(await help(ABS_BIN, ["show"]))) commands.push(`show ${sub}`);
    } else commands.push(c);
  }
  const documented = tpHeads(section(page, "COMMANDS")).map((h) =>
    h.startsWith("show ") ? h.split(" ").slice(0, 2).join(" ") : (h.split(" ")[0] ?? ""),
  );
  t.same(sorted(documented), sorted(commands), "COMMANDS lists exactly the subcommands");

  const global = helpOptions(top);
  t.same(
    sorted(longOptions(tpHeads(section(page, "OPTIONS")).join("\n"))),
    sorted(global),
    "OPTIONS lists exactly the global options",
  );
  const all = new Set(global);
  const commandsText = section(page, "COMMANDS");
  for (const c of commands) {
    for (const o of helpOptions(await help(ABS_BIN, c.split(" ")))) {
      all.add(o);
      if (o !== "--help") t.ok(longOptions(commandsText).has(o), `abs ${c} ${o} is documented`);
    }
  }
  for (const o of longOptions(commandsText)) t.ok(all.has(o), `documented ${o} exists`);
});

for (const [page, bin] of [
  ["abs-master.8", MASTER_BIN],
  ["abs-slave.8", SLAVE_BIN],
] as const) {
  t.test(`${page}: its OPTIONS are exactly the daemon's options`, async (t) => {
    const documented = longOptions(tpHeads(section(man(page), "OPTIONS")).join("\n"));
    t.same(sorted(documented), sorted(helpOptions(await help(bin))));
  });

  t.test(`${page}: SIGNALS and EXIT STATUS match what the daemon does`, (t) => {
    const signals = tpHeads(section(man(page), "SIGNALS")).map((h) => h.split(" ")[0]);
    // src/signals.ts: SIGHUP reopens the logs and reloads, SIGUSR2 reopens
    // the logs, SIGTERM and SIGINT stop.
    t.same(sorted(new Set(signals)), ["SIGHUP", "SIGINT", "SIGTERM", "SIGUSR2"]);
    // bin/abs-master-main.ts and bin/abs-slave.ts: 0 stopped or valid, 1 failure, 2 usage.
    const statuses = tpHeads(section(man(page), "EXIT STATUS")).map((h) => h.split(" ")[0]);
    t.same(sorted(statuses), ["0", "1", "2"]);
    t.end();
  });
}

t.test("abs(8): EXIT STATUS lists exactly the statuses abs exits with", (t) => {
  const documented = tpHeads(section(man("abs.8"), "EXIT STATUS")).map((h) => Number(h));
  t.same(
    [...documented].sort((a, b) => a - b),
    [...new Set(Object.values(EXIT))].sort((a, b) => a - b),
  );
  t.end();
});

/** The keys a part of abs.conf(5) documents: `.BI key " = " ...` entries. */
function documentedKeys(text: string): string[] {
  return [...text.matchAll(/^\.BI ([a-z_.]+)(?: (NAME))? " = "/gm)].map(
    (m) => `${m[1] ?? ""}${m[2] ?? ""}`,
  );
}

t.test("abs.conf(5): each section documents exactly the keys of its schema", (t) => {
  const page = man("abs.conf.5");
  t.same(sorted(documentedKeys(section(page, "THE [master] SECTION"))), sorted(MASTER_KEYS));
  t.same(
    sorted(
      documentedKeys(section(page, "JOB DEFINITIONS") + "\n" + section(page, "METHODS")),
    ),
    sorted(JOB_KEYS),
  );
  t.same(sorted(documentedKeys(section(page, "SLAVE.CONF"))), sorted(SLAVE_KEYS));
  t.end();
});

t.test("every man page is listed in package.json and renders without a groff warning", (t) => {
  const pkg = JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")) as { man: string[] };
  const pages = readdirSync(path.join(repo, "man")).map((f) => `man/${f}`);
  t.same(sorted(pkg.man), sorted(pages), "package.json man lists every page");
  for (const page of pages) {
    const r = spawnSync("groff", ["-man", "-ww", "-z", path.join(repo, page)], { encoding: "utf8" });
    t.equal(r.status, 0, `${page}: groff exit status`);
    t.equal(r.stderr + r.stdout, "", `${page}: no warning`);
  }
  t.end();
});
