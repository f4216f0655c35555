// TLS material of the slave link.
//
// Master: a configured certificate and key, or, when none is configured, a
// self-signed certificate made on first start in the state directory and
// reused afterwards (so its fingerprint, which slaves pin, stays the same).
// The key is EC P-256, the certificate is valid for 20 years and names the
// master's host in CN and subjectAltName (DNS or IP), so a slave can also
// trust it as its own CA file. Made with the `selfsigned` package (Node's
// crypto makes keys but not X.509 certificates).
//
// Slave: how it checks the master's certificate. One of
//   - pin: the SHA-256 fingerprint of the master's certificate (what
//     `abs fingerprint` prints); compared in constant time after the TLS
//     handshake and before a byte is sent;
//   - ca: a PEM file of CA certificates; normal verification, host name
//     included;
//   - both: both checks;
//   - neither: realm-key mode only, where the realm-key MACs are bound to
//     the TLS session and so detect a relay. Kerberos mode is not bound to
//     the session and refuses to run without a pin or a CA.
//
// TLS 1.3 only: ABS speaks to itself, and the channel binding relies on
// RFC 8446 exporters.

import { X509Certificate, timingSafeEqual } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { mkdir, open, readFile, stat } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import type tls from "node:tls";
import { AuthError, ConfigError, describeError, errorCode, hasCode } from "../errors.js";
import { replaceFile } from "../storage/durable-file.js";
import { type FsOps, realFsOps } from "../storage/fs-ops.js";

/** Oldest TLS version either side accepts. */
export const TLS_MIN_VERSION = "TLSv1.3";

/** File names of the generated material in the master's state directory. */
export const GENERATED_CERT_FILE = "tls-cert.pem";
export const GENERATED_KEY_FILE = "tls-key.pem";

/** Validity of a generated certificate, in days (20 years). */
export const GENERATED_CERT_DAYS = 20 * 365;

/** The master's TLS material, ready for tls.createServer. */
export interface MasterTlsMaterial {
  /** PEM certificate (chain). */
  cert: string;
  /** PEM private key. */
  key: string;
  /** SHA-256 fingerprint of the (first) certificate, upper-case colon hex. */
  fingerprint: string;
  certFile: string;
  keyFile: string;
  /** True when this call generated the certificate (first start). */
  created: boolean;
}

export interface MasterTlsOptions {
  /** Configured certificate file (PEM); with keyFile, or neither. Default: generated. */
  certFile?: string | null;
  /** Configured private key file (PEM). */
  keyFile?: string | null;
  /** The master's state directory, where a generated certificate lives. Created (0700) if missing. */
  stateDir: string;
  /** Host name (or IP address) the generated certificate names in CN and subjectAltName. */
  hostName: string;
  /**
   * The rename, unlink and directory fsync of a generated file, for tests
   * that watch them. Default: the real ones (storage/fs-ops.ts).
   */
  fs?: TlsFileOps;
}

/** What writing a generated file does besides creating its temp file. */
export type TlsFileOps = Pick<FsOps, "rename" | "unlink" | "fsyncDir">;

/**
 * The master's certificate and key: the configured ones, else those
 * generated earlier in `stateDir`, else new ones generated now (key file
 * mode 0600). Throws ConfigError naming the file for anything unusable.
 */
export async function loadOrCreateMasterTls(opts: MasterTlsOptions): Promise<MasterTlsMaterial> {
  const hasCert = opts.certFile !== undefined && opts.certFile !== null;
  const hasKey = opts.keyFile !== undefined && opts.keyFile !== null;
  if (hasCert !== hasKey) {
    throw new ConfigError(
      "a TLS certificate needs its key and a key its certificate: configure both tls_cert and tls_key, or neither for a self-signed certificate",
      { field: hasCert ? "tls_key" : "tls_cert" },
    );
  }
  if (hasCert && hasKey) {
    return loadMaterial(opts.certFile as string, opts.keyFile as string, false);
  }
  const certFile = path.join(opts.stateDir, GENERATED_CERT_FILE);
  const keyFile = path.join(opts.stateDir, GENERATED_KEY_FILE);
  const [certExists, keyExists] = await Promise.all([exists(certFile), exists(keyFile)]);
  if (certExists && keyExists) return loadMaterial(certFile, keyFile, false);
  if (certExists !== keyExists) {
    const [present, absent] = certExists ? [certFile, keyFile] : [keyFile, certFile];
    throw new ConfigError(
      `${present} exists but ${absent} does not: the generated TLS material is incomplete. Remove ${present} to make a new certificate (slaves pinning the old fingerprint will need the new one)`,
      { file: absent },
    );
  }
  await generateSelfSigned(opts.hostName, certFile, keyFile, opts.stateDir, opts.fs ?? realFsOps);
  return loadMaterial(certFile, keyFile, true);
}

