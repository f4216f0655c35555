// Kerberos (GSSAPI, krb5 mechanism) authentication of the slave link, as two
// step-driven state machines independent of any transport: the slave runs an
// initiator, the master an acceptor, and the link carries their tokens.
//
//   initiator.step(null)    -> AP-REQ token      (done: false)
//   acceptor.step(AP-REQ)   -> AP-REP token      (done: true, principal)
//   initiator.step(AP-REP)  -> no token          (done: true): the master proved its key
//
// Authentication is always mutual: the initiator asks for GSS_C_MUTUAL_FLAG
// and only reports done after GSSAPI has verified the acceptor's AP-REP.
// The acceptor then applies ABS's own policy: the slave principal's realm
// must be the master's realm, and an optional allow-list narrows it further.
//
// GSSAPI comes from the optional `kerberos` npm package, loaded on first use
// so that ABS runs (with realm keys) where it could not be built.
//
// Keytabs and caches are selected through MIT's environment variables, which
// are process-wide (see `pinEnvironment` below): one slave identity and one
// master keytab per process. The master reads its keytab again for every
// connection, so a rotated keytab takes effect without a restart.
//
// Limit: the package passes no GSS channel bindings and its server side has
// no wrap/unwrap, so this exchange cannot be bound to the TLS session the
// way the realm-key challenge is. A relay between slave and master is
// stopped by TLS itself: the slave must verify the master's certificate.

import { constants as fsConstants, mkdtempSync, rmSync } from "node:fs";
import { access, readFile, rename, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  AbsError,
  AuthError,
  ConfigError,
  assertNever,
  describeError,
  type ErrorContext,
  errorCode,
  hasCode,
} from "../errors.js";

// ---------------------------------------------------------------------------
// Loading the `kerberos` package

/**
 * The part of the `kerberos` package (v7) ABS uses. Declared here rather than
 * taken from its index.d.ts so ABS type-checks without the package, and
 * because that file names the flags option `gssFlag` while the addon reads
 * `flags` (src/unix/kerberos_unix.cc).
 */
interface KerberosModule {
  initializeClient(
    service: string,
    options: { principal?: string; flags?: number; mechOID?: number },
  ): Promise<KerberosClientHandle>;
  initializeServer(service: string): Promise<KerberosServerHandle>;
  GSS_C_MUTUAL_FLAG: number;
  GSS_MECH_OID_KRB5: number;
}

/** Tokens cross the addon as base64 strings; a step resolves to null when GSSAPI produced no token. */
interface KerberosClientHandle {
  step(challenge: string): Promise<string | null>;
  contextComplete: boolean;
  /** The initiator's own principal, once the context is complete. */
  username: string | null;
}

interface KerberosServerHandle {
  step(challenge: string): Promise<string | null>;
  contextComplete: boolean;
  /** The authenticated client principal, once the step succeeded. */
  username: string | null;
}

/** How to import the package; replaced in tests to simulate its absence. */
export type KerberosImporter = () => Promise<unknown>;

// The specifier is a variable so TypeScript does not require the optional
// package (or its types) at build time.
const KERBEROS_SPECIFIER = "kerberos";
const defaultImporter: KerberosImporter = () => import(KERBEROS_SPECIFIER);

let loading: Promise<KerberosModule> | null = null;

/**
 * Loads the `kerberos` package, once per process. When it is not installed,
 * or its native addon was not built (libkrb5-dev missing at `npm install`
 * time), throws AuthError KERBEROS_UNAVAILABLE saying what to install.
 */
export function loadKerberos(importer?: KerberosImporter): Promise<KerberosModule> {
  if (importer !== undefined) return importKerberos(importer);
  // A failed load is not cached: the operator may fix it and SIGHUP.
  loading ??= importKerberos(defaultImporter).catch((err: unknown) => {
    loading = null;
    throw err;
  });
  return loading;
}

async function importKerberos(importer: KerberosImporter): Promise<KerberosModule> {
  let namespace: unknown;
  try {
    namespace = await importer();
  } catch (err) {
    // Node's message goes on with a multi-line "Require stack"; the first
    // line says what is missing, and the full error stays as the cause.
    const firstLine = describeError(err).split("\n")[0];
    throw new AuthError(
      "KERBEROS_UNAVAILABLE",
      `Kerberos authentication needs the "kerberos" npm package, which cannot be loaded ` +
        `(${firstLine}). Install the MIT Kerberos development files with ` +
        "`apt-get install libkrb5-dev`, then run `npm rebuild kerberos` " +
        "(or `npm install` again) in the ABS directory",
      { cause: err },
    );
  }
  // A CommonJS package imported from ESM: its exports are on `default`.
  const mod = ((namespace as { default?: unknown }).default ??
    namespace) as Partial<KerberosModule>;
  if (typeof mod.initializeClient !== "function" || typeof mod.initializeServer !== "function") {
    throw new AuthError(
      "KERBEROS_UNAVAILABLE",
      'the "kerberos" npm package loaded but has no initializeClient/initializeServer; ' +
        "ABS needs kerberos v7: run `npm install` again in the ABS directory",
    );
  }
  return mod as KerberosModule;
}

