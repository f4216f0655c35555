// The dry run of a restore: every deletion and entry of the chain, in the
// order the restore will apply them, played on a model of the target, so
// that an entry the restore would refuse (one written through a symlink or
// below a file, whether the archive or the target put it there) is refused
// before the first write (abs.conf(5) promises it; before, a harmless first
// entry was written, then `link/passwd` after `link -> /etc` was refused).
//
// The model is a tree of the names the chain touches. A name not in it is
// looked up in the target (lstat, read only) when its parent is a directory
// that was there before the restore and kept; below a directory the chain
// made, or replaced, there is nothing. This mirrors restore.ts exactly: a
// directory entry keeps a directory already there and replaces anything
// else, a file or symlink entry replaces whatever is there, a deletion
// removes a whole subtree, and a missing parent is made as a directory.
//
// The dry run is what lets the restore refuse early; it is not what keeps
// the restore inside its target: the restore checks every directory again
// as it opens it (pinned-dir.ts), and refuses then what changed meanwhile.

import { AbsError } from "../../errors.js";
import type { EntryType } from "../manifest.js";

/** What a name is in the target before the restore, as lstat says (null: nothing). */
export type TargetLookup = (rel: string) => Promise<EntryType | "other" | null>;

interface Node {
  kind: EntryType | "other" | "missing";
  /** A directory that was in the target and was kept: names not in `children` are looked up there. */
  real: boolean;
  /** The archive that put it there; null when it was in the target. */
  from: string | null;
  children: Map<string, Node> | null;
}

export class RestorePlan {
  private readonly root: Node;

  /** `lookup` reads the target; null when the target does not exist yet. */
  constructor(private readonly lookup: TargetLookup | null) {
    this.root = { kind: "directory", real: lookup !== null, from: null, children: null };
  }

  /** The restore of `rel` (of `type`, from `archive`); throws UNSAFE_ENTRY as the restore would. */
  async write(rel: string, type: EntryType, archive: string): Promise<void> {
    const { parent, name } = await this.parentOf(rel, archive, true);
    if (parent === null) return;
    const node = await this.child(parent, rel, name);
    if (type === "directory" && node.kind === "directory") return;
    this.children(parent).set(name, { kind: type, real: false, from: archive, children: null });
  }

  /** The deletion of `rel` by `manifest`'s backup; nothing when a parent is missing. */
  async delete(rel: string, manifest: string): Promise<void> {
    const { parent, name } = await this.parentOf(rel, manifest, false);
    if (parent === null) return;
    this.children(parent).set(name, {
      kind: "missing",
      real: false,
      from: manifest,
      children: null,
    });
  }

  private children(node: Node): Map<string, Node> {
    node.children ??= new Map();
    return node.children;
  }

  /** The node of `rel`'s name `name` in `parent` (`rel` is its path). */
  private async child(parent: Node, rel: string, name: string): Promise<Node> {
    const known = parent.children?.get(name);
    if (known !== undefined) return known;
    const kind =
      parent.real && this.lookup !== null ? ((await this.lookup(rel)) ?? "missing") : "missing";
    const node: Node = { kind, real: kind === "directory", from: null, children: null };
    this.children(parent).set(name, node);
    return node;
  }

  private async parentOf(
    rel: string,
    source: string,
    create: boolean,
  ): Promise<{ parent: Node | null; name: string }> {
    const parts = rel.split("/");
    const name = parts.pop() ?? rel;
    let node = this.root;
    let sofar = "";
    for (const part of parts) {
      sofar = sofar === "" ? part : `${sofar}/${part}`;
      const next = await this.child(node, sofar, part);
      switch (next.kind) {
        case "directory":
          break;
        case "missing":
          if (!create) return { parent: null, name };
          next.kind = "directory";
          next.real = false;
          next.from = source;
          break;
        case "symlink":
          throw refused(
            source,
            rel,
            `"${sofar}" is a symlink ${where(next)}; nothing is extracted through a symlink`,
          );
        case "file":
        case "other":
          throw refused(source, rel, `"${sofar}" is not a directory ${where(next)}`);
      }
      node = next;
    }
    return { parent: node, name };
  }
}

function where(node: Node): string {
  return node.from === null ? "in the target" : `restored from ${node.from}`;
}

export function refused(file: string, entry: string, why: string): AbsError {
  return new AbsError("UNSAFE_ENTRY", `${file}: entry "${entry}" refused: ${why}`, {
    context: { file },
  });
}
