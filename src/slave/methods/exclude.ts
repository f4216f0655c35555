// Exclude patterns of `tar.exclude`: shell globs (minimatch), matched on paths.
//
//   *.log            no "/": matches the last component anywhere (GNU tar's default)
//   .cache           a file or directory named .cache anywhere
//   /home/*/tmp      leading "/": matches the absolute path from the root
//   build/*.o        "/" inside: matches the trailing components (any depth above)
//
// `*` and `?` never match "/", `**` as a whole component matches any number
// of components, `[abc]`, `[a-z]` and `[!x]` are classes, `{a,b}` expands,
// `\` escapes. Dot files are matched like any other (`*` matches `.hidden`).
// A leading `!` or `#` has no special meaning. An excluded directory is left
// out with everything below it.
//
// Pure code. minimatch rather than Node's `path.matchesGlob`, which prints an
// ExperimentalWarning on Node 20.

import path from "node:path";
import { Minimatch } from "minimatch";
import { AbsError } from "../../errors.js";

export type ExcludeMatcher = (absolutePath: string) => boolean;

const OPTIONS = { dot: true, nonegate: true, nocomment: true } as const;

/** Compiles the patterns; an empty pattern is a BAD_ARGUMENT naming it. */
export function compileExclude(patterns: readonly string[]): ExcludeMatcher {
  const matchers = patterns.map((pattern): ExcludeMatcher => {
    const p = pattern.length > 1 ? pattern.replace(/\/+$/, "") : pattern;
    if (p === "" || p === "/") {
      throw new AbsError(
        "BAD_ARGUMENT",
        `tar.exclude: pattern "${pattern}" would match nothing or everything`,
        { context: { field: "tar.exclude" } },
      );
    }
    if (p.startsWith("/")) {
      const m = new Minimatch(p, OPTIONS);
      return (abs) => m.match(abs);
    }
    if (!p.includes("/")) {
      const m = new Minimatch(p, OPTIONS);
      return (abs) => m.match(path.posix.basename(abs));
    }
    const m = new Minimatch(`/**/${p}`, OPTIONS);
    return (abs) => m.match(abs);
  });
  return (absolutePath) => matchers.some((m) => m(absolutePath));
}