// ---------------------------------------------------------------------------
// Process-wide selection of keytabs and caches
//
// The `kerberos` package has no way to pass a keytab or cache per context
// (MIT's gss_acquire_cred_from / gss_krb5_import_cred are not exposed), so
// MIT finds them through its environment variables:
//
//   KRB5_KTNAME         the acceptor keytab (master)
//   KRB5_CLIENT_KTNAME  the initiator keytab (slave); MIT gets and renews
//                       the slave's tickets from it itself, no kinit needed
//   KRB5CCNAME          the initiator's credential cache
//   KRB5_CONFIG         krb5.conf (realms, KDCs); left to the operator
//
// MIT reads them again at every credential acquisition (checked against a
// real KDC: changing them between two contexts switches identity), so they
// need only be right before each GSS call. But the addon runs GSS calls on
// libuv worker threads, and setenv on the main thread is not safe against
// getenv on those threads. So ABS sets each variable once, before its first
// GSS call, and refuses a later initiator or acceptor that needs another
// value: a process holds one slave identity and one master keytab (which is
// what a daemon has). Values set in the environment before ABS starts are
// overridden by the configured ones.

/** The value ABS set for each variable, and what it was for (for the refusal message). */
const pinned = new Map<string, { value: string | undefined; use: string }>();

function pinEnvironment(values: Record<string, string | undefined>, use: string): void {
  for (const [name, value] of Object.entries(values)) {
    const previous = pinned.get(name);
    if (previous !== undefined && previous.value !== value) {
      throw new ConfigError(
        `${name} is process-wide and this process already uses ${previous.value ?? "no value"} ` +
          `for ${previous.use}; it cannot also use ${value ?? "no value"} for ${use}. ` +
          "Run one slave identity (and one master keytab) per process",
        { field: name },
      );
    }
  }
  for (const [name, value] of Object.entries(values)) {
    if (pinned.has(name)) continue;
    pinned.set(name, { value, use });
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
}

/** Where MIT reads realms and KDCs from, for messages. */
function configFiles(): string {
  return process.env.KRB5_CONFIG !== undefined
    ? `KRB5_CONFIG=${process.env.KRB5_CONFIG}`
    : "/etc/krb5.conf";
}

// ---------------------------------------------------------------------------
// Names

/** A service principal as configured: `service/host` or `service/host@REALM`. */
export interface ServicePrincipal {
  service: string;
  host: string;
  realm: string | undefined;
  /** The GSSAPI host-based form the `kerberos` package takes: `service@host`. */
  hostBased: string;
}

/**
 * Parses `abs/backup.example.com@EXAMPLE.COM` (realm optional). The host is
 * used as written: set `dns_canonicalize_hostname = false` and `rdns = false`
 * in krb5.conf so MIT does not rewrite it through DNS.
 */
export function parseServicePrincipal(text: string): ServicePrincipal {
  const match = /^([^/@\s]+)\/([^/@\s]+)(?:@([^/@\s]+))?$/.exec(text);
  if (match === null) {
    throw new ConfigError(
      `Kerberos service principal "${text}" is not of the form service/host or service/host@REALM ` +
        '(e.g. "abs/backup.example.com@EXAMPLE.COM")',
      { field: "servicePrincipal" },
    );
  }
  const [, service, host, realm] = match as unknown as [string, string, string, string | undefined];
  return { service, host, realm, hostBased: `${service}@${host}` };
}

/** The realm of `name@REALM` (after the last unescaped @), or undefined. */
export function realmOf(principal: string): string | undefined {
  for (let i = principal.length - 1; i >= 0; i--) {
    if (principal[i] !== "@") continue;
    let backslashes = 0;
    for (let j = i - 1; j >= 0 && principal[j] === "\\"; j--) backslashes++;
    if (backslashes % 2 === 0) return principal.slice(i + 1);
  }
  return undefined;
}

/**
 * True when `principal` matches an allowed-principals `pattern`, in which
 * `*` stands for any run of characters but `@` (`host/*` is every host
 * principal of the realm, `*` every principal). A pattern without a realm
 * is in `realm`.
 */
export function principalMatches(pattern: string, principal: string, realm: string): boolean {
  const full = realmOf(pattern) === undefined ? `${pattern}@${realm}` : pattern;
  const source = full
    .split("*")
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
    .join("[^@]*");
  return new RegExp(`^${source}$`).test(principal);
}

// ---------------------------------------------------------------------------
// Keytab files
//
// Keytabs are read by ABS before GSSAPI sees them, so that a missing,
// unreadable, empty or wrong keytab gets a message naming the file and the
// principals it does hold, instead of GSSAPI's "No credentials were
// supplied".

export interface KeytabEntry {
  /** `component/component@REALM`. */
  principal: string;
  kvno: number;
  enctype: number;
}

/**
 * Parses an MIT keytab (format 0x0502, the only one MIT writes). Pure:
 * throws a plain Error describing the first problem; callers add the file.
 */
export function parseKeytab(bytes: Uint8Array): KeytabEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 2 || bytes[0] !== 0x05) {
    throw new Error("not a keytab (it does not start with the keytab magic byte 0x05)");
  }
  if (bytes[1] !== 0x02) {
    throw new Error(
      `keytab format version 0x05${bytes[1].toString(16).padStart(2, "0")} is not supported (only 0x0502)`,
    );
  }
  const entries: KeytabEntry[] = [];
  let offset = 2;
  while (offset + 4 <= bytes.length) {
    const size = view.getInt32(offset);
    offset += 4;
    if (size === 0) break;
    if (size < 0) {
      offset += -size; // a hole left by a deleted entry
      continue;
    }
    const end = offset + size;
    if (end > bytes.length)
      throw new Error(`keytab entry at byte ${offset - 4} runs past the end of the file`);
    let p = offset;
    const need = (n: number): void => {
      if (p + n > end) throw new Error(`keytab entry at byte ${offset - 4} is truncated`);
    };
    const u16 = (): number => {
      need(2);
      const v = view.getUint16(p);
      p += 2;
      return v;
    };
    const text = (): string => {
      const len = u16();
      need(len);
      const s = Buffer.from(bytes.subarray(p, p + len)).toString("utf8");
      p += len;
      return s;
    };
    const components = u16();
    const realm = text();
    const names: string[] = [];
    for (let i = 0; i < components; i++) names.push(text());
    need(4 + 4 + 1); // name type, timestamp, 8-bit kvno
    p += 8;
    let kvno = view.getUint8(p);
    p += 1;
    const enctype = u16();
    const keyLength = u16();
    need(keyLength);
    p += keyLength;
    // A 32-bit kvno follows when there is room; it supersedes the 8-bit one.
    if (p + 4 <= end) kvno = view.getUint32(p);
    entries.push({ principal: `${names.join("/")}@${realm}`, kvno, enctype });
    offset = end;
  }
  return entries;
}