async function generateSelfSigned(
  hostName: string,
  certFile: string,
  keyFile: string,
  stateDir: string,
  fs: TlsFileOps,
): Promise<void> {
  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new ConfigError(`cannot create state directory ${stateDir}: ${describeError(err)}`, {
      file: stateDir,
    });
  }
  const notBefore = new Date(Date.now() - 60 * 60 * 1000); // an hour of clock skew
  const notAfter = new Date(notBefore.getTime() + GENERATED_CERT_DAYS * 24 * 60 * 60 * 1000);
  const altName =
    net.isIP(hostName) !== 0
      ? { type: 7 as const, ip: hostName }
      : { type: 2 as const, value: hostName };
  let pems;
  try {
    // Loaded only here: selfsigned and its ASN.1 libraries take some 100 ms
    // to load, which every start of `abs` and of the master would pay.
    const { generate } = await import("selfsigned");
    pems = await generate([{ name: "commonName", value: hostName }], {
      keyType: "ec",
      curve: "P-256",
      algorithm: "sha256",
      notBeforeDate: notBefore,
      notAfterDate: notAfter,
      extensions: [
        { name: "basicConstraints", cA: false, critical: true },
        { name: "keyUsage", digitalSignature: true, critical: true },
        { name: "extKeyUsage", serverAuth: true },
        { name: "subjectAltName", altNames: [altName] },
      ],
    });
  } catch (err) {
    throw new ConfigError(
      `cannot generate a self-signed TLS certificate for ${hostName}: ${describeError(err)}`,
    );
  }
  // Key first, then certificate, each replaced durably (temp file, fsync,
  // rename, fsync of the directory): the certificate's presence is what
  // marks the pair complete, and a crash between the two leaves a lone key,
  // which the next start reports. Without the directory fsync a crash of
  // the host could lose the certificate after slaves pinned it.
  await writeNew(fs, keyFile, pems.private, 0o600);
  await writeNew(fs, certFile, pems.cert, 0o644);
}

async function writeNew(fs: TlsFileOps, file: string, text: string, mode: number): Promise<void> {
  const writeSynced = async (temp: string, data: string): Promise<void> => {
    const handle = await open(
      temp,
      fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL,
      mode,
    );
    try {
      // The umask may have narrowed the mode: chmod so it is exactly `mode`.
      await handle.chmod(mode);
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  };
  try {
    await replaceFile({ ...fs, writeSynced }, file, text, TLS_TEMP_PREFIX);
  } catch (err) {
    throw new ConfigError(`cannot write ${file}: ${describeError(err)}`, { file });
  }
}

/** Temp files of writeNew, in the state directory beside the certificate. */
const TLS_TEMP_PREFIX = ".tmp-";

async function loadMaterial(
  certFile: string,
  keyFile: string,
  created: boolean,
): Promise<MasterTlsMaterial> {
  const cert = await readText(certFile, "TLS certificate");
  const key = await readText(keyFile, "TLS private key");
  const fingerprint = certificateFingerprint(cert, certFile);
  if (!created) {
    // A key file others can read is worth a refusal: anyone who reads it can
    // pose as the master.
    const info = await stat(keyFile);
    if ((info.mode & 0o077) !== 0) {
      throw new ConfigError(
        `TLS private key ${keyFile} has mode ${(info.mode & 0o777).toString(8).padStart(4, "0")}: group or others can read it; refusing to use it. Run \`chmod 600 ${keyFile}\``,
        { file: keyFile },
      );
    }
  }
  return { cert, key, fingerprint, certFile, keyFile, created };
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const code = errorCode(err);
    const why =
      code === "ENOENT"
        ? "does not exist"
        : code === "EACCES"
          ? `is not readable by this process (uid ${process.getuid?.() ?? "?"})`
          : `cannot be read: ${describeError(err)}`;
    throw new ConfigError(`${what} ${file} ${why}`, { file });
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if (hasCode(err, "ENOENT")) return false;
    throw new ConfigError(`cannot read ${file}: ${describeError(err)}`, { file });
  }
}

// ---------------------------------------------------------------------------
// Fingerprints

/**
 * The SHA-256 fingerprint of a certificate, upper-case colon hex, as
 * `openssl x509 -noout -fingerprint -sha256` prints it after the "=".
 * Takes PEM text (the first certificate in it) or DER bytes; `source` names
 * it in the error for anything that is not a certificate.
 */
export function certificateFingerprint(cert: string | Buffer, source = "certificate"): string {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    // OpenSSL's own text ("PEM routines::no start line") helps nobody here;
    // it stays in the cause.
    const error = new ConfigError(`${source} is not a PEM or DER X.509 certificate`, {
      file: source,
    });
    error.cause = err;
    throw error;
  }
  return x509.fingerprint256;
}

