// What a dispatch may make this host run: slave.conf's allowed_methods and
// allowed_programs. The master (or anyone holding a key the slave accepts)
// chooses a job's method and program; the slave's own config decides
// whether it runs, as Bacula's file daemon does with "Allowed Job Command"
// and "Allowed Script Dirs". Every program the slave starts for a job goes
// through allowedProgram: command jobs today, the run_before/run_after
// hooks tomorrow.
//
// How a program is matched, and why:
//  - A name without "/" (pg_dump) is looked up in COMMAND_PATH, the fixed
//    PATH command jobs get, never in the slave's PATH nor in a PATH the
//    job's command.env sets, and the absolute path found is matched.
//  - A relative path (./x, bin/x) is refused: relative to which directory
//    would be the job's to choose.
//  - A path with ".", ".." or "//" parts is refused, not normalised:
//    /usr/lib/abs/../../../bin/sh must not pass for /usr/lib/abs/*, and the
//    kernel resolves ".." after following a symbolic link, so the lexical
//    normal form is not always the file that would run.
//  - The path as written (or found) is matched against the patterns, and
//    the program is started by that same path. Symbolic links are not
//    followed for the match: /bin/sh (on most systems a link to dash) is
//    allowed by writing /bin/sh, and Debian's /usr/bin/pg_dump, a link to
//    pg_wrapper, which reads its argv[0], runs as pg_dump. The master
//    cannot create links on the slave; whoever can create files in a
//    directory an allowed pattern covers can put any program there, link
//    or not, so such directories must be writable by root only (abs-slave(8)).
//  - command.shell runs /bin/sh, which is what is matched: allowing /bin/sh
//    (or any interpreter) allows every command line.

import { access, constants, stat } from "node:fs/promises";
import path from "node:path";
import { Minimatch } from "minimatch";
import { AbsError } from "../../errors.js";
import type { MethodName } from "../../config/job-definition.js";

/** What the slave allows to run, from slave.conf. */
export interface RunAllowlist {
  /** `allowed_methods`. */
  methods: readonly MethodName[];
  /** `allowed_programs`: absolute paths or globs of them (values.ts programPattern). */
  programs: readonly string[];
  /** The slave.conf they come from, named in every refusal. */
  file: string;
}

/**
 * The PATH of command jobs, and where a program given by name is looked up:
 * the system's directories only, never one a job or the slave's environment
 * could point elsewhere.
 */
export const COMMAND_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** allowed_programs globs: `*` matches names starting with a dot too; braces, extglobs and `!` are not special. */
const GLOB = { dot: true, nobrace: true, noext: true, nonegate: true, nocomment: true } as const;

/** Throws METHOD_NOT_ALLOWED unless `method` is in allowed_methods. */
export function checkMethod(method: MethodName, allow: RunAllowlist): void {
  if (allow.methods.includes(method)) return;
  const how =
    method === "command"
      ? "; command jobs run only where allowed_methods lists command and allowed_programs their program"
      : "";
  throw new AbsError(
    "METHOD_NOT_ALLOWED",
    `method "${method}" is not in allowed_methods of ${allow.file}: ${allow.methods.join(", ")}${how}`,
    { context: { file: allow.file, field: "allowed_methods" } },
  );
}

/**
 * The absolute path to start for `program` (`what` names it in messages,
 * e.g. "command.program"), or PROGRAM_NOT_ALLOWED saying why it may not run
 * (see the header for how it is matched). A name not found in COMMAND_PATH
 * is COMMAND_FAILED.
 */
export async function allowedProgram(
  program: string,
  what: string,
  allow: RunAllowlist,
): Promise<string> {
  const shown = `${what} ${JSON.stringify(program)}`;
  const refuse = (why: string): never => {
    throw new AbsError("PROGRAM_NOT_ALLOWED", `${shown} ${why}`, {
      context: { file: allow.file, field: "allowed_programs" },
    });
  };
  let abs = program;
  if (program.includes("\0")) {
    refuse("contains a NUL character");
  } else if (!program.includes("/")) {
    const found = await lookUp(program);
    if (found === null) {
      throw new AbsError("COMMAND_FAILED", `${shown} is not found in ${COMMAND_PATH}`, {
        context: { field: what },
      });
    }
    abs = found;
  } else if (!program.startsWith("/")) {
    refuse("is a relative path; give the program's absolute path");
  } else if (path.posix.normalize(program) !== program || program.endsWith("/")) {
    refuse('is not a plain absolute path (".", ".." and "//" parts are refused)');
  }
  if (!allow.programs.some((p) => new Minimatch(p, GLOB).match(abs))) {
    const list = allow.programs.length === 0 ? "(none)" : allow.programs.join(", ");
    const found = abs === program ? "" : `(found at ${abs}) `;
    refuse(`${found}is not in allowed_programs of ${allow.file}: ${list}`);
  }
  return abs;
}

/** The first executable regular file `name` in COMMAND_PATH, as a shell would find it. */
async function lookUp(name: string): Promise<string | null> {
  for (const dir of COMMAND_PATH.split(":")) {
    const file = path.join(dir, name);
    try {
      await access(file, constants.X_OK);
      if ((await stat(file)).isFile()) return file;
    } catch {
      // Not here: the next directory.
    }
  }
  return null;
}
