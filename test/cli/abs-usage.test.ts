// `abs` as a process: help (with examples, on every subcommand found in
// the help itself), usage errors (unknown options refused by name), where
// the socket comes from, and what an error looks like (one line; a stack
// trace only for a bug in abs, and only with -d).

import { writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { BadArgumentError } from "../../src/errors.js";
import { parseNoArgs } from "../../src/protocol/admin-api.js";
import { type Run, runAbs, STACK_FRAME, scriptedMaster } from "../helpers/abs-cli.js";
import { statusResult } from "../helpers/admin-views.js";
import { tempDir } from "../helpers/tmp.js";

/** The subcommands in the "Commands:" block of a --help text, `help` aside. */
function commandsOf(help: string): string[] {
  const block = help.split("\n\n").find((b) => b.startsWith("Commands:")) ?? "";
  return [...block.matchAll(/^ {2}([a-z][a-z-]*)/gm)]
    .map((m) => m[1] ?? "")
    .filter((c) => c !== "help");
}

/**
 * Every subcommand of abs, as words (["show", "jobs"]) with its --help
 * output, found from the --help texts themselves rather than a list here.
 */
function allSubcommands(): Promise<[string[], Run][]> {
  // Found once for the tests that need them: each --help is a process.
  subcommandsFound ??= findSubcommands();
  return subcommandsFound;
}
let subcommandsFound: Promise<[string[], Run][]> | undefined;

async function findSubcommands(): Promise<[string[], Run][]> {
  const found: [string[], Run][] = [];
  const visit = async (words: string[], help: string): Promise<void> => {
    for (const c of commandsOf(help)) {
      const sub = [...words, c];
      const run = await runAbs([...sub, "--help"]);
      found.push([sub, run]);
      await visit(sub, run.stdout);
    }
  };
  await visit([], (await runAbs(["--help"])).stdout);
  return found;
}

t.test(
  "every --help ends with examples; abs --help lists the socket rule and exit statuses",
  async (t) => {
    const subcommands = await allSubcommands();
    // A floor, so a change in commander's help layout cannot make this test vacuous.
    t.ok(subcommands.length >= 16, `found ${subcommands.length} subcommands`);
    t.ok(
      subcommands.some(([w]) => w.join(" ") === "show jobs"),
      "subcommands of subcommands too",
    );
    for (const [words, run] of subcommands) {
      t.equal(run.code, 0, words.join(" "));
      // Examples come last, each line starting with "abs" and the subcommand's first word.
      t.match(
        run.stdout,
        new RegExp(`\\nExamples:\\n(  abs ${words[0]}\\b.*\\n)+$`),
        `${words.join(" ")} --help`,
      );
    }
    const root = await runAbs(["--help"]);
    t.equal(root.code, 0);
    t.match(root.stdout, /\nExamples:\n( {2}abs\b.*\n)+$/, "abs --help");
    t.match(
      root.stdout,
      "The admin socket is the first of:\n  1. -s, --socket PATH\n  2. $ABS_ADMIN_SOCKET\n",
    );
    t.match(root.stdout, "  6. /run/abs/admin.sock\n");
    t.match(root.stdout, /Exit statuses:\n {2}0 {3}success/);
    t.match(root.stdout, /\n {2}3 {3}the master cannot be reached\n/);
    t.match(root.stdout, /\n {2}11 {2}abs watch: the job was canceled\n/);
  },
);

t.test("bad usage is 2 and names what was wrong", async (t) => {
  const cases: [string[], string | RegExp][] = [
    [["frobnicate"], "error: unknown command 'frobnicate'\n"],
    [["show", "jbos"], /^error: unknown command 'jbos'\n/],
    [["status", "--verbose"], "error: unknown option '--verbose'\n"],
    [["cancel"], "error: missing required argument 'id'\n"],
    [
      ["cancel", "1", "2"],
      "error: too many arguments for 'cancel'. Expected 1 argument but got 2.\n",
    ],
    [["show"], /^Usage: abs show/],
    [
      ["-s", "/a.sock", "-c", "/b.conf", "status"],
      "abs: --socket and --config both say where the admin socket is; give one of them\n",
    ],
    [[], /^Usage: abs /],
  ];
  for (const [args, stderr] of cases) {
    const run = await runAbs(args);
    t.equal(run.code, 2, args.join(" ") || "(nothing)");
    if (typeof stderr === "string") t.equal(run.stderr, stderr);
    else t.match(run.stderr, stderr);
  }
});

t.test(
  "an unknown option is refused by name on every subcommand, before anything runs",
  async (t) => {
    // No socket anywhere: had a command run, it would fail with 3, not 2.
    const env = { ABS_ADMIN_SOCKET: "/nonexistent/abs-test/admin.sock" };
    for (const [words] of await allSubcommands()) {
      const run = await runAbs([...words, "--frob"], env);
      t.equal(run.code, 2, `${words.join(" ")} --frob`);
      t.equal(run.stderr, "error: unknown option '--frob'\n", `${words.join(" ")} --frob`);
      t.equal(run.stdout, "");
    }
    const typo = await runAbs(["show", "jobs", "--stat", "running"], env);
    t.equal(typo.code, 2);
    t.equal(typo.stderr, "error: unknown option '--stat'\n(Did you mean --state?)\n");
  },
);

t.test(
  "the socket from ABS_ADMIN_SOCKET, -c, ABS_CONFIG; options before or after the subcommand",
  async (t) => {
    const master = await scriptedMaster(t, {
      status: (args) => (parseNoArgs(args), statusResult(Date.now())),
    });
    const dir = tempDir(t);
    const conf = path.join(dir, "master.conf");
    writeFileSync(conf, `[master]\nrealm = EXAMPLE.COM\nadmin_socket = ${master.socketPath}\n`);
    const elsewhere = path.join(dir, "nobody.sock");
    const runs: [string, string[], Record<string, string>][] = [
      ["ABS_ADMIN_SOCKET", ["status"], { ABS_ADMIN_SOCKET: master.socketPath }],
      ["-c before", ["-c", conf, "status"], {}],
      ["--config after", ["status", "--config", conf], {}],
      ["ABS_CONFIG", ["status"], { ABS_CONFIG: conf }],
      [
        "--socket over ABS_ADMIN_SOCKET",
        ["status", "-s", master.socketPath],
        { ABS_ADMIN_SOCKET: elsewhere },
      ],
      [
        "ABS_ADMIN_SOCKET over -c",
        ["-c", path.join(dir, "none.conf"), "status"],
        { ABS_ADMIN_SOCKET: master.socketPath },
      ],
    ];
    for (const [name, args, env] of runs) {
      const run = await runAbs(args, env);
      t.equal(run.code, 0, name);
      t.match(run.stdout, /^master: /, name);
    }
    t.equal(master.calls.length, runs.length);
  },
);

t.test("a config with errors is 6 and lists them", async (t) => {
  const dir = tempDir(t);
  const conf = path.join(dir, "master.conf");
  writeFileSync(conf, "[master]\nrealm = EXAMPLE.COM\nadmin_socket = admin.sock\n");
  const run = await runAbs(["-c", conf, "status"]);
  t.equal(run.code, 6);
  t.equal(
    run.stderr,
    `abs: cannot take admin_socket from ${conf}, which has errors (or name the socket with --socket):\n` +
      `${conf}:3: admin_socket "admin.sock": expected an absolute path (starting with /)\n`,
  );
  const missing = await runAbs(["status"], { ABS_CONFIG: path.join(dir, "none.conf") });
  t.equal(missing.code, 6);
  t.match(missing.stderr, /^abs: .*none\.conf: cannot read: ENOENT/);
});

t.test("no master: 3, saying where the socket path came from; one line, -d or not", async (t) => {
  const dir = tempDir(t);
  const socket = path.join(dir, "nobody.sock");
  const line = `abs: cannot reach the master on ${socket}: is abs-master running? (see master.conf admin_socket); socket path from ABS_ADMIN_SOCKET\n`;
  for (const args of [
    ["show", "jobs"],
    ["watch", "12"],
    ["-d", "status"],
    ["run", "home", "-d"],
  ]) {
    const run = await runAbs(args, { ABS_ADMIN_SOCKET: socket });
    t.equal(run.code, 3, args.join(" "));
    t.equal(run.stderr, line, "not a bug in abs: no stack trace, even with -d");
    t.equal(run.stdout, "");
  }
});

t.test("a bad argument: 2 and one line, -d or not, refused by abs or by the master", async (t) => {
  const master = await scriptedMaster(t, {
    run: () => {
      throw new BadArgumentError('args.slave: no slave "nosuch"', "slave");
    },
  });
  const cases: [string[], string][] = [
    [
      ["watch", "x12"],
      "error: command-argument value 'x12' is invalid for argument 'id'. expected a job id (a whole number >= 1)\n",
    ],
    [
      ["-d", "show", "jobs", "--limit", "0"],
      "error: option '--limit <n>' argument '0' is invalid. expected a whole number >= 1\n",
    ],
    [
      ["-s", master.socketPath, "run", "home", "--slave", "nosuch"],
      'abs: args.slave: no slave "nosuch"\n',
    ],
    [
      ["-d", "-s", master.socketPath, "run", "home", "--slave", "nosuch"],
      'abs: args.slave: no slave "nosuch"\n',
    ],
  ];
  for (const [args, stderr] of cases) {
    const run = await runAbs(args);
    t.equal(run.code, 2, args.join(" "));
    t.equal(run.stderr, stderr, args.join(" "));
    t.notMatch(run.stderr, STACK_FRAME);
  }
});

t.test("errors: the message only; a stack trace for a bug, only with -d", async (t) => {
  const master = await scriptedMaster(t, {
    "show-jobs": () => {
      throw new TypeError("cannot read properties of undefined");
    },
    // Not the shape admin-api.ts promises: abs fails while printing it.
    "show-slaves": () => ({ slaves: "none" }),
  });
  const internal = await runAbs(["-s", master.socketPath, "show", "jobs"]);
  t.equal(internal.code, 1);
  t.equal(internal.stderr, "abs: show-jobs failed: cannot read properties of undefined\n");

  const bug = await runAbs(["-s", master.socketPath, "show", "slaves"]);
  t.equal(bug.code, 1);
  t.match(bug.stderr, /^abs: internal error: .+\n$/);
  t.notMatch(bug.stderr, STACK_FRAME);

  const debug = await runAbs(["-d", "-s", master.socketPath, "show", "slaves"]);
  t.equal(debug.code, 1);
  t.match(debug.stderr, /^abs: internal error: .+\nTypeError: /);
  t.match(debug.stderr, STACK_FRAME, "-d shows where");
});