/** Reads and parses a keytab, turning every problem into an AuthError naming the file. */
async function readKeytab(file: string, role: string): Promise<KeytabEntry[]> {
  const fail = (reason: string, cause?: unknown): AuthError =>
    new AuthError("AUTH_FAILED", `${role} keytab ${file} ${reason}`, { cause, context: { file } });
  try {
    const info = await stat(file);
    if (!info.isFile()) throw fail("is not a regular file");
    await access(file, fsConstants.R_OK);
  } catch (err) {
    if (err instanceof AuthError) throw err;
    const code = errorCode(err);
    if (code === "ENOENT") throw fail("does not exist", err);
    if (code === "EACCES") {
      throw fail(`is not readable by this process (uid ${process.getuid?.() ?? "?"})`, err);
    }
    throw fail(`cannot be read: ${describeError(err)}`, err);
  }
  let entries: KeytabEntry[];
  try {
    entries = parseKeytab(await readFile(file));
  } catch (err) {
    throw fail(`cannot be used: ${describeError(err)}`, err);
  }
  if (entries.length === 0) throw fail("holds no keys");
  return entries;
}

function heldPrincipals(entries: readonly KeytabEntry[]): string {
  return [...new Set(entries.map((e) => e.principal))].join(", ");
}

// ---------------------------------------------------------------------------
// The slave's credential cache
//
// MIT keeps the slave's service ticket for the master in the cache until it
// expires (10 h by default). When the master's key is rotated, that ticket
// is of a key version the master no longer holds: the slave must drop it so
// that MIT asks the KDC again. The `kerberos` package cannot remove a
// credential, so ABS edits the cache file itself: only FILE caches, hence a
// private file rather than a MEMORY cache by default.

let privateCache: string | undefined;

/**
 * The cache an initiator with these options uses: `ccache`, or else a
 * private file (in a fresh directory of mode 0700, removed at exit), one per
 * process like the keytab.
 */
export function initiatorCcache(options: { ccache?: string }): string {
  if (options.ccache !== undefined) return options.ccache;
  if (privateCache === undefined) {
    const dir = mkdtempSync(path.join(tmpdir(), "abs-krb5cc-"));
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    privateCache = `FILE:${path.join(dir, "ccache")}`;
  }
  return privateCache;
}

