// What an admin reads when a daemon cannot listen where its config says:
// which setting, which address, and the cause in words, instead of Node's
// bare `listen EADDRINUSE: address already in use 127.0.0.1:7370`.

import { ConfigError, describeError } from "./errors.js";
import { hasCode } from "./storage/fs-ops.js";

/** The causes in words, for a TCP address and for a Unix socket's path. */
const TCP_CAUSES: Record<string, string> = {
  EADDRINUSE: "the address is already in use (by another abs-master, or another program)",
  EACCES: "permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)",
  EADDRNOTAVAIL: "no network interface of this host has that address",
};
const UNIX_CAUSES: Record<string, string> = {
  EADDRINUSE: "something that is not a socket already has that name",
  EACCES: "permission denied on its directory",
  ENOENT: "its directory does not exist",
  ENOTDIR: "a part of its path is not a directory",
  EROFS: "the file system is read-only",
};

/**
 * The error for a failed listen on `address` (host:port, or the path of a
 * Unix socket), which the config's `setting` (listen, admin_socket) named.
 */
export function listenError(
  what: string,
  address: string,
  setting: string,
  err: unknown,
): ConfigError {
  const causes = address.startsWith("/") ? UNIX_CAUSES : TCP_CAUSES;
  const code = Object.keys(causes).find((c) => hasCode(err, c));
  const cause = code === undefined ? describeError(err) : causes[code];
  return new ConfigError(`cannot listen for ${what} on ${address} (${setting}): ${cause}`, {
    field: setting,
  });
}
