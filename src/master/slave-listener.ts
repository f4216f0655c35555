// The slave link of a master, real (master.ts) or fake (fake-master.ts):
// the secrets it authenticates slaves with, taken from the config (the TLS
// certificate is made on the first start), the listening server, and the
// check every Kerberos connection passes before it may speak for a slave.

import { LinkServer } from "../auth/link-server.js";
import type { MasterSideConnection } from "../auth/link-connection.js";
import { loadRealmKey } from "../auth/realm-key.js";
import { principalMayUseName } from "../auth/slave-identity.js";
import { loadOrCreateMasterTls } from "../auth/tls.js";
import { formatHostPort } from "../config/host-port.js";
import type { MasterConfig } from "../config/master-config.js";
import { AuthError } from "../errors.js";
import type { Logger } from "../log.js";
import { listenError } from "../listen-error.js";

export type SlaveLinkSecrets = Pick<
  Parameters<typeof LinkServer.listen>[0],
  "tls" | "realmKey" | "kerberos"
>;

/**
 * Loads what slaves are authenticated with. `anyPrincipal`: every Kerberos
 * principal of the realm, whatever allowed_principals says (the fake master).
 */
export async function loadSlaveLinkSecrets(
  config: MasterConfig,
  hostName: string,
  logger: Logger,
  anyPrincipal = false,
): Promise<SlaveLinkSecrets> {
  const tls = await loadOrCreateMasterTls({
    certFile: config.tlsCert,
    keyFile: config.tlsKey,
    stateDir: config.stateDir,
    hostName,
  });
  if (tls.created) logger.info(`generated a TLS certificate in ${tls.certFile}`);
  logger.info(`TLS certificate ${tls.certFile}, SHA-256 fingerprint ${tls.fingerprint}`);
  const realmKey =
    config.realmKeyFile === null ? undefined : await loadRealmKey(config.realmKeyFile);
  const kerberos =
    config.auth === "kerberos" && config.keytab !== null && config.servicePrincipal !== null
      ? {
          keytab: config.keytab,
          realm: config.realm,
          servicePrincipal: config.servicePrincipal,
          // An empty list in the config means every principal of the
          // realm; to the acceptor, a list means only those.
          allowedPrincipals:
            anyPrincipal || config.allowedPrincipals.length === 0
              ? undefined
              : config.allowedPrincipals,
        }
      : undefined;
  return { tls, realmKey, kerberos };
}

/** Listens for slaves on the config's address; logs where. */
export async function listenForSlaves(
  config: MasterConfig,
  secrets: SlaveLinkSecrets,
  hostName: string,
  logger: Logger,
): Promise<LinkServer> {
  let link: LinkServer;
  try {
    link = await LinkServer.listen({
      host: config.listen.host,
      port: config.listen.port,
      ...secrets,
      masterName: hostName,
      handshakeTimeoutMs: config.handshakeTimeoutMs,
      maxHandshakes: config.maxHandshakes,
      maxHandshakesPerAddress: config.maxHandshakesPerAddress,
      logger,
    });
  } catch (err) {
    throw listenError("slaves", formatHostPort(config.listen), "listen", err);
  }
  logger.info(`slave link listening on ${formatHostPort({ ...config.listen, port: link.port })}`);
  return link;
}

/**
 * True when `conn` may speak for the slave it named: always with the realm
 * key (the MAC covers the name); with Kerberos only if its principal vouches
 * for the name, or one host's keytab could report another host's jobs.
 * Otherwise the connection is refused, with the reason, and false returned.
 */
export function vouchedFor(conn: MasterSideConnection, logger: Logger): boolean {
  if (conn.mode !== "kerberos") return true;
  const why = principalMayUseName(conn.identity, conn.name);
  if (why === null) return true;
  logger.warn(`slave link: ${conn.peer} refused: ${why}`, { slave: conn.name });
  conn.close(new AuthError("AUTH_FAILED", why));
  return false;
}