/**
 * An MIT credential cache file (format 0x0503 or 0x0504) without the
 * tickets whose server principal has these components (any realm: MIT files
 * a host-based name's ticket under the referral realm too). Pure: throws a
 * plain Error describing the first problem.
 */
export function withoutServiceTickets(
  bytes: Uint8Array,
  components: readonly string[],
): { bytes: Buffer; removed: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  const need = (n: number): void => {
    if (p + n > bytes.length) throw new Error(`it is truncated at byte ${p}`);
  };
  const u16 = (): number => {
    need(2);
    p += 2;
    return view.getUint16(p - 2);
  };
  const u32 = (): number => {
    need(4);
    p += 4;
    return view.getUint32(p - 4);
  };
  const data = (): Uint8Array => {
    const length = u32();
    need(length);
    p += length;
    return bytes.subarray(p - length, p);
  };
  const principal = (): string[] => {
    u32(); // name type
    const count = u32();
    data(); // realm
    const names: string[] = [];
    for (let i = 0; i < count; i++) names.push(Buffer.from(data()).toString("utf8"));
    return names;
  };
  const version = u16();
  if (version !== 0x0503 && version !== 0x0504) {
    throw new Error(
      `credential cache format 0x${version.toString(16).padStart(4, "0")} is not supported (only 0x0503 and 0x0504)`,
    );
  }
  if (version === 0x0504) {
    const headerLength = u16();
    need(headerLength);
    p += headerLength;
  }
  principal(); // the cache's own principal
  const kept: Uint8Array[] = [bytes.subarray(0, p)];
  let removed = 0;
  while (p < bytes.length) {
    const start = p;
    principal(); // client
    const server = principal();
    u16(); // key: enctype (twice in 0x0503), then the key
    if (version === 0x0503) u16();
    data();
    need(4 * 4 + 1 + 4); // auth, start, end and renew times; is_skey; flags
    p += 4 * 4 + 1 + 4;
    // Addresses, then authorization data: each a list of (type, data).
    for (let list = 0; list < 2; list++) {
      for (let n = u32(); n > 0; n--) {
        u16();
        data();
      }
    }
    data(); // ticket
    data(); // second ticket
    const matches =
      server.length === components.length && server.every((c, i) => c === components[i]);
    if (matches) removed++;
    else kept.push(bytes.subarray(start, p));
  }
  return { bytes: Buffer.concat(kept), removed };
}

/**
 * Drops the slave's cached tickets for `servicePrincipal` from `ccache`, so
 * that the next authentication asks the KDC for a new one. Resolves with how
 * many were dropped; throws AuthError when the cache is not a FILE cache or
 * cannot be read or written.
 */
export async function dropServiceTickets(
  ccache: string,
  servicePrincipal: string,
): Promise<number> {
  const service = parseServicePrincipal(servicePrincipal);
  const typed = /^([A-Za-z0-9]+):(.*)$/.exec(ccache);
  const file = typed === null ? ccache : typed[1] === "FILE" ? typed[2] : undefined;
  const fail = (reason: string, cause?: unknown): AuthError =>
    new AuthError(
      "STALE_TICKET",
      `cannot drop the cached ticket for ${servicePrincipal} from credential cache ${ccache}: ${reason}`,
      { cause, ...(file === undefined ? {} : { context: { file } }) },
    );
  if (file === undefined) {
    throw fail("ABS can edit only FILE caches; restart the slave, or use a FILE cache");
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if (hasCode(err, "ENOENT")) return 0;
    throw fail(`it cannot be read: ${describeError(err)}`, err);
  }
  let edited: { bytes: Buffer; removed: number };
  try {
    edited = withoutServiceTickets(bytes, [service.service, service.host]);
  } catch (err) {
    throw fail(describeError(err), err);
  }
  if (edited.removed === 0) return 0;
  // A new file renamed over the old one: MIT never reads half of it.
  const temporary = `${file}.abs-${process.pid}`;
  try {
    await writeFile(temporary, edited.bytes, { mode: 0o600 });
    await rename(temporary, file);
  } catch (err) {
    throw fail(`it cannot be written: ${describeError(err)}`, err);
  }
  return edited.removed;
}

// ---------------------------------------------------------------------------
// GSSAPI failures
//
// The addon reports "<major status>: <minor status>" strings. The minor
// status of MIT's krb5 mechanism says what went wrong; each known one is
// turned into a reason an operator can act on. The raw text is kept at the
// end of the message for searching.

interface GssExplanation {
  code: "AUTH_FAILED" | "KDC_UNREACHABLE";
  reason: string;
  /** True when the KDC has no service principal of the name asked for. */
  unknownService?: boolean;
  /**
   * True when the fault lies in this side's own keytab (it lacks the key, or
   * cannot be read), not in the peer's token. On the master, such a failure
   * is the master's: the slave is not told its detail, and is not blamed.
   */
  ownKeytab?: boolean;
  /**
   * The key version of a ticket older than every key of the master's keytab
   * (the master's key was rotated): a new ticket from the KDC will do.
   */
  staleTicketKvno?: number;
}

