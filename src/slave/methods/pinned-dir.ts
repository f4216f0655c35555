// Directories held open, and names reached through them, so that a restore
// as root cannot be led outside its target by a symlink swapped in while it
// runs (issue 19 §3: a directory replaced by a symlink to a 0700 directory
// outside the target made the final chmod by path change that one to 0777).
//
// Why this design, and not a staging directory renamed into place: a restore
// merges into an existing target (directories already there are kept, files
// not in the backup are left alone), which a rename cannot do, and the merge
// would again walk the target by path. Here every operation is on a name
// *inside a directory held open*, and nothing else:
//  - a directory is opened with O_DIRECTORY | O_NOFOLLOW, one name at a time
//    from "/" or from another open directory (a symlink gives ELOOP, a file
//    ENOTDIR, both refused);
//  - a name in an open directory is reached as /proc/self/fd/<fd>/<name>:
//    the kernel resolves /proc/self/fd/<fd> to the very directory the
//    descriptor holds (wherever it was moved since), then looks <name> up in
//    it. This is openat(2)'s "relative to a descriptor" without a native
//    module: Node has no openat, mkdirat, symlinkat, unlinkat or fchownat, and
//    one C helper for all of them would be more code than this file;
//  - mode, owner and times are set through a descriptor (fchmod, fchown,
//    futimes) opened with O_NOFOLLOW, or, for a symlink, with lchown and
//    lutimes on its name in its open directory, which do not follow it.
// A symlink swapped in anywhere is then never followed, and an entry swapped
// for another real directory only sends the write into that directory, which
// the swapper could write anyway.
//
// Without a usable /proc (a chroot without it), names are reached by path
// instead, with the same O_NOFOLLOW opens but races between them: only when
// not running as root, where the worst a swap can reach is what the slave's
// own user may change. As root, that is refused (UNSAFE_TARGET) before
// anything is written.
//
// The target itself is reached from "/" the same way, through its real path,
// and as root every directory on the way must be one that no user but root
// can change the entries of (`othersCanReplace`), as sshd's StrictModes asks
// of the directories above authorized_keys. A sticky directory such as /tmp
// is passed through when the next directory on the way is root's: there only
// its owner (and root) may rename or remove it. Otherwise another user could
// have made it before the restore, or swap it during one.

import { constants, type Stats } from "node:fs";
import { type FileHandle, mkdir, open, stat } from "node:fs/promises";
import path from "node:path";
import { AbsError, errorCode } from "../../errors.js";

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** An open directory: `at(name)` is the path of one of its entries. */
export class PinnedDir {
  private constructor(
    readonly handle: FileHandle,
    /** Its path when it was opened, for messages. */
    readonly shown: string,
    /** The path that reaches this very directory: /proc/self/fd/N, or its path when not pinned. */
    readonly self: string,
    readonly pinned: boolean,
  ) {}

  /** The path of entry `name` (one component) of this directory. */
  at(name: string): string {
    return this.self === "/" ? `/${name}` : `${this.self}/${name}`;
  }

