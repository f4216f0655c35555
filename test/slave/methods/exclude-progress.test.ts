import t from "tap";
import { compileExclude } from "../../../src/slave/methods/exclude.js";
import type { Progress } from "../../../src/slave/methods/method-context.js";
import { ProgressThrottle } from "../../../src/slave/methods/progress.js";

t.test("exclude patterns", (t) => {
  const cases: Array<[string, string, boolean]> = [
    ["*.log", "/var/log/syslog.log", true],
    ["*.log", "/var/log/syslog", false],
    [".cache", "/home/a/.cache", true],
    [".cache", "/home/a/x.cache", false],
    ["/home/*/tmp", "/home/alice/tmp", true],
    ["/home/*/tmp", "/srv/home/alice/tmp", false],
    ["build/*.o", "/src/p/build/main.o", true],
    ["build/*.o", "/src/p/build/sub/main.o", false],
    ["/srv/**/core", "/srv/a/b/core", true],
    ["/srv/**/core", "/srv/core", true],
    ["file?.[ch]", "/x/file1.c", true],
    ["file?.[!ch]", "/x/file1.c", false],
    ["*", "/a/b", true],
    ["*.{tmp,bak}", "/a/x.bak", true],
    ["!keep", "/a/!keep", true],
    ["!keep", "/a/other", false],
  ];
  for (const [pattern, p, want] of cases)
    t.equal(compileExclude([pattern])(p), want, `${pattern} ~ ${p}`);
  t.throws(() => compileExclude([""]), { code: "BAD_ARGUMENT" });
  t.end();
});

t.test("progress is reported at most every 250 ms, and the last state at the end", (t) => {
  let now = 0;
  const seen: Progress[] = [];
  const p = new ProgressThrottle(
    (x) => seen.push(x),
    () => now,
  );
  for (let i = 0; i < 100; i++) {
    now += 10;
    p.add(1, 5, `/f${i}`);
  }
  p.flush();
  t.equal(seen.length, 5);
  t.same(seen[seen.length - 1], { files: 100, bytes: 500, path: "/f99" });
  t.end();
});