const GSS_REASONS: ReadonlyArray<{
  pattern: RegExp;
  explain: (m: RegExpExecArray) => GssExplanation;
}> = [
  {
    pattern: /Cannot contact any KDC for realm '([^']*)'/,
    explain: (m) => ({
      code: "KDC_UNREACHABLE",
      reason: `no KDC of realm ${m[1]} answered (is krb5kdc running and reachable? the KDC addresses come from the [realms] section of ${configFiles()})`,
    }),
  },
  {
    pattern: /Cannot find KDC for realm "([^"]*)"/,
    explain: (m) => ({
      code: "KDC_UNREACHABLE",
      reason: `no KDC is configured for realm ${m[1]} in ${configFiles()}`,
    }),
  },
  {
    pattern: /Client '([^']*)' not found in Kerberos database/,
    explain: (m) => ({
      code: "AUTH_FAILED",
      reason: `the KDC does not know the principal ${m[1]} (deleted, or never created in that realm)`,
    }),
  },
  {
    // MIT quotes the name in some versions and not in others.
    pattern: /Server '?([^'\s]+)'? not found in Kerberos database/,
    explain: (m) => ({
      code: "AUTH_FAILED",
      reason:
        `the KDC has no service principal ${m[1]}: the slave principal must belong to the ` +
        "master's realm (ABS does not use cross-realm trust), and the master's service principal must exist there",
      unknownService: true,
    }),
  },
  {
    pattern:
      /Preauthentication failed|Password incorrect|Key version number for principal .* not found/,
    explain: () => ({
      code: "AUTH_FAILED",
      reason:
        "the KDC refused the key in the keytab: the keytab is out of date (the principal was re-keyed); export it again",
    }),
  },
  {
    pattern: /Clock skew too great/,
    explain: () => ({
      code: "AUTH_FAILED",
      reason:
        "the clocks of the two hosts (or of a host and the KDC) differ by more than the allowed skew; synchronise them with NTP",
    }),
  },
  {
    pattern: /Request is a replay/,
    explain: () => ({
      code: "AUTH_FAILED",
      reason: "the token was already used once (a replayed authentication)",
    }),
  },
  {
    // MIT adds which side is older: here the ticket (the master's key was
    // rotated and the slave still holds a ticket of the old key).
    pattern: /kvno (\d+) not found in keytab; ticket is likely out of date/,
    explain: (m) => ({
      code: "AUTH_FAILED",
      reason: `the master's keytab holds no key of version ${m[1]}, the version of the slave's ticket: the ticket is older than the master's key (rotated); the slave must get a new ticket`,
      ownKeytab: true,
      staleTicketKvno: Number(m[1]),
    }),
  },
  {
    // Here the keytab is older, so a new ticket would not help.
    pattern: /kvno (\d+) not found in keytab; keytab is likely out of date/,
    explain: (m) => ({
      code: "AUTH_FAILED",
      reason: `the master's keytab holds no key of version ${m[1]}, the version of the slave's ticket: the KDC has a newer key than the keytab; export it again (kadmin ktadd) and install it`,
      ownKeytab: true,
    }),
  },
  {
    pattern:
      /not found in keytab|No key table entry found|keytab is likely out of date|Key table entry not found/,
    explain: () => ({
      code: "AUTH_FAILED",
      reason:
        "the master's keytab holds no key matching the slave's ticket (out of date, or a ticket for another service or realm)",
      ownKeytab: true,
    }),
  },
  {
    // The keytab changed between ABS's own read and GSSAPI's.
    pattern: /Key table file '[^']*' not found|Permission denied|No such file or directory/,
    explain: () => ({
      code: "AUTH_FAILED",
      reason: "the keytab cannot be read",
      ownKeytab: true,
    }),
  },
  {
    pattern:
      /[Ii]ntegrity check|[Ii]nvalid token|token was invalid|[Dd]efective token|ASN\.1|[Bb]ad checksum|[Bb]ad format/,
    explain: () => ({
      code: "AUTH_FAILED",
      reason: "the token is invalid or was altered in transit",
    }),
  },
  {
    pattern: /[Tt]icket expired/,
    explain: () => ({ code: "AUTH_FAILED", reason: "the ticket has expired" }),
  },
];

/** What a GSSAPI error string means, for messages. Exported for tests. */
export function explainGssError(raw: string): GssExplanation {
  for (const { pattern, explain } of GSS_REASONS) {
    const m = pattern.exec(raw);
    if (m !== null) return explain(m);
  }
  return { code: "AUTH_FAILED", reason: "GSSAPI refused the exchange" };
}

