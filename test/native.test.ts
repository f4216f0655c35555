// src/native.ts: loading one of our C modules, and errnos turned into the
// errors Node's own calls throw.

import { linkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import t from "tap";
import { loadNativeFunction, systemError } from "../src/native.js";
import { tempDir } from "./helpers/tmp.js";

t.test("loadNativeFunction finds a built module, and says why one is missing", (t) => {
  const built = loadNativeFunction<() => void>("lstat_names", "lstatNames");
  t.type(built.fn, "function");
  t.match(built.file, /\/native\/build\/Release\/lstat_names\.node$/);
  t.equal(built.error, null);
  const link = loadNativeFunction<() => void>("link_fd", "linkFd");
  t.type(link.fn, "function", "link_fd.node too");

  const missing = loadNativeFunction<() => void>("no_such_module", "f");
  t.equal(missing.fn, null);
  t.match(missing.file, /\/native\/build\/Release\/no_such_module\.node$/);
  t.match(missing.error, /^Cannot find module '.*no_such_module\.node'$/, "one line");

  const noFunction = loadNativeFunction<() => void>("lstat_names", "nothing");
  t.equal(noFunction.fn, null);
  t.equal(noFunction.error, "it has no nothing");
  t.end();
});

t.test("systemError is the error Node throws, with and without a destination", (t) => {
  const dir = tempDir(t);
  const from = path.join(dir, "a");
  const to = path.join(dir, "b");
  writeFileSync(from, "");
  writeFileSync(to, "");
  let thrown: NodeJS.ErrnoException | undefined;
  try {
    linkSync(from, to);
  } catch (err) {
    thrown = err as NodeJS.ErrnoException;
  }
  const made = systemError(os.constants.errno.EEXIST, "link", from, to);
  t.ok(thrown, "link over an existing name fails");
  for (const key of ["message", "code", "errno", "syscall", "path", "dest"] as const) {
    t.equal(
      made[key as keyof NodeJS.ErrnoException],
      thrown?.[key as keyof NodeJS.ErrnoException],
      key,
    );
  }
  t.strictSame(
    {
      ...systemError(os.constants.errno.EACCES, "lstat", "/x"),
      message: systemError(os.constants.errno.EACCES, "lstat", "/x").message,
    },
    {
      errno: -os.constants.errno.EACCES,
      code: "EACCES",
      syscall: "lstat",
      path: "/x",
      message: "EACCES: permission denied, lstat '/x'",
    },
  );
  t.match(systemError(4242, "open", "/y"), {
    code: "E4242",
    message: "E4242: unknown error, open '/y'",
  });
  t.end();
});
