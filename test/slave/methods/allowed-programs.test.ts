import { chmodSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import {
  allowedProgram,
  checkMethod,
  COMMAND_PATH,
  type RunAllowlist,
} from "../../../src/slave/methods/allowed-programs.js";
import { runCommand } from "../../../src/slave/methods/command.js";
import { makeCtx } from "../../fixtures/backup-tree.js";
import { tempDir } from "../../helpers/tmp.js";

const allow = (...programs: string[]): RunAllowlist => ({
  methods: ["tar", "command"],
  programs,
  file: "/etc/abs/slave.conf",
});

t.test("a program is allowed by its exact path or a glob", async (t) => {
  t.equal(
    await allowedProgram("/usr/bin/env", "command.program", allow("/usr/bin/env")),
    "/usr/bin/env",
  );
  t.equal(
    await allowedProgram("/usr/bin/env", "command.program", allow("/usr/bin/*")),
    "/usr/bin/env",
  );
  t.equal(
    await allowedProgram("/usr/lib/abs/hooks/db/dump", "run_before", allow("/usr/lib/abs/**")),
    "/usr/lib/abs/hooks/db/dump",
    "** spans directories",
  );
  t.equal(
    await allowedProgram("/usr/bin/.hidden", "command.program", allow("/usr/bin/*")),
    "/usr/bin/.hidden",
    "* matches a dot file",
  );
  await t.rejects(allowedProgram("/usr/bin/x/y", "command.program", allow("/usr/bin/*")), {
    code: "PROGRAM_NOT_ALLOWED",
    message:
      'command.program "/usr/bin/x/y" is not in allowed_programs of /etc/abs/slave.conf: /usr/bin/*',
    context: { file: "/etc/abs/slave.conf", field: "allowed_programs" },
  });
  await t.rejects(allowedProgram("/bin/sh", "command.program", allow()), {
    message: 'command.program "/bin/sh" is not in allowed_programs of /etc/abs/slave.conf: (none)',
  });
});

t.test("a name is looked up in COMMAND_PATH and matched by the path found", async (t) => {
  t.equal(COMMAND_PATH, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  const found = await allowedProgram("env", "command.program", allow("/usr/bin/env", "/bin/env"));
  t.ok(found === "/usr/bin/env" || found === "/bin/env", found);
  await t.rejects(allowedProgram("env", "command.program", allow("/opt/*")), {
    code: "PROGRAM_NOT_ALLOWED",
    message:
      /^command\.program "env" \(found at \/(usr\/)?bin\/env\) is not in allowed_programs of \/etc\/abs\/slave\.conf: \/opt\/\*$/,
  });
  await t.rejects(allowedProgram("no-such-abs-program", "command.program", allow("/**")), {
    code: "COMMAND_FAILED",
    message: `command.program "no-such-abs-program" is not found in ${COMMAND_PATH}`,
  });
});

t.test("relative paths and ., .. or // parts are refused, whatever is allowed", async (t) => {
  const everything = allow("/**");
  for (const p of ["./backup.sh", "bin/backup.sh", "../bin/sh"]) {
    await t.rejects(allowedProgram(p, "command.program", everything), {
      code: "PROGRAM_NOT_ALLOWED",
      message: `command.program ${JSON.stringify(p)} is a relative path; give the program's absolute path`,
    });
  }
  for (const p of [
    "/usr/lib/abs/../../../bin/sh",
    "/usr/bin/./env",
    "//usr/bin/env",
    "/usr/bin/env/",
  ]) {
    await t.rejects(
      allowedProgram(p, "command.program", allow("/usr/lib/abs/*", "/usr/bin/*", "/**")),
      {
        code: "PROGRAM_NOT_ALLOWED",
        message: `command.program ${JSON.stringify(p)} is not a plain absolute path (".", ".." and "//" parts are refused)`,
      },
    );
  }
});

t.test("a NUL character is refused before anything is matched", async (t) => {
  await t.rejects(
    allowedProgram("/usr/bin/env\0/bin/sh", "command.program", allow("/usr/bin/**")),
    {
      code: "PROGRAM_NOT_ALLOWED",
      message: 'command.program "/usr/bin/env\\u0000/bin/sh" contains a NUL character',
    },
  );
});

t.test("a symbolic link is matched by its own path, not its target's", async (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, "bin"));
  const link = path.join(dir, "bin", "sh");
  symlinkSync("/bin/sh", link);
  t.equal(
    await allowedProgram(link, "command.program", allow(`${dir}/bin/*`)),
    link,
    "allowed by the directory it is in: started by that path",
  );
  await t.rejects(allowedProgram(link, "command.program", allow("/bin/sh", "/usr/bin/dash")), {
    code: "PROGRAM_NOT_ALLOWED",
    message: `command.program "${link}" is not in allowed_programs of /etc/abs/slave.conf: /bin/sh, /usr/bin/dash`,
  });
});

t.test("a method outside allowed_methods is refused, naming the setting and the file", (t) => {
  t.doesNotThrow(() => checkMethod("tar", allow()));
  t.throws(() => checkMethod("restore", allow()), {
    code: "METHOD_NOT_ALLOWED",
    message: 'method "restore" is not in allowed_methods of /etc/abs/slave.conf: tar, command',
  });
  t.throws(
    () =>
      checkMethod("command", {
        methods: ["tar", "restore", "verify"],
        programs: [],
        file: "/x/slave.conf",
      }),
    {
      code: "METHOD_NOT_ALLOWED",
      message:
        'method "command" is not in allowed_methods of /x/slave.conf: tar, restore, verify; command jobs run only where allowed_methods lists command and allowed_programs their program',
      context: { file: "/x/slave.conf", field: "allowed_methods" },
    },
  );
  t.end();
});

t.test("a PATH in command.env does not choose the program a name runs", async (t) => {
  const dir = tempDir(t);
  const marker = path.join(dir, "ran");
  const tool = path.join(dir, "abs-test-tool");
  writeFileSync(tool, `#!/bin/sh\n/usr/bin/touch ${marker}\n`);
  chmodSync(tool, 0o755);
  const ctx = makeCtx([], {
    allowedToRun: { methods: ["command"], programs: [`${dir}/*`], file: "slave.conf" },
  });
  const params = {
    program: "abs-test-tool",
    args: [],
    env: { PATH: dir },
    cwd: null,
    shell: false,
  };
  await t.rejects(runCommand(params, ctx), {
    code: "COMMAND_FAILED",
    message: `command.program "abs-test-tool" is not found in ${COMMAND_PATH}`,
  });
  t.notOk(existsSync(marker), "the job's PATH was not searched");
  await runCommand({ ...params, program: tool }, ctx);
  t.ok(existsSync(marker), "the same program runs by its allowed path");
});