/**
 * The acceptor failed for a reason of the master's own (its keytab lacks the
 * ticket's key, or cannot be read), not because of the slave's token. The
 * message, for the master's log, names the keytab; the slave is told only
 * that the master cannot authenticate slaves now.
 */
export class MasterKerberosFault extends AuthError {
  constructor(
    message: string,
    /** What the slave is told instead of the message, when it can act on it. */
    readonly toSlave: { code: "STALE_TICKET"; message: string } | undefined,
    options: { cause?: unknown; context?: ErrorContext },
  ) {
    super("AUTH_FAILED", message, options);
  }
}

function gssError(
  prefix: string,
  err: unknown,
  context: ErrorContext = {},
  unknownServiceFix?: string,
): AuthError {
  const raw = describeError(err);
  const { code, reason, unknownService } = explainGssError(raw);
  const fix =
    unknownService === true && unknownServiceFix !== undefined ? `; ${unknownServiceFix}` : "";
  return new AuthError(code, `${prefix}: ${reason}${fix} [GSSAPI: ${raw}]`, {
    cause: err,
    context,
  });
}

// ---------------------------------------------------------------------------
// The step interface

/** One step's outcome. */
export interface KerberosStep {
  /** The token to send to the peer, or null when there is none to send. */
  tokenOut: Buffer | null;
  /** True when this side has finished and the peer is authenticated. */
  done: boolean;
  /**
   * Once done: the slave principal (`name@REALM`). The acceptor reports the
   * authenticated peer; the initiator reports its own identity.
   */
  principal?: string;
}

// ---------------------------------------------------------------------------
// The initiator (slave)

export interface KerberosInitiatorOptions {
  /**
   * The master's service principal, `service/host` or `service/host@REALM`,
   * e.g. "abs/backup.example.com@EXAMPLE.COM". GSSAPI takes no realm for a
   * host-based name (krb5.conf [domain_realm] or the slave's own realm
   * decides it); a realm given here is checked against the slave principal's,
   * since ABS requires the slave to be in the master's realm.
   */
  servicePrincipal: string;
  /**
   * Keytab holding the slave principal's key (path). MIT gets and renews the
   * tickets from it itself (KRB5_CLIENT_KTNAME): no kinit. Default: none,
   * then `ccache` must be given.
   */
  keytab?: string;
  /**
   * Credential cache (e.g. "FILE:/var/lib/abs/krb5cc"), for a slave whose
   * tickets come from kinit or k5start. Default with a keytab: a private
   * file, which lives and dies with the process (initiatorCcache).
   */
  ccache?: string;
  /**
   * The slave principal, `name@REALM`. Default: the first principal in the
   * keytab; with only a cache, the cache's principal.
   */
  principal?: string;
  /**
   * Added to the failure when the KDC has no service principal of that
   * name: where the name came from and how to change it (the slave's
   * config). Default: nothing added.
   */
  unknownServiceFix?: string;
}

export interface KerberosInitiator {
  /** The slave principal when known before the exchange (from the option or the keytab). */
  readonly principal: string | undefined;
  /**
   * First call with null; then with each token from the acceptor, until
   * `done`. Throws AuthError (AUTH_FAILED or KDC_UNREACHABLE) on any
   * failure, after which the initiator is unusable: start a new one per
   * connection.
   */
  step(tokenIn: Buffer | null): Promise<KerberosStep>;
}

/**
 * Prepares the slave side of one authentication: checks the keytab, selects
 * it (process-wide, see above) and creates the GSSAPI context. The KDC is
 * first contacted by the first step.
 */
