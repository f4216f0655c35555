// The slave's end of the slave link: dial the master over TLS, check its
// certificate (pin or CA, tls.ts), authenticate (SlaveHandshake) within the
// handshake timeout, and resolve with the authenticated connection. Any
// failure rejects with an AbsError saying what went wrong and where: the
// master's refusal ("master refused authentication: ..."), a certificate
// that does not match the pin (TLS), a master that cannot prove the realm
// key, a Kerberos problem of the slave (keytab, KDC), a timeout.
//
// The slave's configuration problems (a realm key file with a bad mode,
// Kerberos without a pin or a CA) are found before any connection is made.

import tls from "node:tls";
import { AbsError, AuthError, describeError } from "../errors.js";
import type { MasterToSlaveMessage, SlaveToMasterMessage } from "../protocol/slave-messages.js";
import { createKerberosInitiator, type KerberosInitiator } from "./kerberos.js";
import { LinkConnection, type SlaveSideConnection } from "./link-connection.js";
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, formatPeer } from "./link-server.js";
import { EKM_BYTES, EKM_LABEL, realmKeyFromBytes, type RealmKey } from "./realm-key.js";
import { deriveSlaveKey, loadSlaveKey, type SlaveKey } from "./slave-key.js";
import { SlaveHandshake, type SlaveHandshakeAuth } from "./slave-handshake.js";
import {
  checkMasterCertificate,
  compileSlaveTls,
  slaveConnectOptions,
  type SlaveTlsOptions,
} from "./tls.js";

/** How the slave authenticates. */
export type SlaveAuthOptions =
  | {
      mode: "realm-key";
      /**
       * The slave's key file (`abs keygen --slave NAME FILE`), read at each
       * connection; it must be the key of `name`. Exactly one of keyFile,
       * key and realmKey.
       */
      keyFile?: string;
      /** The slave's key itself, of `name`. */
      key?: SlaveKey;
      /**
       * The realm key, for a connection a master makes itself (the startup
       * vote's probe): the key of `name` is derived from it. A slave daemon
       * never holds the realm key (slave-key.ts).
       */
      realmKey?: Buffer | RealmKey;
    }
  | {
      mode: "kerberos";
      /** The master's service principal, `service/host[@REALM]`. */
      servicePrincipal: string;
      /** The slave's keytab. With ccache, or instead of it. */
      keytab?: string;
      /** The slave's credential cache, e.g. "FILE:/var/lib/abs/krb5cc". */
      ccache?: string;
      /** The slave principal, `name@REALM`. Default: the keytab's first, or the cache's. */
      principal?: string;
      /** What to change when the KDC has no such service principal (KerberosInitiatorOptions). */
      unknownServiceFix?: string;
      /** Replaces createKerberosInitiator (tests). */
      initiator?: () => Promise<KerberosInitiator>;
    };

export interface ConnectOptions {
  /** The master's host name or address. */
  host: string;
  /** The master's slave-link port. */
  port: number;
  /** This slave's name, sent in hello. */
  name: string;
  auth: SlaveAuthOptions;
  /** How to check the master's certificate. Default: neither pin nor CA (realm-key only). */
  tls?: SlaveTlsOptions;
  /** Time for the TCP+TLS connection, and again for authentication, in ms. Default 10,000. */
  handshakeTimeoutMs?: number;
  /** Local address to connect from (a multi-homed slave). Default: the system's choice. */
  localAddress?: string;
  /** Largest frame accepted, in bytes. Default 1 MiB. */
  maxFrameBytes?: number;
}

/**
 * Connects to the master and authenticates. Resolves with the open
 * connection; rejects with an AbsError: AuthError for every failure of TLS
 * or the authentication, UNREACHABLE when no connection could be made,
 * ConfigError for the slave's own settings.
 */
