import os from "node:os";
import t from "tap";
import { COMMAND_PATH, type RunAllowlist } from "../../../src/slave/methods/allowed-programs.js";
import { commandEnvironment, LineTail, runCommand } from "../../../src/slave/methods/command.js";
import type { MethodContext } from "../../../src/slave/methods/method-context.js";
import { makeCtx as makeAnyCtx } from "../../fixtures/backup-tree.js";

/** The system's programs (echo, sh, seq, sleep) and the missing one of the test below. */
const ALLOW: RunAllowlist = {
  methods: ["command"],
  programs: ["/bin/*", "/usr/bin/*", "/nonexistent/prog"],
  file: "slave.conf",
};

const makeCtx = (allowed: string[], extra: Partial<MethodContext> = {}) =>
  makeAnyCtx(allowed, { allowedToRun: ALLOW, ...extra });

const cmd = (program: string, args: string[] = [], more = {}) => ({
  program,
  args,
  env: {},
  cwd: null,
  shell: false,
  ...more,
});

t.test("success: exit status 0 and the output's last lines", async (t) => {
  const r = await runCommand(
    cmd("/bin/sh", ["-c", "for i in $(seq 1 30); do echo line $i; done"]),
    makeCtx([]),
  );
  t.equal(r.data.exitStatus, 0);
  t.equal((r.data.lastLines as string[]).length, 20);
  t.equal((r.data.lastLines as string[])[19], "line 30");
});

t.test("failure: exit 3 with the last lines in the message and data", async (t) => {
  await t.rejects(
    runCommand(cmd("/bin/sh", ["-c", "echo first; echo oops >&2; exit 3"]), makeCtx([])),
    {
      code: "COMMAND_FAILED",
      message:
        'command "/bin/sh -c echo first; echo oops >&2; exit 3" exited with status 3; last output: first | oops',
      data: { exitStatus: 3, lastLines: ["first", "oops"] },
    },
  );
});

t.test("no shell by default: $HOME stays literal; env and cwd apply", async (t) => {
  const r = await runCommand(cmd("echo", ["$HOME"]), makeCtx([]));
  t.same(r.data.lastLines, ["$HOME"]);
  const s = await runCommand(
    cmd("echo $ABS_X; pwd", [], { shell: true, env: { ABS_X: "yes" }, cwd: "/tmp" }),
    makeCtx([]),
  );
  t.same(s.data.lastLines, ["yes", "/tmp"]);
});

t.test("a program or a cwd that does not exist", async (t) => {
  await t.rejects(runCommand(cmd("echo", [], { cwd: "/nonexistent" }), makeCtx([])), {
    code: "COMMAND_FAILED",
    message: 'command.cwd "/nonexistent" is not a directory',
  });
  await t.rejects(runCommand(cmd("/nonexistent/prog"), makeCtx([])), {
    code: "COMMAND_FAILED",
    message: /could not be started: spawn \/nonexistent\/prog ENOENT/,
  });
});

t.test("timeout: SIGTERM, then SIGKILL after the grace", async (t) => {
  // Abort once the command has printed (its first progress event).
  let started = (): void => undefined;
  const output = new Promise<void>((resolve) => (started = resolve));
  const ctx = makeCtx([], { killGraceMs: 200, onProgress: () => started() });
  const p = runCommand(cmd("/bin/sh", ["-c", "trap '' TERM; echo started; sleep 30"]), ctx);
  await output;
  ctx.controller.abort(new Error("max run time 1s reached"));
  await t.rejects(p, {
    code: "CANCELED",
    message: /max run time 1s reached \(killed with SIGKILL\)/,
  });
});

t.test("a program outside allowed_programs is refused and never started", async (t) => {
  const ctx = makeAnyCtx([], {
    allowedToRun: { methods: ["command"], programs: ["/usr/bin/env"], file: "/etc/abs/slave.conf" },
  });
  await t.rejects(runCommand(cmd("/bin/sh", ["-c", "exit 0"]), ctx), {
    code: "PROGRAM_NOT_ALLOWED",
    message:
      'command.program "/bin/sh" is not in allowed_programs of /etc/abs/slave.conf: /usr/bin/env',
  });
  await t.rejects(runCommand(cmd("echo hi", [], { shell: true }), ctx), {
    code: "PROGRAM_NOT_ALLOWED",
    message:
      'command.shell\'s program "/bin/sh" is not in allowed_programs of /etc/abs/slave.conf: /usr/bin/env',
  });
  t.same(ctx.progress, [], "no output: nothing ran");
});

t.test("the environment: PATH, HOME, LANG and command.env, not the slave's", async (t) => {
  t.same(commandEnvironment({ ABS_X: "yes" }), {
    PATH: COMMAND_PATH,
    HOME: os.userInfo().homedir,
    LANG: process.env.LANG ?? "C",
    ABS_X: "yes",
  });
  t.same(
    commandEnvironment({ PATH: "/opt/x/bin", HOME: "/srv" }),
    { PATH: "/opt/x/bin", HOME: "/srv", LANG: process.env.LANG ?? "C" },
    "command.env may set PATH and HOME",
  );
  // A real run (test/slave/slave-allowlist.test.ts checks the whole
  // environment; here tap adds its own variables to every child).
  process.env["ABS_TEST_SECRET"] = "hunter2";
  t.teardown(() => delete process.env["ABS_TEST_SECRET"]);
  const r = await runCommand(
    cmd("/bin/sh", ["-c", "echo job=${ABS_X-unset} slave=${ABS_TEST_SECRET-unset}"], {
      env: { ABS_X: "yes" },
    }),
    makeCtx([]),
  );
  t.same(r.data.lastLines, ["job=yes slave=unset"], "command.env reaches it, the slave's does not");
});

t.test("command.env may not set what makes a program run other code", async (t) => {
  for (const name of ["LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "ENV", "NODE_OPTIONS"]) {
    await t.rejects(runCommand(cmd("/bin/true", [], { env: { [name]: "/tmp/x" } }), makeCtx([])), {
      code: "PROGRAM_NOT_ALLOWED",
      message: `command.env.${name} is refused: it would make the program load or run other code`,
    });
  }
  t.same(Object.keys(commandEnvironment({ OLD_PWD: "x", MY_LD_PRELOAD: "y" })).sort(), [
    "HOME",
    "LANG",
    "MY_LD_PRELOAD",
    "OLD_PWD",
    "PATH",
  ]);
});

t.test("LineTail keeps bounded lines", (t) => {
  const tail = new LineTail(2);
  tail.push("a\nb");
  tail.push("c\nd\n" + "x".repeat(5000));
  const lines = tail.end();
  t.equal(lines.length, 2);
  t.equal(lines[0], "d");
  t.equal(lines[1]?.length, 1000);
  t.end();
});
