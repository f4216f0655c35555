// The slave's configuration, slave.conf, in the three steps of master-config.ts.
// Pure code: the caller reads the file and passes the host name.
//
// It accepts the ABS seed's line as written, and every setting in either form:
//
//   master: green-acres          # the seed's form; also green-acres:7370, [::1]:7370
//   state_dir = /var/lib/abs/slave
//   ; comments start with ; or #
//
// Keys go at the top of the file or under an optional `[slave]` header (for
// those who like INI sections); no other section exists. The same key twice
// is an error naming both lines, never "the last one wins".

import { AUTH_MODES, type AuthMode } from "../model/auth-modes.js";
import { DEFAULT_SLAVE_KEY_FILE } from "./default-paths.js";
import { DEFAULT_PORT, type HostPort } from "./host-port.js";
import { METHODS, type MethodName } from "./job-definition.js";
import { type IniEntry, type IniSection, tokenizeIni } from "./ini-tokenizer.js";
import { closest, type ConfigIssue, type LoadResult, makeIssue } from "./issues.js";
import { readSection } from "./section-reader.js";
import {
  absolutePath,
  duration,
  hostPort,
  integer,
  Invalid,
  list,
  name,
  oneOf,
  type Parser,
  principalWithRealm,
  programPattern,
  servicePrincipal,
  sha256Fingerprint,
} from "./values.js";

export interface SlaveConfig {
  /** slave.conf as named by the caller. */
  file: string;
  /** `master`: the master's host and port. Port default 7370. Required. */
  master: HostPort;
  /** `name`: the name the slave registers under. Default: the host name given to the loader. */
  name: string;
  /** `state_dir`: absolute path of running jobs and unacknowledged results. Default /var/lib/abs/slave. */
  stateDir: string;
  /** `log_dir`: absolute path of slave-daemon.log. Default /var/log/abs. */
  logDir: string;
  /** `auth`: realm-key or kerberos. Default "realm-key". */
  auth: AuthMode;
  /**
   * `key_file`: the slave's own key, `abs keygen --slave NAME FILE` on the
   * master's host (realm-key only). Default /etc/abs/slave.key; null with
   * kerberos. A slave never holds the realm key (`realm_key_file` is refused).
   */
  keyFile: string | null;
  /** `keytab`: the slave's host keytab (kerberos only). Default null; kerberos needs it or ccache. */
  keytab: string | null;
  /** `principal`: the slave principal, `name@REALM` (kerberos only). Default null: the keytab's first, or the cache's. */
  principal: string | null;
  /** `ccache`: a credential cache such as FILE:/var/lib/abs/krb5cc (kerberos only). Default null. */
  ccache: string | null;
  /** `master_principal`: the master's service principal (kerberos only). Default "abs/<master host>". */
  masterPrincipal: string | null;
  /** True when master_principal is not written and masterPrincipal is its default (kerberos only). */
  masterPrincipalIsDefault: boolean;
  /** `master_fingerprint`: SHA-256 pin of the master's certificate, upper-case colon hex. Default null. */
  masterFingerprint: string | null;
  /** `master_ca`: PEM CA file to verify the master's certificate with. Default null. */
  masterCa: string | null;
  /** `max_jobs`: jobs this slave runs at once (1 to 10,000). Default 2. */
  maxJobs: number;
  /**
   * `allowed_paths`: absolute paths jobs may read or write under (comma
   * list). Required: no default, so that "everywhere" is written, not implied.
   */
  allowedPaths: string[];
  /** `allowed_methods`: the methods this slave runs (comma list). Default tar, restore, verify. */
  allowedMethods: MethodName[];
  /**
   * `allowed_programs`: absolute paths, or globs of them, of the programs
   * command jobs may run (comma list; see slave/methods/allowed-programs.ts).
   * Default none. Required when allowed_methods lists command.
   */
  allowedPrograms: string[];
  /** `heartbeat_interval`: milliseconds between heartbeats (at least 100). Default 10,000 (10s). */
  heartbeatIntervalMs: number;
}

/** A credential cache name, `TYPE:residual` (FILE:, DIR:, KEYRING:, MEMORY:, ...) or an absolute path. */
const ccacheName: Parser<string> = (t) =>
  /^[A-Z]+:\S+$/.test(t) || /^\/\S*$/.test(t)
    ? t
    : new Invalid('expected a credential cache such as "FILE:/var/lib/abs/krb5cc"');