export async function createKerberosInitiator(
  options: KerberosInitiatorOptions,
): Promise<KerberosInitiator> {
  const service = parseServicePrincipal(options.servicePrincipal);
  if (options.keytab === undefined && options.ccache === undefined) {
    throw new ConfigError(
      "a Kerberos initiator needs a keytab or a credential cache (ccache); neither is configured",
      { field: "keytab" },
    );
  }
  if (options.principal !== undefined && realmOf(options.principal) === undefined) {
    throw new ConfigError(
      `Kerberos principal "${options.principal}" has no realm; write it as name@REALM`,
      { field: "principal" },
    );
  }

  const keytab = options.keytab === undefined ? undefined : path.resolve(options.keytab);
  let principal = options.principal;
  if (keytab !== undefined) {
    const entries = await readKeytab(keytab, "slave");
    if (principal === undefined) {
      principal = entries[0].principal;
    } else if (!entries.some((e) => e.principal === principal)) {
      throw new AuthError(
        "AUTH_FAILED",
        `slave keytab ${keytab} holds no key for ${principal}; it holds: ${heldPrincipals(entries)}`,
        { context: { file: keytab } },
      );
    }
  }
  const ccache = initiatorCcache(options);
  const source = keytab !== undefined ? `keytab ${keytab}` : `ccache ${ccache}`;
  const who = principal ?? `the principal of ${ccache}`;
  const prefix = `Kerberos authentication of ${who} (${source}) to ${options.servicePrincipal} failed`;
  const context = keytab === undefined ? {} : { file: keytab };

  // Refuse a slave of another realm before bothering the KDC.
  const slaveRealm = principal === undefined ? undefined : realmOf(principal);
  if (service.realm !== undefined && slaveRealm !== undefined && slaveRealm !== service.realm) {
    throw new AuthError(
      "AUTH_FAILED",
      `${prefix}: the slave principal's realm ${slaveRealm} is not the master's realm ${service.realm}`,
      { context },
    );
  }

  const kerberos = await loadKerberos();
  pinEnvironment(
    { KRB5_CLIENT_KTNAME: keytab === undefined ? undefined : `FILE:${keytab}`, KRB5CCNAME: ccache },
    `the slave identity ${who}`,
  );

  let client: KerberosClientHandle;
  try {
    client = await kerberos.initializeClient(service.hostBased, {
      ...(principal === undefined ? {} : { principal }),
      flags: kerberos.GSS_C_MUTUAL_FLAG,
      mechOID: kerberos.GSS_MECH_OID_KRB5,
    });
  } catch (err) {
    throw gssError(prefix, err, context);
  }

  // start --step(null)--> awaiting-reply --step(AP-REP)--> done; any error -> failed.
  let state: "start" | "awaiting-reply" | "done" | "failed" = "start";

  return {
    principal,
    async step(tokenIn: Buffer | null): Promise<KerberosStep> {
      switch (state) {
        case "start": {
          if (tokenIn !== null) throw usage("the first initiator step takes no token");
          state = "failed"; // until this step succeeds
          let out: string | null;
          try {
            out = await client.step("");
          } catch (err) {
            throw gssError(prefix, err, context, options.unknownServiceFix);
          }
          // With GSS_C_MUTUAL_FLAG the context cannot be complete before the
          // master's reply; if it is, mutual authentication did not happen.
          if (client.contextComplete || out === null || out === "") {
            throw new AuthError(
              "AUTH_FAILED",
              `${prefix}: GSSAPI finished without the master's reply, so the master was not authenticated (mutual authentication is required)`,
              { context },
            );
          }
          state = "awaiting-reply";
          return { tokenOut: Buffer.from(out, "base64"), done: false };
        }
        case "awaiting-reply": {
          if (tokenIn === null || tokenIn.length === 0) {
            throw usage("the initiator needs the master's reply token");
          }
          state = "failed";
          let out: string | null;
          try {
            out = await client.step(tokenIn.toString("base64"));
          } catch (err) {
            throw gssError(
              `${prefix}: the master did not prove it holds the key of ${options.servicePrincipal} (mutual authentication failed)`,
              err,
              context,
            );
          }
          if (!client.contextComplete) {
            throw new AuthError(
              "AUTH_FAILED",
              `${prefix}: GSSAPI wants more than the master's one reply, which the krb5 mechanism never needs`,
              { context },
            );
          }
          state = "done";
          const self = client.username ?? principal;
          return {
            tokenOut: out === null || out === "" ? null : Buffer.from(out, "base64"),
            done: true,
            ...(self === undefined ? {} : { principal: self }),
          };
        }
        case "done":
          throw usage("the initiator has already finished");
        case "failed":
          throw usage("the initiator has already failed; start a new one");
        default:
          return assertNever(state);
      }
    },
  };
}

// ---------------------------------------------------------------------------
// The acceptor (master)

export interface KerberosAcceptorOptions {
  /** The master's service keytab (path). Selected process-wide through KRB5_KTNAME. */
  keytab: string;
  /** The master's realm, e.g. "EXAMPLE.COM". A slave principal of any other realm is refused. */
  realm: string;
  /**
   * The master's service principal, `service/host` or `service/host@REALM`
   * (realm default: `realm`), e.g. "abs/backup.example.com". The acceptor
   * only takes tickets for this name, even when the keytab holds others
   * (a host keytab usually does).
   */
  servicePrincipal: string;
  /**
   * Slave principals allowed to authenticate, `name@REALM` (a name without
   * realm means the master's realm), where `*` stands for any run of
   * characters but `@` (principalMatches). Default: every principal of `realm`.
   */
  allowedPrincipals?: readonly string[];
  /** The slave's address (e.g. "192.0.2.7:41234"), for messages and error context. Default: none. */
  peer?: string;
}

export interface KerberosAcceptor {
  /**
   * Takes the slave's token. On success returns the reply token to send
   * (which the slave needs to authenticate the master), `done: true` and the
   * slave principal. Throws AuthError AUTH_FAILED on any failure, including
   * a principal of another realm or not in the allow-list.
   */
  step(tokenIn: Buffer): Promise<KerberosStep>;
}

