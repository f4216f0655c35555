// restore-plan.ts: the dry run of a restore refuses what the restore would,
// in the order it would, whether the archive or the target made the way
// unsafe, and lets through what a chain legitimately does.

import t from "tap";
import type { EntryType } from "../../../src/slave/manifest.js";
import { RestorePlan, type TargetLookup } from "../../../src/slave/methods/restore-plan.js";

type Step = ["write", string, EntryType] | ["delete", string];

const target: Record<string, EntryType | "other"> = {
  home: "directory",
  "home/alice": "directory",
  "home/alice/etc": "symlink",
  "home/alice/notes": "file",
  fifo: "other",
};
const lookup: TargetLookup = (rel) => Promise.resolve(target[rel] ?? null);

async function run(steps: Step[], withTarget = true): Promise<string> {
  const plan = new RestorePlan(withTarget ? lookup : null);
  try {
    for (const s of steps) {
      if (s[0] === "write") await plan.write(s[1], s[2], "A.tar");
      else await plan.delete(s[1], "A.manifest.json");
    }
    return "ok";
  } catch (err) {
    return `${(err as { code: string }).code} ${(err as Error).message}`;
  }
}

t.test("the dry run refuses what the restore would, and only that", async (t) => {
  const cases: Array<[string, Step[], string, boolean?]> = [
    [
      "a tree into an empty target",
      [
        ["write", "a", "directory"],
        ["write", "a/b", "file"],
      ],
      "ok",
    ],
    ["a missing parent is made", [["write", "x/y/z", "file"]], "ok"],
    [
      "a symlink of the archive, then through it",
      [
        ["write", "a.txt", "file"],
        ["write", "link", "symlink"],
        ["write", "link/passwd", "file"],
      ],
      'UNSAFE_ENTRY A.tar: entry "link/passwd" refused: "link" is a symlink restored from A.tar; nothing is extracted through a symlink',
    ],
    [
      "through a symlink of the target",
      [["write", "home/alice/etc/passwd", "file"]],
      'UNSAFE_ENTRY A.tar: entry "home/alice/etc/passwd" refused: "home/alice/etc" is a symlink in the target; nothing is extracted through a symlink',
    ],
    [
      "below a file of the target",
      [["write", "home/alice/notes/x", "file"]],
      'UNSAFE_ENTRY A.tar: entry "home/alice/notes/x" refused: "home/alice/notes" is not a directory in the target',
    ],
    [
      "below something else of the target",
      [["write", "fifo/x", "file"]],
      'UNSAFE_ENTRY A.tar: entry "fifo/x" refused: "fifo" is not a directory in the target',
    ],
    [
      "a symlink of the target replaced by a directory first",
      [
        ["write", "home/alice/etc", "directory"],
        ["write", "home/alice/etc/passwd", "file"],
      ],
      "ok",
    ],
    [
      "a symlink of the target deleted, then a file below the name",
      [
        ["delete", "home/alice/etc"],
        ["write", "home/alice/etc/passwd", "file"],
      ],
      "ok",
    ],
    [
      "a directory of the chain, then a symlink in its place, then through it",
      [
        ["write", "d", "directory"],
        ["write", "d/f", "file"],
        ["write", "d", "symlink"],
        ["write", "d/f", "file"],
      ],
      'UNSAFE_ENTRY A.tar: entry "d/f" refused: "d" is a symlink restored from A.tar; nothing is extracted through a symlink',
    ],
    [
      "a deletion through a symlink of the target",
      [["delete", "home/alice/etc/passwd"]],
      'UNSAFE_ENTRY A.manifest.json: entry "home/alice/etc/passwd" refused: "home/alice/etc" is a symlink in the target; nothing is extracted through a symlink',
    ],
    ["a deletion below a missing directory: nothing", [["delete", "nope/x"]], "ok"],
    [
      "a directory replaced by a file: nothing of the target below it any more",
      [
        ["write", "home", "file"],
        ["write", "home", "directory"],
        ["write", "home/alice/etc/x", "file"],
      ],
      "ok",
    ],
    [
      "the target is not there yet: the target's symlink does not count",
      [["write", "home/alice/etc/passwd", "file"]],
      "ok",
      false,
    ],
  ];
  for (const [name, steps, want, withTarget] of cases)
    t.equal(await run(steps, withTarget ?? true), want, name);
});
