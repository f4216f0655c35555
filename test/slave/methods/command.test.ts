import t from "tap";
import { LineTail, runCommand } from "../../../src/slave/methods/command.js";
import { makeCtx } from "../../fixtures/backup-tree.js";

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
