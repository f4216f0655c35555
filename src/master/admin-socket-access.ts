// Who may reach the admin socket. Its file mode and group decide who may
// administer (admin_socket_mode, admin_socket_group), and that holds only
// if nobody else can replace the file: in a directory writable by others,
// anyone may unlink the socket (or, while the master is down, put their own
// in its place) and read the requests of every `abs`, or answer them. The
// sticky bit does not help with the second: a file made while the master
// is down is the other user's, and `abs` connects to it all the same. So
// the directory is refused when writable by others, sticky or not, and
// when owned by anyone but root or the master's user (who could make it so).

import { readFile, stat } from "node:fs/promises";
import { ConfigError, describeError } from "../errors.js";

/** Why `dir` (mode, owner) may not hold the admin socket, or null. Pure. */
export function socketDirectoryProblem(
  dir: string,
  mode: number,
  uid: number,
  ownUid: number,
): string | null {
  const octal = (mode & 0o7777).toString(8).padStart(4, "0");
  if ((mode & 0o002) !== 0) {
    const sticky =
      (mode & 0o1000) !== 0
        ? " (the sticky bit does not keep out a socket made while the master is down)"
        : "";
    return `the directory of admin_socket ${dir} is writable by others (mode ${octal})${sticky}: anyone could replace the socket and read or answer admin requests; use a directory of its own, mode 0755 (such as /run/abs)`;
  }
  if (uid !== 0 && uid !== ownUid) {
    return `the directory of admin_socket ${dir} belongs to uid ${uid}, neither root nor the master's user (uid ${ownUid}), who could make it writable; use a directory of its own, owned by root or the master's user`;
  }
  return null;
}

/** Refuses a directory for the admin socket that others could write to (see above). */
export async function checkSocketDirectory(dir: string): Promise<void> {
  let info;
  try {
    info = await stat(dir);
  } catch (err) {
    throw new ConfigError(
      `cannot check the directory of admin_socket ${dir}: ${describeError(err)}`,
      {
        field: "admin_socket",
        file: dir,
      },
    );
  }
  const why = socketDirectoryProblem(dir, info.mode, info.uid, process.getuid?.() ?? info.uid);
  if (why !== null) throw new ConfigError(why, { field: "admin_socket", file: dir });
}

/** The gid of group `name` in /etc/group's text, or undefined. Pure. */
export function gidInGroupFile(text: string, name: string): number | undefined {
  for (const line of text.split("\n")) {
    const [group, , gid] = line.split(":");
    if (group === name && gid !== undefined && /^[0-9]+$/.test(gid)) return Number(gid);
  }
  return undefined;
}

/**
 * The gid of admin_socket_group: a number as it is, a name looked up in
 * `groupFile`. Groups only a directory service knows (LDAP through NSS) are
 * not in that file: give their gid.
 */
export async function resolveGroup(group: string, groupFile = "/etc/group"): Promise<number> {
  if (/^[0-9]+$/.test(group)) return Number(group);
  let text: string;
  try {
    text = await readFile(groupFile, "utf8");
  } catch (err) {
    throw new ConfigError(
      `admin_socket_group "${group}": cannot read ${groupFile}: ${describeError(err)}; give the group's numeric gid`,
      { field: "admin_socket_group" },
    );
  }
  const gid = gidInGroupFile(text, group);
  if (gid === undefined) {
    throw new ConfigError(
      `admin_socket_group "${group}": no such group in ${groupFile} (create it with groupadd, or give a numeric gid)`,
      { field: "admin_socket_group" },
    );
  }
  return gid;
}