/** The fingerprint of the certificate in a PEM file (`abs fingerprint FILE`). */
export async function readCertificateFingerprint(file: string): Promise<string> {
  return certificateFingerprint(await readText(file, "certificate"), file);
}

/** Normalises a fingerprint for comparison: upper case, colons kept. */
function canonicalFingerprint(text: string): string | undefined {
  const t = text.trim().toUpperCase();
  return /^(?:[0-9A-F]{2}:){31}[0-9A-F]{2}$/.test(t) ? t : undefined;
}

/** Constant-time comparison of two fingerprints in colon-hex form. */
export function fingerprintsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a.toUpperCase(), "utf8");
  const y = Buffer.from(b.toUpperCase(), "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

// ---------------------------------------------------------------------------
// The slave's side

/** How the slave checks the master's certificate. */
export interface SlaveTlsOptions {
  /** SHA-256 fingerprint of the master's certificate, colon hex (`abs fingerprint`). Default none. */
  pin?: string | null;
  /** PEM file of CA certificates to verify the master's certificate with. Default none. */
  ca?: string | null;
  /**
   * A master's startup vote asking a peer whether a master runs there
   * (master/startup-vote.ts): it trusts nothing it is told, so Kerberos
   * needs neither pin nor CA. Default false.
   */
  probe?: boolean;
}

/** A checked SlaveTlsOptions: the CA file read, the pin normalised. */
export interface SlaveTlsPolicy {
  pin: string | undefined;
  caFile: string | undefined;
  caPem: string | undefined;
}

/**
 * Checks and loads the slave's TLS options for `mode`. Kerberos without a
 * pin or a CA is a ConfigError: the GSSAPI exchange is not bound to the TLS
 * session, so only the certificate check stops a relay.
 */
export async function compileSlaveTls(
  opts: SlaveTlsOptions,
  mode: "realm-key" | "kerberos",
): Promise<SlaveTlsPolicy> {
  let pin: string | undefined;
  if (opts.pin !== undefined && opts.pin !== null) {
    pin = canonicalFingerprint(opts.pin);
    if (pin === undefined) {
      throw new ConfigError(
        `master fingerprint "${opts.pin}" is not a SHA-256 fingerprint: expected 32 hex bytes separated by ":" (as \`abs fingerprint\` prints)`,
        { field: "master_fingerprint" },
      );
    }
  }
  const caFile = opts.ca ?? undefined;
  if (mode === "kerberos" && pin === undefined && caFile === undefined && opts.probe !== true) {
    throw new ConfigError(
      "Kerberos authentication needs master_fingerprint or master_ca: the Kerberos exchange is not bound to the TLS session, so the slave must verify the master's certificate",
      { field: "master_fingerprint" },
    );
  }
  const caPem = caFile === undefined ? undefined : await readText(caFile, "CA file");
  if (caPem !== undefined && !caPem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigError(`CA file ${caFile} holds no PEM certificate`, { file: caFile });
  }
  return { pin, caFile, caPem };
}

/** tls.connect options for `policy` (the pin is checked afterwards by checkMasterCertificate). */
export function slaveConnectOptions(
  policy: SlaveTlsPolicy,
  host: string,
): Pick<tls.ConnectionOptions, "ca" | "rejectUnauthorized" | "servername" | "minVersion"> {
  const options: Pick<
    tls.ConnectionOptions,
    "ca" | "rejectUnauthorized" | "servername" | "minVersion"
  > = {
    minVersion: TLS_MIN_VERSION,
    // Without a CA, OpenSSL cannot verify a self-signed certificate; the pin
    // (or, in realm-key mode, the channel binding) does the job instead.
    rejectUnauthorized: policy.caPem !== undefined,
  };
  if (policy.caPem !== undefined) options.ca = policy.caPem;
  // SNI carries host names only (RFC 6066); Node checks an IP against the
  // certificate's IP SANs without it.
  if (net.isIP(host) === 0) options.servername = host;
  return options;
}

/**
 * Checks the master's certificate on an established connection against the
 * pin, if there is one. Throws AuthError TLS naming both fingerprints.
 */
export function checkMasterCertificate(
  socket: tls.TLSSocket,
  policy: SlaveTlsPolicy,
  where: string,
): void {
  if (policy.pin === undefined) return;
  const cert = socket.getPeerCertificate();
  // An empty object when the peer sent no certificate.
  const raw = (cert as { raw?: Buffer }).raw;
  if (raw === undefined) {
    throw new AuthError("TLS", `the master at ${where} presented no TLS certificate`);
  }
  const actual = certificateFingerprint(raw);
  if (!fingerprintsEqual(policy.pin, actual)) {
    throw new AuthError(
      "TLS",
      `the TLS certificate of ${where} has fingerprint ${actual}, not the pinned master fingerprint ${policy.pin}: another host (or a relay) answered, or the master's certificate changed (check with \`abs fingerprint\` on the master)`,
      { context: { peer: where } },
    );
  }
}