const SLAVE_SCHEMA = {
  master: hostPort(DEFAULT_PORT),
  name,
  state_dir: absolutePath,
  log_dir: absolutePath,
  auth: oneOf(AUTH_MODES),
  key_file: absolutePath,
  // Refused whatever its value (step 2): kept in the schema so that the
  // refusal names the fix rather than "unknown key".
  realm_key_file: absolutePath,
  keytab: absolutePath,
  principal: principalWithRealm,
  ccache: ccacheName,
  master_principal: servicePrincipal,
  master_fingerprint: sha256Fingerprint,
  master_ca: absolutePath,
  max_jobs: integer(1, 10_000),
  allowed_paths: list(absolutePath),
  allowed_methods: list(oneOf(METHODS)),
  allowed_programs: list(programPattern),
  heartbeat_interval: duration(100),
};

/** Every key slave.conf takes. */
export const SLAVE_KEYS: readonly string[] = Object.keys(SLAVE_SCHEMA).filter(
  (k) => k !== "realm_key_file",
);

const KERBEROS_KEYS = ["keytab", "principal", "ccache", "master_principal"];

/** `allowed_methods` when not set: `command` runs a program, so it is allowed only when written. */
export const DEFAULT_ALLOWED_METHODS: readonly MethodName[] = ["tar", "restore", "verify"];

export interface SlaveLoadOptions {
  /** This host's name, the default of `name` (pure code cannot ask the system). */
  hostName: string;
}

