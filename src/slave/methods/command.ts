// The `command` method: runs a configured program (restic, pg_dump, rsync,
// ...) without a shell unless `shell` is set, with the definition's
// arguments and working directory. Only a program slave.conf allows runs
// (allowed-programs.ts), by the absolute path that was matched.
//
// The environment is commandEnvironment's: PATH, HOME, LANG and what the
// job's command.env adds, not the slave's own. The slave's environment
// holds what the slave needs and a job must not see (KRB5_CLIENT_KTNAME,
// an admin's proxy or token variables, NODE_OPTIONS); jobs that need a
// variable say so in command.env.
// Keeps the exit status and the last lines of stdout and stderr (merged, in
// arrival order, each line cut at 1,000 characters, so memory is bounded).
// On cancel or max run time the process group gets SIGTERM, then SIGKILL
// after a grace time.

import { spawn } from "node:child_process";
import { stat } from "node:fs/promises";
import os from "node:os";
import { TextDecoder } from "node:util";
import { AbsError } from "../../errors.js";
import type { JsonObject } from "../../json-shape.js";
import { type MethodContext, type MethodResult, canceledError } from "./method-context.js";
import { absolute, readParams, stringArray } from "./params.js";
import { allowedProgram, COMMAND_PATH, type RunAllowlist } from "./allowed-programs.js";
import { ProgressThrottle } from "./progress.js";

/** The `command` parameters, as `CommandMethod` without `kind`. */
export interface CommandParams {
  program: string;
  args: string[];
  env: Record<string, string>;
  cwd: string | null;
  shell: boolean;
}

export function readCommandParams(params: JsonObject): CommandParams {
  return readParams("command", params, (f) => {
    const env: Record<string, string> = {};
    if (f.has("env")) {
      const e = f.object("env");
      for (const k of Object.keys(e.raw)) env[k] = e.string(k);
    }
    return {
      program: f.string("program", { nonEmpty: true }),
      args: f.has("args") ? stringArray(f, "args") : [],
      env,
      cwd: f.has("cwd") && f.raw.cwd !== null ? absolute(f, "cwd") : null,
      shell: f.has("shell") ? f.boolean("shell") : false,
    };
  });
}

/** Lines of output kept for the result. */
export const TAIL_LINES = 20;
/** Characters kept of one line. */
const MAX_LINE = 1000;
/** Milliseconds between SIGTERM and SIGKILL when `ctx.killGraceMs` is not set. */
export const DEFAULT_KILL_GRACE_MS = 5000;

/** The last `max` lines of a byte stream, with a bounded partial line. */
export class LineTail {
  private readonly lines: string[] = [];
  private partial = "";
  count = 0;

  constructor(private readonly max = TAIL_LINES) {}

  push(text: string): void {
    const parts = (this.partial + text).split("\n");
    this.partial = (parts.pop() ?? "").slice(0, MAX_LINE);
    for (const line of parts) this.keep(line);
  }

  private keep(line: string): void {
    this.count++;
    this.lines.push(line.replace(/\r$/, "").slice(0, MAX_LINE));
    if (this.lines.length > this.max) this.lines.shift();
  }

  end(): string[] {
    if (this.partial !== "") this.keep(this.partial);
    this.partial = "";
    return [...this.lines];
  }
}

/**
 * Variables command.env may not set: each makes an allowed program load or
 * run code of the job's choosing (the dynamic loader's LD_*, the shell's
 * startup files), which would make allowed_programs moot. Not a complete
 * list for every interpreter: abs-slave(8) says to allow interpreters only
 * through a wrapper that sets its own environment.
 */
const REFUSED_ENV =
  /^(?:LD_.*|BASH_ENV|ENV|SHELLOPTS|BASHOPTS|PS4|GCONV_PATH|NODE_OPTIONS|PERL5OPT|PERL5LIB|PYTHONPATH|PYTHONHOME|PYTHONSTARTUP|RUBYOPT)$/;

/**
 * The environment of a command job: PATH (COMMAND_PATH), HOME (the slave
 * user's home), LANG (the slave's, else C), then command.env, which may
 * replace them. PROGRAM_NOT_ALLOWED for a variable of REFUSED_ENV.
 */
export function commandEnvironment(env: Readonly<Record<string, string>>): Record<string, string> {
  for (const name of Object.keys(env)) {
    if (REFUSED_ENV.test(name)) {
      throw new AbsError(
        "PROGRAM_NOT_ALLOWED",
        `command.env.${name} is refused: it would make the program load or run other code`,
        { context: { field: `command.env.${name}` } },
      );
    }
  }
  return { PATH: COMMAND_PATH, HOME: homeDir(), LANG: process.env.LANG ?? "C", ...env };
}

/** The slave user's home from the password database, not $HOME; "/" without an entry. */
function homeDir(): string {
  try {
    return os.userInfo().homedir;
  } catch {
    return "/";
  }
}