/**
 * Prepares the master side of one authentication: checks the keytab holds
 * the service key, selects it (process-wide) and acquires the acceptor
 * credentials. One acceptor per connection.
 */
export async function createKerberosAcceptor(
  options: KerberosAcceptorOptions,
): Promise<KerberosAcceptor> {
  const service = parseServicePrincipal(options.servicePrincipal);
  const realm = options.realm;
  if (service.realm !== undefined && service.realm !== realm) {
    throw new ConfigError(
      `Kerberos service principal ${options.servicePrincipal} is not in the master's realm ${realm}`,
      { field: "servicePrincipal" },
    );
  }
  const serviceName = `${service.service}/${service.host}@${realm}`;
  const allowed = options.allowedPrincipals;

  const keytab = path.resolve(options.keytab);
  const entries = await readKeytab(keytab, "master");
  if (!entries.some((e) => e.principal === serviceName)) {
    throw new AuthError(
      "AUTH_FAILED",
      `master keytab ${keytab} holds no key for the service principal ${serviceName}; it holds: ${heldPrincipals(entries)}`,
      { context: { file: keytab } },
    );
  }
  const from = options.peer === undefined ? "" : ` from ${options.peer}`;
  // The keytab is named only in failures of the master's own (the slave is
  // told those without their detail): the slave has no use for its path.
  const prefix = `Kerberos: refused a slave${from} authenticating to ${serviceName}`;
  const context =
    options.peer === undefined ? { file: keytab } : { file: keytab, peer: options.peer };

  const kerberos = await loadKerberos();
  pinEnvironment({ KRB5_KTNAME: `FILE:${keytab}` }, `the master service ${serviceName}`);

  let server: KerberosServerHandle;
  try {
    // A host-based name restricts the acceptor to keys of service/host (in
    // any realm of the keytab; the realm is checked below, on the client).
    server = await kerberos.initializeServer(service.hostBased);
  } catch (err) {
    throw gssError(`Kerberos: cannot accept as ${serviceName} with keytab ${keytab}`, err, context);
  }

  let used = false;
  return {
    async step(tokenIn: Buffer): Promise<KerberosStep> {
      if (used) throw usage("an acceptor authenticates one connection; create a new one");
      used = true;
      if (tokenIn.length === 0)
        throw new AuthError("AUTH_FAILED", `${prefix}: its token is empty`, { context });
      let out: string | null;
      try {
        out = await server.step(tokenIn.toString("base64"));
      } catch (err) {
        const raw = describeError(err);
        const explained = explainGssError(raw);
        if (explained.ownKeytab === true) {
          const kvno = explained.staleTicketKvno;
          throw new MasterKerberosFault(
            `${prefix}: keytab ${keytab}: ${explained.reason} [GSSAPI: ${raw}]`,
            kvno === undefined
              ? undefined
              : {
                  code: "STALE_TICKET",
                  message: `the master has no key for this ticket's version (kvno ${kvno}): get a new ticket`,
                },
            { cause: err, context },
          );
        }
        throw gssError(prefix, err, context);
      }
      const principal = server.username;
      if (!server.contextComplete || principal === null || principal === "") {
        throw new AuthError("AUTH_FAILED", `${prefix}: GSSAPI did not complete in one step`, {
          context,
        });
      }
      if (out === null || out === "") {
        throw new AuthError(
          "AUTH_FAILED",
          `${prefix}: slave principal ${principal} did not ask for mutual authentication`,
          { context },
        );
      }
      const clientRealm = realmOf(principal);
      if (clientRealm !== realm) {
        throw new AuthError(
          "AUTH_FAILED",
          `Kerberos: refused slave principal ${principal}${from}: its realm ${clientRealm ?? "(none)"} is not the master's realm ${realm}`,
          { context },
        );
      }
      if (allowed !== undefined && !allowed.some((p) => principalMatches(p, principal, realm))) {
        throw new AuthError(
          "AUTH_FAILED",
          `Kerberos: refused slave principal ${principal}${from}: it matches none of the allowed principals (${shortList(allowed)})`,
          { context },
        );
      }
      return { tokenOut: Buffer.from(out, "base64"), done: true, principal };
    },
  };
}

/** "a, b, c" or, beyond five, "a, b, c, d, e and 7 more". */
function shortList(items: readonly string[]): string {
  if (items.length <= 5) return items.join(", ");
  return `${items.slice(0, 5).join(", ")} and ${items.length - 5} more`;
}

/** A caller drove a state machine wrongly: a bug in ABS, not an operator's problem. */
function usage(message: string): AbsError {
  return new AbsError("INTERNAL", `Kerberos: ${message}`);
}