export async function connectToMaster(opts: ConnectOptions): Promise<SlaveSideConnection> {
  const where = formatPeer(opts.host, opts.port);
  const timeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const policy = await compileSlaveTls(opts.tls ?? {}, opts.auth.mode);
  const auth = await handshakeAuth(opts.auth, opts.name);

  const socket = await dial(opts, where, timeoutMs, policy);
  let binding: Buffer;
  try {
    binding = socket.exportKeyingMaterial(EKM_BYTES, EKM_LABEL, Buffer.alloc(0));
  } catch (err) {
    socket.destroy();
    throw new AuthError("TLS", `cannot export TLS keying material: ${describeError(err)}`);
  }
  return new Promise<SlaveSideConnection>((resolve, reject) => {
    // The port's closures use `conn` and `timer`, set up below before any
    // message can arrive.
    const handshake = new SlaveHandshake(
      { name: opts.name, auth, master: where, binding },
      {
        send: (message) => conn.sendHandshake(message),
        close: ({ error }) => {
          clearTimeout(timer);
          conn.shutdown(error, false);
          reject(error);
        },
        authenticated: (result) => {
          clearTimeout(timer);
          conn.open(result);
          resolve(conn);
        },
      },
    );
    // Messages are fed one at a time: a Kerberos step is asynchronous and the
    // master sends its reply token and auth-ok together. An error message
    // goes straight in, so a refusal ends a running step at once.
    let queue: Promise<void> = Promise.resolve();
    const conn = new LinkConnection<MasterToSlaveMessage, SlaveToMasterMessage>({
      socket,
      side: "slave",
      peer: where,
      maxFrameBytes: opts.maxFrameBytes,
      hooks: {
        message: (message) => {
          if (message.type === "error") void handshake.feed(message);
          else queue = queue.then(() => handshake.feed(message));
        },
        protocolError: (error) => handshake.protocolError(error),
        closed: () => handshake.peerClosed(),
      },
    });
    const timer = setTimeout(() => handshake.timeout(timeoutMs), timeoutMs);
    queue = handshake.start();
  });
}

async function handshakeAuth(auth: SlaveAuthOptions, name: string): Promise<SlaveHandshakeAuth> {
  switch (auth.mode) {
    case "realm-key": {
      const given = [auth.keyFile, auth.key, auth.realmKey].filter((k) => k !== undefined);
      if (given.length !== 1) {
        throw new AbsError(
          "BAD_ARGUMENT",
          "realm-key authentication needs exactly one of keyFile, key and realmKey",
        );
      }
      let key: SlaveKey;
      if (auth.keyFile !== undefined) key = await loadSlaveKey(auth.keyFile, name);
      else if (auth.key !== undefined) key = auth.key;
      else {
        const realm = auth.realmKey as Buffer | RealmKey;
        key = deriveSlaveKey(Buffer.isBuffer(realm) ? realmKeyFromBytes(realm) : realm, name);
      }
      if (key.name !== name) {
        throw new AbsError(
          "BAD_ARGUMENT",
          `the key of slave "${key.name}" (${key.source}) cannot authenticate slave "${name}"`,
        );
      }
      return { mode: "realm-key", key };
    }
    case "kerberos": {
      const { servicePrincipal, keytab, ccache, principal, unknownServiceFix } = auth;
      const initiator =
        auth.initiator ??
        (() =>
          createKerberosInitiator({
            servicePrincipal,
            ...(keytab === undefined ? {} : { keytab }),
            ...(ccache === undefined ? {} : { ccache }),
            ...(principal === undefined ? {} : { principal }),
            ...(unknownServiceFix === undefined ? {} : { unknownServiceFix }),
          }));
      return { mode: "kerberos", initiator };
    }
  }
}

/** Opens the TLS connection and checks the master's certificate; rejects with AuthError. */
function dial(
  opts: ConnectOptions,
  where: string,
  timeoutMs: number,
  policy: Awaited<ReturnType<typeof compileSlaveTls>>,
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: opts.host,
      port: opts.port,
      ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
      ...slaveConnectOptions(policy, opts.host),
    });
    // Small messages back to back: no waiting for delayed ACKs (link-server.ts).
    socket.setNoDelay(true);
    const fail = (error: AbsError): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(
      () =>
        fail(
          new AuthError(
            "AUTH_TIMEOUT",
            `no TLS connection to the master at ${where} within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    socket.once("error", (err: NodeJS.ErrnoException) => {
      const ca = policy.caFile === undefined ? "" : ` (CA file ${policy.caFile})`;
      const tlsProblem =
        err.code?.startsWith("ERR_TLS") === true || /certificate|SSL|TLS/i.test(err.message);
      fail(
        tlsProblem
          ? new AuthError(
              "TLS",
              `TLS connection to the master at ${where} failed: ${err.message}${ca}`,
              {
                cause: err,
                context: { peer: where },
              },
            )
          : new AbsError(
              "UNREACHABLE",
              `cannot connect to the master at ${where}: ${err.message}`,
              {
                cause: err,
                context: { peer: where },
              },
            ),
      );
    });
    socket.once("secureConnect", () => {
      try {
        checkMasterCertificate(socket, policy, where);
      } catch (err) {
        fail(err instanceof AbsError ? err : new AuthError("TLS", describeError(err)));
        return;
      }
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
  });
}
