// `abs` as a process: help, usage errors, where the socket comes from, and
// what an error looks like (no stack trace without -d).

import { writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { parseNoArgs } from "../../src/protocol/admin-api.js";
import { runAbs, STACK_FRAME, scriptedMaster } from "../helpers/abs-cli.js";
import { statusResult } from "../helpers/admin-views.js";
import { tempDir } from "../helpers/tmp.js";

const SUBCOMMANDS = [
  ["keygen"],
  ["fingerprint"],
  ["demo"],
  ["status"],
  ["show"],
  ["show", "jobs"],
  ["show", "job"],
  ["show", "slaves"],
  ["show", "schedule"],
  ["run"],
  ["cancel"],
  ["watch"],
  ["archive"],
  ["autoarchive"],
  ["drain"],
  ["reload"],
];

t.test(
  "every --help ends with examples; abs --help lists the socket rule and exit statuses",
  async (t) => {
    for (const words of SUBCOMMANDS) {
      const run = await runAbs([...words, "--help"]);
      t.equal(run.code, 0, words.join(" "));
      t.match(
        run.stdout,
        new RegExp(`\\nExamples:\\n(  abs ${words[0]}\\b.*\\n)+$`),
        `${words.join(" ")} --help`,
      );
    }
    const root = await runAbs(["--help"]);
    t.equal(root.code, 0);
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

t.test("no master: 3, saying where the socket path came from", async (t) => {
  const dir = tempDir(t);
  const socket = path.join(dir, "nobody.sock");
  const run = await runAbs(["show", "jobs"], { ABS_ADMIN_SOCKET: socket });
  t.equal(run.code, 3);
  t.equal(
    run.stderr,
    `abs: cannot reach the master on ${socket}: is abs-master running? (see master.conf admin_socket); socket path from ABS_ADMIN_SOCKET\n`,
  );
  t.equal(run.stdout, "");
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
