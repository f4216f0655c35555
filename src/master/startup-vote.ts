// The startup check against two masters, after Ganeti's voting
// (ganeti-masterd.8: "it will abort if it doesn't get half plus one
// positive answers"). The jobs directory's lock keeps two masters off one
// directory; this keeps a second master off the realm when the directory
// was copied to another host.
//
// The config's `peers` are the other hosts that may run the master. Before
// it starts, the master asks each one, on its slave-link port, with the
// realm's own credentials, whether a master answers there:
//
//   authenticated      a master of this realm runs there: refuse to start
//   refused connection nothing listens, the host said so: a vote for us
//   anything else      no answer: a timeout, an unreachable host, and every
//                      unauthenticated answer (refused or rate-limited
//                      authentication, a failed proof, TLS trouble), which
//                      anyone on the port could send
//
// The master starts only if no master answered and at least half plus one
// of the peers voted. `--no-voting` skips the check (bin/abs-master-main.ts asks
// for a confirmation first), for a peer that is down for good.

import { hostname } from "node:os";
import { connectToMaster, type SlaveAuthOptions } from "../auth/link-client.js";
import { loadRealmKey } from "../auth/realm-key.js";
import { formatHostPort, type HostPort } from "../config/host-port.js";
import type { MasterConfig } from "../config/master-config.js";
import { AbsError, describeError, errorCode } from "../errors.js";
import type { Logger } from "../log.js";

/** Time a peer has to answer (TCP, TLS and authentication each), in ms. */
export const VOTE_TIMEOUT_MS = 5_000;

/** What one peer said. */
export type PeerAnswer =
  | { peer: string; kind: "master"; master: string }
  | { peer: string; kind: "vote"; why: string }
  | { peer: string; kind: "silent"; why: string };

/** The outcome of the vote: start, or refuse with the reason. Pure. */
export function decideVote(
  realm: string,
  answers: readonly PeerAnswer[],
): { start: true; votes: number } | { start: false; why: string } {
  if (answers.length === 0) return { start: true, votes: 0 }; // no peers listed: nobody to ask
  const masters = answers.filter((a) => a.kind === "master");
  if (masters.length > 0) {
    const where = masters.map((a) => `${a.peer} (master ${a.master})`).join(", ");
    return {
      start: false,
      why: `another master of realm ${realm} answers at ${where}; stop it first (or start with --no-voting)`,
    };
  }
  const votes = answers.filter((a) => a.kind === "vote").length;
  const needed = Math.floor(answers.length / 2) + 1;
  if (votes < needed) {
    const silent = answers
      .flatMap((a) => (a.kind === "silent" ? [`${a.peer}: ${a.why}`] : []))
      .join("; ");
    return {
      start: false,
      why: `only ${votes} of ${answers.length} peers answered, and half plus one (${needed}) must: ${silent}; check them and the network (or start with --no-voting)`,
    };
  }
  return { start: true, votes };
}

function withRealm(principal: string, realm: string): string {
  return principal.includes("@") ? principal : `${principal}@${realm}`;
}

/**
 * How this master authenticates to a peer: as a slave of its own realm
 * would, with the key of the probe's name derived from the realm key.
 */
async function probeAuth(config: MasterConfig): Promise<SlaveAuthOptions> {
  if (config.auth === "kerberos") {
    return {
      mode: "kerberos",
      // Peers are named like this master: abs/<host>.
      servicePrincipal: config.servicePrincipal ?? `abs/${hostname()}`,
      ...(config.keytab === null ? {} : { keytab: config.keytab }),
      // The initiator names itself as name@REALM.
      ...(config.servicePrincipal === null
        ? {}
        : { principal: withRealm(config.servicePrincipal, config.realm) }),
    };
  }
  return { mode: "realm-key", realmKey: await loadRealmKey(config.realmKeyFile ?? "") };
}

