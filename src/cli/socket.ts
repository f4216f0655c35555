// Which admin socket `abs` talks to: the first source given, in the order
// SOCKET_HELP below lists (and `abs --help` prints). --socket and
// ABS_ADMIN_SOCKET name the socket; --config, ABS_CONFIG and
// /etc/abs/master.conf name a master.conf whose admin_socket is used.
//
// --socket and --config together are refused (exit status 2). A master.conf
// without admin_socket means the master's default. A config
// named by -c or ABS_CONFIG must exist. One with mistakes elsewhere still
// gives its admin_socket, so that `abs reload` reaches the master, which
// lists the mistakes (and logs them); one whose admin_socket is not certain
// (adminSocketDespite says when) is an error (CONFIG), never skipped: falling through to another socket
// would talk to another master than the one meant. Empty environment
// variables count as unset.
//
// The files are only read for the admin commands, never for keygen or
// fingerprint, and behind a small interface so tests can pass fakes. The
// config loader is imported only when a file is read: with --socket (or
// $ABS_ADMIN_SOCKET) abs starts without it.

import { existsSync } from "node:fs";
import { BadArgumentError, ConfigError } from "../errors.js";
import { DEFAULT_ADMIN_SOCKET, DEFAULT_MASTER_CONF } from "../config/default-paths.js";

export { DEFAULT_ADMIN_SOCKET, DEFAULT_MASTER_CONF };

/** How `abs --help` describes the rule above. */
export const SOCKET_HELP = `The admin socket is the first of:
  1. -s, --socket PATH
  2. $ABS_ADMIN_SOCKET
  3. admin_socket in the master.conf named by -c, --config FILE
  4. admin_socket in the master.conf named by $ABS_CONFIG
  5. admin_socket in ${DEFAULT_MASTER_CONF}, if that file exists
  6. ${DEFAULT_ADMIN_SOCKET}
--socket and --config together are refused.`;

export interface SocketSources {
  /** -s, --socket. */
  socket?: string | undefined;
  /** -c, --config. */
  config?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
}

export interface SocketChoice {
  path: string;
  /** Where the path came from, for messages: "--socket", "ABS_ADMIN_SOCKET", "admin_socket in FILE"... */
  source: string;
}

/** The file system as socket resolution needs it. */
export interface MasterConfReader {
  exists(file: string): boolean;
  /** admin_socket of a master.conf (the default when it has none); throws ConfigError. */
  adminSocketOf(file: string): Promise<string>;
}

function given(value: string | undefined): value is string {
  return value !== undefined && value !== "";
}

export async function resolveAdminSocket(
  sources: SocketSources,
  reader: MasterConfReader = masterConfReader,
): Promise<SocketChoice> {
  if (given(sources.socket) && given(sources.config)) {
    // Both given on one command line is a mistake, not a precedence question.
    throw new BadArgumentError(
      "--socket and --config both say where the admin socket is; give one of them",
    );
  }
  if (given(sources.socket)) return { path: sources.socket, source: "--socket" };
  const fromEnv = sources.env.ABS_ADMIN_SOCKET;
  if (given(fromEnv)) return { path: fromEnv, source: "ABS_ADMIN_SOCKET" };
  const configs: [string | undefined, string][] = [
    [sources.config, "--config"],
    [sources.env.ABS_CONFIG, "ABS_CONFIG"],
  ];
  for (const [file, how] of configs) {
    if (given(file)) {
      return { path: await reader.adminSocketOf(file), source: `admin_socket in ${file} (${how})` };
    }
  }
  if (reader.exists(DEFAULT_MASTER_CONF)) {
    return {
      path: await reader.adminSocketOf(DEFAULT_MASTER_CONF),
      source: `admin_socket in ${DEFAULT_MASTER_CONF}`,
    };
  }
  return { path: DEFAULT_ADMIN_SOCKET, source: "the default" };
}

/**
 * Reads admin_socket the way the master does: master.conf alone (jobs.d is
 * not needed for one key), checked by the master's own loader so `abs` and
 * the master never disagree on the value; with mistakes elsewhere in the
 * file, through adminSocketDespite.
 */
export const masterConfReader: MasterConfReader = {
  exists: (file) => existsSync(file),
  async adminSocketOf(file) {
    const [{ formatIssues }, { adminSocketDespite, loadMasterConfig }, { readConfigFile }] =
      await Promise.all([
        import("../config/issues.js"),
        import("../config/master-config.js"),
        import("../config/read-config-files.js"),
      ]);
    const conf = await readConfigFile(file, { strict: false });
    const loaded = loadMasterConfig([conf]);
    if ("errors" in loaded) {
      const socket = adminSocketDespite(conf, loaded.errors);
      if (socket !== undefined) return socket;
      throw new ConfigError(
        `cannot take admin_socket from ${file}, which has errors (or name the socket with --socket):\n${formatIssues(loaded.errors)}`,
        { file },
      );
    }
    return loaded.config.adminSocket;
  },
};