  /**
   * Opens directory `name` in this one, never through a symlink: fails with
   * ELOOP (a symlink), ENOTDIR (not a directory) or ENOENT.
   */
  async open(name: string): Promise<PinnedDir> {
    const handle = await open(this.at(name), DIR_FLAGS);
    const shown = path.join(this.shown, name);
    return new PinnedDir(handle, shown, this.pinned ? fdPath(handle) : shown, this.pinned);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  /**
   * "/", pinned when /proc/self/fd reaches the descriptor's own directory
   * (`procFd`: where to look for it; tests name one that is not there).
   */
  static async root(procFd = "/proc/self/fd"): Promise<PinnedDir> {
    const handle = await open("/", DIR_FLAGS);
    let pinned = false;
    try {
      const [viaProc, held] = await Promise.all([stat(`${procFd}/${handle.fd}`), handle.stat()]);
      pinned = viaProc.dev === held.dev && viaProc.ino === held.ino;
    } catch {
      // No /proc: not pinned (see the header).
    }
    return new PinnedDir(handle, "/", pinned ? fdPath(handle) : "/", pinned);
  }
}

function fdPath(handle: FileHandle): string {
  return `/proc/self/fd/${handle.fd}`;
}

export function errnoCode(err: unknown): string | undefined {
  return errorCode(err);
}

/**
 * Whether a user other than root could rename or remove entries of the
 * directory `dir`, in particular the next one on a path, owned by
 * `childUid`: the directory is not root's, or it is writable by others, or
 * by a group other than root's, unless it is sticky and the entry is root's.
 */
export function othersCanReplace(
  dir: Pick<Stats, "uid" | "gid" | "mode">,
  childUid: number,
): boolean {
  if (dir.uid !== 0) return true;
  const writable = (dir.mode & 0o002) !== 0 || ((dir.mode & 0o020) !== 0 && dir.gid !== 0);
  if (!writable) return false;
  return !((dir.mode & 0o1000) !== 0 && childUid === 0);
}

function unsafeTarget(target: string, why: string): AbsError {
  return new AbsError("UNSAFE_TARGET", `restore.target "${target}": ${why}`, {
    context: { file: target, field: "restore.target" },
  });
}

/** The target's directory as far as it exists, and the names still to make below it. */
export interface OpenedTarget {
  /** The deepest existing directory of the target's real path (the target itself when it exists). */
  dir: PinnedDir;
  /** The components below `dir` still missing, outermost first. */
  missing: string[];
}

/**
 * Opens `target` (whose real path is `real`) from "/", one directory at a
 * time, never through a symlink. When `asRoot`, refuses (UNSAFE_TARGET) a
 * directory on the way that `othersCanReplace`, and a /proc that cannot pin
 * directories. Writes nothing: missing directories are made by `makeMissing`.
 */
export async function openTarget(
  target: string,
  real: string,
  asRoot: boolean,
  root: () => Promise<PinnedDir> = () => PinnedDir.root(),
): Promise<OpenedTarget> {
  let dir = await root();
  try {
    if (asRoot && !dir.pinned) {
      throw unsafeTarget(
        target,
        "/proc/self/fd does not lead to open directories here (is /proc mounted?); a restore as root needs it to never follow a symlink swapped in while it runs",
      );
    }
    const names = real.split("/").filter((n) => n !== "");
    for (let i = 0; i < names.length; i++) {
      let child: PinnedDir;
      try {
        child = await dir.open(names[i]);
      } catch (err) {
        const code = errnoCode(err);
        if (code === "ENOENT") {
          if (asRoot) await checkStep(target, dir, 0);
          return { dir, missing: names.slice(i) };
        }
        if (code === "ELOOP" || code === "ENOTDIR") {
          throw unsafeTarget(
            target,
            `"${path.join(dir.shown, names[i])}" is not a directory (a symlink or a file took its place since its real path was read?)`,
          );
        }
        throw err;
      }
      dir = await descend(target, dir, child, asRoot);
    }
    return { dir, missing: [] };
  } catch (err) {
    await dir.close();
    throw err;
  }
}

/**
 * Steps from `dir` into its open `child`: as root, checks the step first
 * (closing the child if it is refused), then closes `dir`. On a refusal
 * `dir` stays open for the caller to close.
 */
async function descend(
  target: string,
  dir: PinnedDir,
  child: PinnedDir,
  asRoot: boolean,
): Promise<PinnedDir> {
  try {
    if (asRoot) await checkStep(target, dir, (await child.handle.stat()).uid);
  } catch (err) {
    await child.close();
    throw err;
  }
  await dir.close();
  return child;
}

async function checkStep(target: string, dir: PinnedDir, childUid: number): Promise<void> {
  const st = await dir.handle.stat();
  if (othersCanReplace(st, childUid)) {
    throw unsafeTarget(
      target,
      `"${dir.shown}" (mode ${octal(st.mode & 0o7777)}, owner uid ${st.uid}) can be written by users other than root, who could swap what the restore writes: a restore as root refuses it`,
    );
  }
}

export function octal(mode: number): string {
  return mode.toString(8).padStart(4, "0");
}

/**
 * Makes the `missing` directories below `opened.dir` (default mode, as
 * `mkdir -p`) and returns the target, open. Closes `opened.dir`. As root, a
 * directory someone else made first is checked as `openTarget` does.
 */
export async function makeMissing(
  target: string,
  opened: OpenedTarget,
  asRoot: boolean,
): Promise<PinnedDir> {
  let dir = opened.dir;
  try {
    for (const name of opened.missing) {
      try {
        await mkdir(dir.at(name));
      } catch (err) {
        if (errnoCode(err) !== "EEXIST") throw err;
      }
      const child = await dir.open(name);
      dir = await descend(target, dir, child, asRoot);
    }
    return dir;
  } catch (err) {
    await dir.close();
    throw err;
  }
}
