// The slave link of a master, real (master.ts) or fake (fake-master.ts):
// the secrets it authenticates slaves with, taken from the config (the TLS
// certificate is made on the first start), the listening server, and the
// check every Kerberos connection passes before it may speak for a slave.

import { LinkServer } from "../auth/link-server.js";
import type { MasterSideConnection } from "../auth/link-connection.js";
import { loadRealmKey } from "../auth/realm-key.js";
import { parseServicePrincipal } from "../auth/kerberos.js";
import { principalMayUseName, type SlaveNamePolicy } from "../auth/slave-identity.js";
import { loadOrCreateMasterTls } from "../auth/tls.js";
import { formatHostPort } from "../config/host-port.js";
import { type MasterConfig, masterKeyFiles } from "../config/master-config.js";
import { checkKeyFiles } from "../config/read-config-files.js";
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
  // Whoever could change a key file could pose as the master or a slave.
  await checkKeyFiles(masterKeyFiles(config), { missingOk: true });
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
          // To the acceptor, no list means every principal of the realm.
          allowedPrincipals: anyPrincipal ? undefined : acceptedPrincipals(config),
        }
      : undefined;
  return { tls, realmKey, kerberos };
}

/**
 * Who may authenticate: allowed_principals, the principals slave_principal
 * maps names to, and the principals of this master's service, so that the
 * startup vote of another master of the realm (startup-vote.ts) gets an
 * authenticated answer. Passing the acceptor is not using a slave name: a
 * master's principal may use none (vouchedFor).
 */
function acceptedPrincipals(config: MasterConfig): string[] {
  const own = masterService(config);
  return [
    ...new Set([
      ...config.allowedPrincipals,
      ...Object.values(config.slavePrincipals),
      ...(own === undefined ? [] : [`${own}/*`]),
    ]),
  ];
}

/**
 * The service principal slaves get tickets for, as the acceptor names it
 * (`service/host@REALM`, the master's realm when service_principal has
 * none); null with realm-key.
 */
export function servicePrincipalOf(config: MasterConfig): string | null {
  if (config.auth !== "kerberos" || config.servicePrincipal === null) return null;
  const { service, host } = parseServicePrincipal(config.servicePrincipal);
  return `${service}/${host}@${config.realm}`;
}

/** How slaves authenticate, for the startup line (as `abs status` says it). */
export function describeSlaveAuth(config: MasterConfig): string {
  const principal = servicePrincipalOf(config);
  return principal === null ? config.auth : `${config.auth}, service principal ${principal}`;
}

function masterService(config: MasterConfig): string | undefined {
  return config.servicePrincipal === null
    ? undefined
    : parseServicePrincipal(config.servicePrincipal).service;
}

/** The rule of slave-identity.ts as master.conf sets it. */
export function slaveNamePolicy(config: MasterConfig): SlaveNamePolicy {
  return {
    service: config.slavePrincipalService,
    realm: config.realm,
    map: config.slavePrincipals,
  };
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
 * for the name (slave-identity.ts), or one host's keytab could report
 * another host's jobs. Otherwise the connection is refused, with the
 * reason, and false returned. A principal of this master's own service is
 * another master's startup-vote probe: it had its authenticated answer, and
 * is closed without a warning.
 */
export function vouchedFor(
  conn: MasterSideConnection,
  config: MasterConfig,
  logger: Logger,
): boolean {
  if (conn.mode !== "kerberos") return true;
  const policy = slaveNamePolicy(config);
  const why = principalMayUseName(conn.identity, conn.name, policy);
  if (why === null) return true;
  const own = masterService(config);
  if (own !== undefined && conn.identity.startsWith(`${own}/`) && own !== policy.service) {
    // Not closed at once: the probe is still checking the master's reply
    // token, and an error now would reach it first. It closes as soon as
    // it has its answer; it is closed here at the handshake's bound
    // otherwise. Its messages reach nothing, since no session is made.
    logger.info(
      `slave link: ${conn.peer}: ${conn.identity} is a master's principal (a startup vote): answered, not a slave`,
    );
    const timer = setTimeout(
      () =>
        conn.close(
          new AuthError("AUTH_FAILED", `${conn.identity} is a master's principal, not a slave's`),
        ),
      config.handshakeTimeoutMs,
    );
    timer.unref();
    conn.onClose(() => clearTimeout(timer));
    return false;
  }
  logger.warn(`slave link: ${conn.peer} refused: ${why}`, { slave: conn.name });
  conn.close(new AuthError("AUTH_FAILED", why));
  return false;
}
