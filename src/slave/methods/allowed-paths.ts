// The slave's allowed paths: every source, destination and target of a job
// must be one of them or inside one. Checked on the path as written and, for
// the part that exists, on its real path, so a symlink cannot lead outside.

import { realpath } from "node:fs/promises";
import path from "node:path";
import { AbsError } from "../../errors.js";

function inside(p: string, root: string): boolean {
  const r = path.resolve(root);
  return p === r || p.startsWith(r === "/" ? "/" : r + "/");
}

/** The real path of `p`'s longest existing prefix, joined with the rest. */
export async function realOfExisting(p: string): Promise<string> {
  let head = p;
  const tail: string[] = [];
  for (;;) {
    try {
      return path.join(await realpath(head), ...tail);
    } catch {
      const parent = path.dirname(head);
      if (parent === head) return p;
      tail.unshift(path.basename(head));
      head = parent;
    }
  }
}

/**
 * Refuses `p` (the `role` of the job, e.g. "tar.sources") with PATH_NOT_ALLOWED
 * unless it lies under one of `allowed`.
 */
export async function checkAllowed(
  p: string,
  role: string,
  allowed: readonly string[],
): Promise<void> {
  const abs = path.resolve(p);
  const list = allowed.length === 0 ? "(none)" : allowed.join(", ");
  const refuse = (why: string): never => {
    throw new AbsError(
      "PATH_NOT_ALLOWED",
      `${role} "${p}"${why} is outside the slave's allowed paths: ${list}`,
      { context: { file: p, field: role } },
    );
  };
  if (!allowed.some((a) => inside(abs, a))) refuse("");
  const real = await realOfExisting(abs);
  if (real !== abs) {
    const realAllowed = await Promise.all(allowed.map((a) => realOfExisting(path.resolve(a))));
    if (!realAllowed.some((a) => inside(real, a))) refuse(` (really "${real}")`);
  }
}