/**
 * What a command job starts, checked against the allowlist: the absolute
 * program (/bin/sh with `shell`) and its environment. Throws why it may not
 * run. The dispatch check (preflight.ts) and runCommand both call it.
 */
export async function checkCommand(
  params: CommandParams,
  allow: RunAllowlist,
): Promise<{ file: string; env: Record<string, string> }> {
  const env = commandEnvironment(params.env);
  const file = params.shell
    ? await allowedProgram("/bin/sh", "command.shell's program", allow)
    : await allowedProgram(params.program, "command.program", allow);
  return { file, env };
}

export async function runCommand(params: CommandParams, ctx: MethodContext): Promise<MethodResult> {
  if (ctx.signal.aborted) throw canceledError(ctx.signal, "command");
  const { file, env } = await checkCommand(params, ctx.allowedToRun);
  const args = params.shell ? ["-c", params.program] : params.args;
  const shown = params.shell ? params.program : [params.program, ...params.args].join(" ");
  const tail = new LineTail();
  const progress = new ProgressThrottle(
    (p) => ctx.onProgress(p),
    () => ctx.now(),
  );
  const grace = ctx.killGraceMs ?? DEFAULT_KILL_GRACE_MS;

  const cwd = params.cwd ?? ctx.workDir ?? process.cwd();
  // spawn reports a missing cwd as if the program were missing: say which.
  const cwdStat = await stat(cwd).catch(() => null);
  if (cwdStat === null || !cwdStat.isDirectory()) {
    throw new AbsError("COMMAND_FAILED", `command.cwd "${cwd}" is not a directory`, {
      context: { file: cwd, field: "command.cwd" },
    });
  }
  const child = spawn(file, args, {
    cwd,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group, so a stop reaches the programs it starts too.
    detached: true,
  });
  const decoderOut = new TextDecoder();
  const decoderErr = new TextDecoder();
  let bytes = 0;
  const onData = (d: TextDecoder) => (chunk: Buffer) => {
    bytes += chunk.length;
    tail.push(d.decode(chunk, { stream: true }));
    // The program only: its arguments (or a shell line) may carry secrets,
    // and progress is shown by `abs show jobs` to whoever may ask.
    progress.add(0, chunk.length, file);
  };
  child.stdout.on("data", onData(decoderOut));
  child.stderr.on("data", onData(decoderErr));

  let stopped = false;
  let killTimer: NodeJS.Timeout | undefined;
  const signalGroup = (sig: NodeJS.Signals): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, sig);
    } catch {
      // Already gone.
    }
  };
  const onAbort = (): void => {
    stopped = true;
    signalGroup("SIGTERM");
    killTimer = setTimeout(() => signalGroup("SIGKILL"), grace);
    killTimer.unref();
  };
  ctx.signal.addEventListener("abort", onAbort, { once: true });

  const outcome = await new Promise<{
    code: number | null;
    sig: NodeJS.Signals | null;
    error?: Error;
  }>((resolve) => {
    child.once("error", (error) => resolve({ code: null, sig: null, error }));
    // "close": the process exited and its output pipes are drained.
    child.once("close", (code, sig) => resolve({ code, sig }));
  });
  ctx.signal.removeEventListener("abort", onAbort);
  if (killTimer !== undefined) clearTimeout(killTimer);
  // A process that exited but left children holding the group: stop them too.
  if (stopped) signalGroup("SIGKILL");
  progress.flush();
  const lastLines = tail.end();
  const data: JsonObject = {
    program: params.program,
    exitStatus: outcome.code,
    signal: outcome.sig,
    outputBytes: bytes,
    lastLines,
  };
  const last = lastLines.length > 0 ? `; last output: ${lastLines.slice(-3).join(" | ")}` : "";
  if (outcome.error !== undefined) {
    throw new AbsError(
      "COMMAND_FAILED",
      `command "${params.program}" could not be started: ${outcome.error.message}`,
      {
        cause: outcome.error,
      },
    );
  }
  if (stopped) {
    const err = canceledError(ctx.signal, `command "${shown}"`);
    throw new AbsError(
      "CANCELED",
      `${err.message} (killed with ${outcome.sig ?? "exit " + String(outcome.code)})${last}`,
      {
        cause: ctx.signal.reason,
      },
    );
  }
  if (outcome.code !== 0) {
    const how =
      outcome.sig !== null ? `was killed by ${outcome.sig}` : `exited with status ${outcome.code}`;
    throw new CommandFailedError(`command "${shown}" ${how}${last}`, data);
  }
  return { message: `command "${shown}" exited with status 0 (${bytes} bytes of output)`, data };
}

/** A command that exited non-zero; `data` has the exit status and last lines. */
export class CommandFailedError extends AbsError {
  constructor(
    message: string,
    readonly data: JsonObject,
  ) {
    super("COMMAND_FAILED", message);
  }
}
