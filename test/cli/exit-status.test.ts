import { CommanderError, InvalidArgumentError } from "commander";
import t from "tap";
import {
  EXIT,
  ExitError,
  exitStatusForCode,
  exitStatusOf,
  failureText,
  isUnexpected,
} from "../../src/cli/exit-status.js";
import { AbsError, ConfigError, type ErrorCode, errorFromWire } from "../../src/errors.js";

t.test("error codes map to exit statuses", (t) => {
  const cases: [ErrorCode, number][] = [
    ["BAD_ARGUMENT", 2],
    ["UNREACHABLE", 3],
    ["JOB_NOT_FOUND", 4],
    ["DEFINITION_NOT_FOUND", 4],
    ["DRAINED", 5],
    ["QUEUE_FULL", 5],
    ["ILLEGAL_TRANSITION", 5],
    ["JOB_NOT_FINISHED", 5],
    ["NEEDS_REAL_MASTER", 5],
    ["FILE_IO", 1],
    ["CONFIG", 6],
    ["PROTOCOL", 1],
    ["JOBSDIR_IO", 1],
    ["INTERNAL", 1],
  ];
  for (const [code, status] of cases) t.equal(exitStatusForCode(code), status, code);
  t.end();
});

t.test("anything abs can end with has a status", (t) => {
  const cases: [string, unknown, number][] = [
    ["a master's refusal, from the wire", errorFromWire({ code: "DRAINED", message: "x" }), 5],
    ["an unknown code from a newer master", errorFromWire({ code: "NEW", message: "x" }), 1],
    ["help", new CommanderError(0, "commander.helpDisplayed", "(outputHelp)"), 0],
    ["an unknown option", new CommanderError(1, "commander.unknownOption", "x"), 2],
    ["help shown for a missing subcommand", new CommanderError(1, "commander.help", "x"), 2],
    ["a bad value", new InvalidArgumentError("expected a whole number >= 1"), 2],
    ["keygen's ConfigError", new ExitError(EXIT.FAILURE, new ConfigError("exists")), 1],
    ["a bug", new TypeError("x is not a function"), 1],
    ["not even an Error", "a string", 1],
  ];
  for (const [name, err, status] of cases) t.equal(exitStatusOf(err), status, name);
  t.end();
});

t.test("what is printed: the message; a stack trace only for a bug, only with -d", (t) => {
  const refusal = new AbsError("JOB_NOT_FOUND", "job 9 does not exist");
  t.equal(failureText(refusal, false), "abs: job 9 does not exist\n");
  t.equal(failureText(refusal, true), "abs: job 9 does not exist\n", "no stack for a refusal");
  t.notOk(isUnexpected(refusal));

  const bug = new TypeError("jobs.map is not a function");
  t.equal(failureText(bug, false), "abs: internal error: jobs.map is not a function\n");
  t.match(
    failureText(bug, true),
    /^abs: internal error: jobs\.map is not a function\nTypeError: jobs\.map is not a function\n\s+at /,
  );

  const internal = new AbsError("INTERNAL", "show-jobs failed: boom");
  t.equal(failureText(internal, false), "abs: show-jobs failed: boom\n");
  t.match(failureText(internal, true), /\n\s+at /, "INTERNAL is unexpected: a stack with -d");

  t.equal(failureText(new CommanderError(1, "commander.unknownOption", "x"), true), "");
  t.equal(
    failureText(new ExitError(EXIT.FAILURE, new ConfigError("file exists")), true),
    "abs: file exists\n",
  );
  t.end();
});