/**
 * The name the probe says hello with. It never registers. With Kerberos a
 * master's own principal may use no slave name (slave-identity.ts); a
 * master of the realm lets it authenticate all the same, as the principal
 * of its own service, answers, and closes it without a session
 * (slave-listener.ts vouchedFor), so the probe gets its authenticated answer.
 */
function probeName(config: MasterConfig): string {
  const principal = config.auth === "kerberos" ? config.servicePrincipal : null;
  if (principal !== null) {
    const host = principal.replace(/@.*$/, "").split("/")[1] ?? "";
    const label = host.split(".")[0] ?? "";
    if (label !== "") return label;
  }
  const host =
    hostname()
      .split(".")[0]
      ?.replace(/[^A-Za-z0-9_-]/g, "-") ?? "";
  return `vote-${host === "" ? "master" : host}`.slice(0, 63);
}

/** Asks one peer; never rejects. */
export async function askPeer(config: MasterConfig, peer: HostPort): Promise<PeerAnswer> {
  const where = formatHostPort(peer);
  try {
    const auth = await probeAuth(config);
    const conn = await connectToMaster({
      host: peer.host,
      port: peer.port,
      name: probeName(config),
      auth: auth.mode === "kerberos" ? { ...auth, servicePrincipal: `abs/${peer.host}` } : auth,
      // The probe only asks whether a master of the realm is there; it trusts
      // nothing it is told, so it does not need the peer's certificate.
      tls: { probe: true },
      handshakeTimeoutMs: VOTE_TIMEOUT_MS,
    });
    const master = conn.master;
    conn.close();
    return { peer: where, kind: "master", master };
  } catch (err) {
    return classify(where, err);
  }
}

/**
 * What a failed probe says. Only an authenticated answer counts as a
 * master (askPeer's success), and every error the peer sends, or TLS or an
 * authentication that fails, comes before the peer proved anything: anyone
 * who can listen on the port can send it, so it is no answer (a rogue that
 * answers "rate-limited" must not stop a master from starting, nor one that
 * fails TLS make it start). The one vote is a refused connection: the host
 * itself says nothing listens there, the state of a peer not running the
 * master.
 */
function classify(peer: string, err: unknown): PeerAnswer {
  const why = describeError(err);
  if (!(err instanceof AbsError)) return { peer, kind: "silent", why };
  if (err.code === "UNREACHABLE") {
    const code = errorCode(err.cause);
    return { peer, kind: code === "ECONNREFUSED" ? "vote" : "silent", why };
  }
  return UNAUTHENTICATED.has(err.code)
    ? { peer, kind: "silent", why: `unauthenticated answer: ${why}` }
    : { peer, kind: "silent", why };
}

/** Codes of a failure after the peer said something, none of it authenticated. */
const UNAUTHENTICATED: ReadonlySet<string> = new Set([
  "AUTH_FAILED",
  "AUTH_RATE_LIMITED",
  "TLS",
  "PROTOCOL",
  "FRAME_TOO_LARGE",
]);

/**
 * Asks every peer at once and decides. Resolves when the master may start
 * (at once without peers); rejects with VOTE_FAILED saying why not.
 */
export async function runStartupVote(config: MasterConfig, logger: Logger): Promise<void> {
  if (config.peers.length === 0) return;
  const answers = await Promise.all(config.peers.map((p) => askPeer(config, p)));
  for (const a of answers) {
    const said =
      a.kind === "master"
        ? `a master (${a.master}) answers`
        : a.kind === "vote"
          ? `no master (${a.why})`
          : `no answer (${a.why})`;
    logger.info(`startup vote: ${a.peer}: ${said}`);
  }
  const decision = decideVote(config.realm, answers);
  if (!decision.start) throw new AbsError("VOTE_FAILED", `startup vote: ${decision.why}`);
  logger.info(
    `startup vote: ${decision.votes} of ${answers.length} peers agree that no master runs`,
  );
}