export function loadSlaveConfig(
  file: string,
  text: string,
  options: SlaveLoadOptions,
): LoadResult<SlaveConfig> {
  // Step 1.
  const doc = tokenizeIni(file, text, { colon: true });
  const issues: ConfigIssue[] = [...doc.issues];
  const merged: IniSection = { header: "", line: 1, entries: [] };
  const seen = new Map<string, IniEntry>();
  doc.sections.forEach((section, i) => {
    if (i > 0 && section.header !== "slave") {
      const guess = closest(section.header, ["slave"]);
      const why = `unknown section; slave.conf has only [slave], or no section at all${guess === undefined ? "" : "; did you mean [slave]?"}`;
      issues.push(makeIssue(file, section.line, "section", section.header, why));
      return;
    }
    for (const e of section.entries) {
      const first = seen.get(e.key);
      if (first !== undefined) {
        issues.push(makeIssue(file, e.line, e.key, e.value, `already set at line ${first.line}`));
        continue;
      }
      seen.set(e.key, e);
      merged.entries.push(e);
    }
  });

  // Step 2.
  const { values: v, written } = readSection(file, merged, SLAVE_SCHEMA, issues);
  const at = (line: number, key: string, value: string, why: string): void => {
    issues.push(makeIssue(file, line, key, value, why));
  };
  if (!written.has("master")) {
    at(1, "file", file, 'missing required key "master" (e.g. "master: green-acres")');
  }
  let slaveName = v.name?.value;
  if (!written.has("name")) {
    const host = name(options.hostName);
    if (host instanceof Invalid) {
      at(
        1,
        "name",
        options.hostName,
        `the host name is not a usable slave name (${host.why}); set name`,
      );
    } else {
      slaveName = host;
    }
  }
  const auth = v.auth?.value ?? (written.has("auth") ? undefined : "realm-key");
  const authShown = v.auth === undefined ? `${auth}, the default` : auth;
  if (auth === "realm-key") {
    for (const key of KERBEROS_KEYS) {
      const e = written.get(key);
      if (e !== undefined) {
        at(e.line, key, e.value, `only used with auth = kerberos (auth is ${authShown})`);
      }
    }
  }
  const realmKeyEntry = written.get("realm_key_file");
  if (realmKeyEntry !== undefined) {
    const shownName = slaveName ?? "NAME";
    at(
      realmKeyEntry.line,
      realmKeyEntry.key,
      realmKeyEntry.value,
      "a slave no longer holds the realm key: whoever holds it can pose as the master to every slave. " +
        `On the master's host run \`abs keygen --slave ${shownName} ${shownName}.key\`, ` +
        `copy ${shownName}.key to this host as ${DEFAULT_SLAVE_KEY_FILE} (mode 0600), ` +
        `replace this line with "key_file: ${DEFAULT_SLAVE_KEY_FILE}", and remove the realm key from this host`,
    );
  }
  if (auth === "kerberos" && v.auth !== undefined) {
    const e = written.get("key_file");
    if (e !== undefined)
      at(e.line, e.key, e.value, "only used with auth = realm-key (auth is kerberos)");
    if (!written.has("keytab") && !written.has("ccache")) {
      at(
        v.auth.line,
        "auth",
        "kerberos",
        "needs keytab or ccache (the slave's Kerberos credentials)",
      );
    }
    if (!written.has("master_fingerprint") && !written.has("master_ca")) {
      at(
        v.auth.line,
        "auth",
        "kerberos",
        "needs master_fingerprint or master_ca: Kerberos is not bound to the TLS session, " +
          "so the slave must verify the master's certificate",
      );
    }
  }
  if (!written.has("allowed_paths")) {
    at(
      1,
      "file",
      file,
      'missing required key "allowed_paths": the paths jobs may read and write under ' +
        '(e.g. "allowed_paths: /home, /srv/backup"); write "allowed_paths: /" for a whole-system backup',
    );
  }
  const methods = v.allowed_methods;
  const programs = written.get("allowed_programs");
  if (methods?.value.includes("command") === true && programs === undefined) {
    at(
      methods.line,
      "allowed_methods",
      methods.text,
      "command needs allowed_programs: the programs command jobs may run " +
        '(e.g. "allowed_programs: /usr/bin/pg_dump, /usr/local/lib/abs/*")',
    );
  }
  if (programs !== undefined && methods?.value.includes("command") !== true) {
    at(
      programs.line,
      "allowed_programs",
      programs.value,
      `only used when allowed_methods lists command (allowed_methods is ${methods === undefined ? `${DEFAULT_ALLOWED_METHODS.join(", ")}, the default` : methods.value.join(", ")})`,
    );
  }
  const master = v.master?.value;
  if (issues.length > 0 || master === undefined || slaveName === undefined || auth === undefined) {
    return { errors: issues.sort((a, b) => a.line - b.line) };
  }

  // Step 3.
  const kerberos = auth === "kerberos";
  return {
    config: {
      file,
      master,
      name: slaveName,
      stateDir: v.state_dir?.value ?? "/var/lib/abs/slave",
      logDir: v.log_dir?.value ?? "/var/log/abs",
      auth,
      keyFile: kerberos ? null : (v.key_file?.value ?? DEFAULT_SLAVE_KEY_FILE),
      keytab: v.keytab?.value ?? null,
      principal: v.principal?.value ?? null,
      ccache: v.ccache?.value ?? null,
      masterPrincipal: kerberos ? (v.master_principal?.value ?? `abs/${master.host}`) : null,
      masterPrincipalIsDefault: kerberos && v.master_principal === undefined,
      masterFingerprint: v.master_fingerprint?.value ?? null,
      masterCa: v.master_ca?.value ?? null,
      maxJobs: v.max_jobs?.value ?? 2,
      allowedPaths: v.allowed_paths?.value ?? [],
      allowedMethods: v.allowed_methods?.value ?? [...DEFAULT_ALLOWED_METHODS],
      allowedPrograms: v.allowed_programs?.value ?? [],
      heartbeatIntervalMs: v.heartbeat_interval?.value ?? 10_000,
    },
  };
}

/** The secret and trust-anchor files the config names, for the trust check (read-config-files.ts checkKeyFiles). */
export function slaveKeyFiles(config: SlaveConfig): { file: string; what: string }[] {
  const keys: [string | null, string][] = [
    [config.keyFile, "slave key file (key_file)"],
    [config.keytab, "keytab"],
    [config.masterCa, "master CA file (master_ca)"],
  ];
  return keys.flatMap(([file, what]) => (file === null ? [] : [{ file, what }]));
}

/** One line for `abs-slave -t`: what this config makes the slave do. */
export function summarizeSlaveConfig(c: SlaveConfig): string {
  const master = c.master.host.includes(":")
    ? `[${c.master.host}]:${c.master.port}`
    : `${c.master.host}:${c.master.port}`;
  return (
    `${c.file}: OK; slave ${c.name}, master ${master} (${c.auth}), ` +
    `max_jobs ${c.maxJobs}, allowed paths ${c.allowedPaths.join(", ")}, ` +
    `methods ${c.allowedMethods.join(", ")}` +
    (c.allowedPrograms.length > 0 ? `, programs ${c.allowedPrograms.join(", ")}` : "") +
    `, state in ${c.stateDir}`
  );
}
