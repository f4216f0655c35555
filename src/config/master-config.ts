// The master's configuration: master.conf (its `[master]` section and any
// job definitions) plus every jobs.d/*.conf (job definitions only), read in
// three steps, all before any socket or file is opened (STYLE 6):
//
//   1. text → sections of located entries   (ini-tokenizer.ts)
//   2. sections → checked values, or every issue found, each as
//      `file:line: key "value": why`        (readSection, readJobDefinition)
//   3. checked values → MasterConfig with every default filled in and every
//      duration in milliseconds              (fillMasterDefaults, fillJobDefaults)
//
// Pure code: read-config-files.ts reads the files. Conflicting options are
// refused, never quietly fixed; so is an option that would have no effect
// (a keytab with auth = realm-key), since it shows a misunderstanding.
//
//   [master]
//   realm = EXAMPLE.COM
//   listen = 0.0.0.0:7370
//   jobs_dir = /var/lib/abs/jobs
//   auth = kerberos
//   keytab = /etc/abs/abs.keytab
//   service_principal = abs/backup.example.com

import { AUTH_MODES, type AuthMode } from "../model/auth-modes.js";
import { type IniSection, tokenizeIni } from "./ini-tokenizer.js";
import { closest, type ConfigIssue, type LoadResult, makeIssue } from "./issues.js";
import { DEFAULT_PORT, type HostPort } from "./host-port.js";
import {
  JOB_KEYS,
  type JobDefinition,
  jobHeaderName,
  readJobDefinition,
} from "./job-definition.js";
import { DEFAULT_ADMIN_SOCKET, DEFAULT_REALM_KEY_FILE } from "./default-paths.js";
import { type Located, readSection } from "./section-reader.js";
import {
  absolutePath,
  duration,
  groupName,
  hostPort,
  integer,
  Invalid,
  list,
  name,
  octalMode,
  oneOf,
  type Parser,
  principal,
  principalService,
  realm,
  servicePrincipal,
  timeZone,
} from "./values.js";

/** One config file as read: its name for messages, and its text. */
export interface ConfigFile {
  file: string;
  text: string;
}

export interface MasterConfig {
  /** master.conf as named by the reader (the first file), for messages and the summary. */
  file: string;
  /** `listen`: address and port for slaves (TLS). Port 0: any free port. Default 0.0.0.0:7370. */
  listen: HostPort;
  /** `jobs_dir`: absolute path of the jobs directory. Default /var/lib/abs/jobs. */
  jobsDir: string;
  /** `state_dir`: absolute path for the master's generated TLS certificate and key. Default /var/lib/abs/master. */
  stateDir: string;
  /** `log_dir`: absolute path of master-daemon.log and the admin access log. Default /var/log/abs. */
  logDir: string;
  /** `admin_socket`: absolute path of the admin Unix socket. Default /run/abs/admin.sock. */
  adminSocket: string;
  /** `admin_socket_mode`: its file mode; world-writable modes are refused. Default 0o660. */
  adminSocketMode: number;
  /**
   * `admin_socket_group`: the group (name or gid) the socket is given, so
   * that its members may administer; needs group read and write in
   * admin_socket_mode. Default null: the master's own group.
   */
  adminSocketGroup: string | null;
  /** `realm`: the realm the master serves (for Kerberos, the Kerberos realm). Required. */
  realm: string;
  /** `auth`: how slaves authenticate: realm-key or kerberos. Default "realm-key". */
  auth: AuthMode;
  /** `realm_key_file`: the realm key (`abs keygen`); realm-key only. Default /etc/abs/realm.key; null with kerberos. */
  realmKeyFile: string | null;
  /**
   * `disaster_log_key_file`: a key made by `abs keygen`, from which the key
   * that authenticates each disaster-log record is derived (auth/disaster-log-key.ts).
   * Default null: the realm key. With kerberos there is no realm key, so the
   * fake master needs it, and the real master needs the same file to import.
   */
  disasterLogKeyFile: string | null;
  /** `keytab`: the master's service keytab; required with kerberos, refused otherwise. */
  keytab: string | null;
  /** `service_principal`: `service/host[@REALM]`; required with kerberos, refused otherwise. */
  servicePrincipal: string | null;
  /**
   * `allowed_principals`: principals the master lets authenticate (kerberos
   * only), `*` for any run of characters but `@`. Default with kerberos
   * `<slave_principal_service>/*` (every host principal of the realm); empty
   * with realm-key. The master also lets through the principals of
   * slave_principal.NAME and those of its own service (other masters'
   * startup-vote probes, which may use no slave name).
   */
  allowedPrincipals: string[];
  /** `slave_principal_service`: the service of slave principals, `<service>/<fqdn>@REALM` (kerberos only). Default "host". */
  slavePrincipalService: string;
  /**
   * `slave_principal.NAME = principal`: the principal (realm filled in) that
   * alone may use slave name NAME, whatever its form (kerberos only).
   * Default: none.
   */
  slavePrincipals: Record<string, string>;
  /** `tls_cert`: PEM certificate for the slave link; both or neither with tls_key. Default null: the master makes a self-signed one in state_dir. */
  tlsCert: string | null;
  /** `tls_key`: PEM private key of tls_cert. Default null (see tlsCert). */
  tlsKey: string | null;
  /** `max_jobs`: limit on unarchived jobs in the jobs directory. Default 100,000. */
  maxJobs: number;
  /** `max_concurrent`: limit on jobs dispatched or running across all slaves. Default 100. */
  maxConcurrent: number;
  /** `default_slave_max_jobs`: per-slave limit on concurrent jobs (a slave may ask for fewer). Default 2. */
  defaultSlaveMaxJobs: number;
  /** `orphan_grace`: milliseconds an orphaned job waits for its slave before failing as lost. Default 600,000 (10m). */
  orphanGraceMs: number;
  /** `heartbeat_interval`: milliseconds between heartbeats on the slave link (at least 100). Default 10,000 (10s). */
  heartbeatIntervalMs: number;
  /** `handshake_timeout`: milliseconds a connection has to finish TLS, and then authentication (at least 100). Default 10,000 (10s). */
  handshakeTimeoutMs: number;
  /** `max_handshakes`: slave-link connections in TLS or authentication at once, in all; more are closed at once. Default 128. */
  maxHandshakes: number;
  /** `max_handshakes_per_address`: the same from one address (IPv6: one /64); at most max_handshakes. Default 16. */
  maxHandshakesPerAddress: number;
  /** `peers`: the other master hosts, for startup voting; port default 7370. Default empty. */
  peers: HostPort[];
  /** `timezone`: the zone job schedules are read in unless they name one. Default: the local zone given to the loader. */
  timezone: string;
  /** Every job definition, in file order then section order. */
  jobs: JobDefinition[];
}

/** max_handshakes's default (as src/auth/handshake-limits.ts's). */
const DEFAULT_MAX_HANDSHAKES = 128;
/** max_handshakes_per_address's default (as src/auth/handshake-limits.ts's). */
const DEFAULT_MAX_HANDSHAKES_PER_ADDRESS = 16;
export { DEFAULT_ADMIN_SOCKET, DEFAULT_REALM_KEY_FILE };

/** Refuses world-writable modes: on a Unix socket, write permission is the right to administer. */
const socketMode: Parser<number> = (t) => {
  const mode = octalMode(t);
  if (mode instanceof Invalid) return mode;
  if ((mode & 0o002) !== 0) {
    return new Invalid(
      "world-writable: anyone on this host could administer ABS; use 0660 or 0770",
    );
  }
  return mode;
};

const MASTER_SCHEMA = {
  listen: hostPort(DEFAULT_PORT, true),
  jobs_dir: absolutePath,
  state_dir: absolutePath,
  log_dir: absolutePath,
  admin_socket: absolutePath,
  admin_socket_mode: socketMode,
  admin_socket_group: groupName,
  realm,
  auth: oneOf(AUTH_MODES),
  realm_key_file: absolutePath,
  disaster_log_key_file: absolutePath,
  keytab: absolutePath,
  service_principal: servicePrincipal,
  allowed_principals: list(principal),
  slave_principal_service: principalService,
  tls_cert: absolutePath,
  tls_key: absolutePath,
  max_jobs: integer(1, 10_000_000),
  max_concurrent: integer(1, 100_000),
  default_slave_max_jobs: integer(1, 10_000),
  orphan_grace: duration(0),
  heartbeat_interval: duration(100),
  handshake_timeout: duration(100),
  max_handshakes: integer(1, 100_000),
  max_handshakes_per_address: integer(1, 100_000),
  peers: list(hostPort(DEFAULT_PORT)),
  timezone: timeZone,
};

const SLAVE_PRINCIPAL_PREFIX = "slave_principal.";

/** Every key of the [master] section (`slave_principal.NAME` for the map). */
export const MASTER_KEYS: readonly string[] = [
  ...Object.keys(MASTER_SCHEMA),
  `${SLAVE_PRINCIPAL_PREFIX}NAME`,
];

/** The master's local time zone, the default of `timezone`. */
function localTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

export interface MasterLoadOptions {
  /** The zone job schedules default to when master.conf names none. Default: this host's local zone. */
  localTimeZone?: string;
}

/**
 * admin_socket of a master.conf that has mistakes elsewhere (its `issues`),
 * for `abs`: the running master, once reached, reports the mistakes itself
 * (`abs reload`). Undefined unless the value is certain: a mistake about
 * admin_socket itself, an unknown key (admin_socket misspelt?), or one about
 * the file's structure (a line that is not `key = value`, a missing or
 * repeated [master]) could hide the right one. Only bad values of other
 * known keys let it through.
 */
export function adminSocketDespite(
  file: ConfigFile,
  issues: readonly ConfigIssue[],
): string | undefined {
  // A key the schemas do not know may be admin_socket misspelt: the socket
  // meant is then not the default, and must not be guessed.
  const known = new Set([...MASTER_KEYS, ...JOB_KEYS, "job"].filter((k) => k !== "admin_socket"));
  if (issues.some((i) => !known.has(i.key))) return undefined;
  const masters = tokenizeIni(file.file, file.text).sections.filter((s) => s.header === "master");
  if (masters.length !== 1) return undefined;
  const entries = masters[0]?.entries.filter((e) => e.key === "admin_socket") ?? [];
  const [entry, ...more] = entries;
  if (more.length > 0) return undefined;
  if (entry === undefined) return DEFAULT_ADMIN_SOCKET;
  const parsed = absolutePath(entry.value);
  return parsed instanceof Invalid ? undefined : parsed;
}

/**
 * Checks master.conf (the first file) and the jobs.d files (the others, in
 * name order). Returns the config, or every issue found in every file.
 */
export function loadMasterConfig(
  files: readonly ConfigFile[],
  options: MasterLoadOptions = {},
): LoadResult<MasterConfig> {
  const issues: ConfigIssue[] = [];
  const masterFile = files[0];
  if (masterFile === undefined) {
    return {
      errors: [makeIssue("master.conf", 1, "file", "master.conf", "no config file was given")],
    };
  }

  // Step 1: every file into sections; sort them into [master] and jobs.
  let masterSection: IniSection | undefined;
  const jobSections: { file: string; name: string; section: IniSection }[] = [];
  const defined = new Map<string, { file: string; line: number }>();
  files.forEach(({ file, text }, index) => {
    const doc = tokenizeIni(file, text);
    issues.push(...doc.issues);
    doc.sections.forEach((section, i) => {
      if (i === 0) {
        for (const e of section.entries) {
          const why = "outside any section; put it under [master] or [job NAME]";
          issues.push(makeIssue(file, e.line, e.key, e.value, why));
        }
        return;
      }
      const where = (key: string, value: string, why: string): void => {
        issues.push(makeIssue(file, section.line, key, value, why));
      };
      if (section.header === "master") {
        if (index !== 0) {
          where("section", "master", `belongs in ${masterFile.file}, not in a jobs.d file`);
        } else if (masterSection !== undefined) {
          where("section", "master", `already opened at line ${masterSection.line}`);
        } else {
          masterSection = section;
        }
        return;
      }
      const jobName = jobHeaderName(section.header);
      if (jobName === undefined) {
        const [word = "", ...rest] = section.header.split(/\s+/);
        const guess = closest(word, ["master", "job"]);
        const why =
          guess === undefined
            ? "unknown section; expected [master] or [job NAME]"
            : `unknown section; did you mean [${[guess, ...rest].join(" ")}]?`;
        where("section", section.header, why);
        return;
      }
      if (jobName === "") {
        where("section", section.header, "a job definition needs a name: [job NAME]");
        return;
      }
      const checked = name(jobName);
      if (checked instanceof Invalid) {
        where("job", jobName, checked.why);
        return;
      }
      const first = defined.get(jobName);
      if (first !== undefined) {
        where("job", jobName, `already defined at ${first.file}:${first.line}`);
        return;
      }
      defined.set(jobName, { file, line: section.line });
      jobSections.push({ file, name: jobName, section });
    });
  });

  // Step 2: the [master] section, then each definition.
  const m = checkMaster(masterFile.file, masterSection, issues);
  const timezone = m?.timezone ?? options.localTimeZone ?? localTimeZone();
  const jobs: JobDefinition[] = [];
  for (const { file, name: jobName, section } of jobSections) {
    const def = readJobDefinition(file, jobName, section, { timezone }, MASTER_KEYS, issues);
    if (def !== undefined) jobs.push(def);
  }
  if (issues.length > 0 || m === undefined) return { errors: sortIssues(issues, files) };

  // Step 3.
  return { config: fillMasterDefaults(masterFile.file, m, timezone, jobs) };
}

/** Issues in file order, then line order (a stable sort keeps same-line issues as found). */
function sortIssues(issues: ConfigIssue[], files: readonly ConfigFile[]): ConfigIssue[] {
  const order = new Map(files.map((f, i) => [f.file, i]));
  return issues.sort(
    (a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line,
  );
}

type MasterValues = ReturnType<typeof readSection<typeof MASTER_SCHEMA>>["values"];

interface CheckedMaster {
  values: MasterValues;
  realm: string;
  timezone: string | undefined;
  slavePrincipals: Record<string, string>;
}

function checkMaster(
  file: string,
  section: IniSection | undefined,
  issues: ConfigIssue[],
): CheckedMaster | undefined {
  if (section === undefined) {
    issues.push(
      makeIssue(
        file,
        1,
        "section",
        "master",
        "missing; master.conf needs a [master] section with at least realm",
      ),
    );
    return undefined;
  }
  const before = issues.length;
  const slavePrincipals: Located<string>[] = [];
  const { values: v, written } = readSection(file, section, MASTER_SCHEMA, issues, {
    elsewhere: { keys: JOB_KEYS, where: "a [job NAME] section" },
    extra: (entry) => {
      if (!entry.key.startsWith(SLAVE_PRINCIPAL_PREFIX)) return false;
      const slave = name(entry.key.slice(SLAVE_PRINCIPAL_PREFIX.length));
      const p = principal(entry.value);
      const bad =
        slave instanceof Invalid
          ? `slave name: ${slave.why}`
          : p instanceof Invalid
            ? p.why
            : undefined;
      if (bad !== undefined) issues.push(makeIssue(file, entry.line, entry.key, entry.value, bad));
      else slavePrincipals.push({ value: entry.key, line: entry.line, text: entry.value });
      return true;
    },
  });
  const at = (line: number, key: string, value: string, why: string): void => {
    issues.push(makeIssue(file, line, key, value, why));
  };
  if (!written.has("realm")) at(section.line, "section", "master", 'missing required key "realm"');

  // Authentication: the keys of the other mode are refused, those of this one required.
  const auth = v.auth?.value ?? (written.has("auth") ? undefined : "realm-key");
  const authShown = v.auth === undefined ? `${auth}, the default` : auth;
  if (auth !== undefined) {
    const otherMode = auth === "kerberos" ? "realm-key" : "kerberos";
    const otherKeys =
      auth === "kerberos"
        ? ["realm_key_file"]
        : [
            "keytab",
            "service_principal",
            "allowed_principals",
            "slave_principal_service",
            ...slavePrincipals.map((e) => e.value),
          ];
    for (const key of otherKeys) {
      const e = written.get(key);
      if (e !== undefined) {
        at(e.line, key, e.value, `only used with auth = ${otherMode} (auth is ${authShown})`);
      }
    }
    if (auth === "kerberos" && v.auth !== undefined) {
      const missing = ["keytab", "service_principal"].filter((k) => !written.has(k));
      if (missing.length > 0) at(v.auth.line, "auth", "kerberos", `needs ${missing.join(" and ")}`);
    }
  }
  // Allowed principals must be in the realm: the acceptor refuses every other realm anyway.
  const realmValue = v.realm?.value;
  if (v.allowed_principals !== undefined && realmValue !== undefined) {
    const a = v.allowed_principals;
    const outside = a.value.find((p) => p.includes("@") && !p.endsWith(`@${realmValue}`));
    if (outside !== undefined) {
      at(a.line, "allowed_principals", a.text, `${outside} is not in the realm ${realmValue}`);
    }
  }
  // The acceptor takes tickets of its own realm only: another realm here
  // would fail every connection, so -t refuses it.
  const service = v.service_principal;
  if (service !== undefined && realmValue !== undefined) {
    const sign = service.value.lastIndexOf("@");
    const serviceRealm = sign === -1 ? undefined : service.value.slice(sign + 1);
    if (serviceRealm !== undefined && serviceRealm !== realmValue) {
      at(
        service.line,
        "service_principal",
        service.text,
        `its realm ${serviceRealm} is not the master's realm ${realmValue} (write it without @REALM, or with @${realmValue})`,
      );
    }
  }
  if (realmValue !== undefined) {
    for (const e of slavePrincipals) {
      if (e.text.includes("@") && !e.text.endsWith(`@${realmValue}`)) {
        at(e.line, e.value, e.text, `${e.text} is not in the realm ${realmValue}`);
      }
    }
  }
  // A group that may not read and write the socket could not use it: the setting would do nothing.
  const group = v.admin_socket_group;
  const socketModeValue = v.admin_socket_mode?.value ?? 0o660;
  if (group !== undefined && (socketModeValue & 0o060) !== 0o060) {
    at(
      group.line,
      "admin_socket_group",
      group.text,
      `its members could not use the socket: admin_socket_mode ${socketModeValue.toString(8).padStart(4, "0")} gives the group no read and write (use 0660)`,
    );
  }
  if (written.has("tls_cert") !== written.has("tls_key")) {
    const [has, lacks] = written.has("tls_cert")
      ? ["tls_cert", "tls_key"]
      : ["tls_key", "tls_cert"];
    const e = written.get(has);
    if (e !== undefined) {
      at(e.line, has, e.value, `needs ${lacks} too (or neither, for a self-signed certificate)`);
    }
  }
  // A per-address cap above the total one could never be reached: a mistake.
  const perAddress = v.max_handshakes_per_address;
  const total = v.max_handshakes?.value ?? DEFAULT_MAX_HANDSHAKES;
  if (perAddress !== undefined && perAddress.value > total) {
    const of = v.max_handshakes === undefined ? `${total}, the default` : `${total}`;
    at(
      perAddress.line,
      "max_handshakes_per_address",
      perAddress.text,
      `more than max_handshakes (${of}): lower it, or raise max_handshakes`,
    );
  }
  if (issues.length > before || realmValue === undefined) return undefined;
  const map: Record<string, string> = {};
  for (const e of slavePrincipals) {
    const slave = e.value.slice(SLAVE_PRINCIPAL_PREFIX.length);
    map[slave] = e.text.includes("@") ? e.text : `${e.text}@${realmValue}`;
  }
  return { values: v, realm: realmValue, timezone: v.timezone?.value, slavePrincipals: map };
}

/** Step 3 for [master]: defaults and milliseconds. */
function fillMasterDefaults(
  file: string,
  m: CheckedMaster,
  timezone: string,
  jobs: JobDefinition[],
): MasterConfig {
  const v = m.values;
  const auth = v.auth?.value ?? "realm-key";
  const kerberos = auth === "kerberos";
  const slaveService = v.slave_principal_service?.value ?? "host";
  return {
    file,
    listen: v.listen?.value ?? { host: "0.0.0.0", port: DEFAULT_PORT },
    jobsDir: v.jobs_dir?.value ?? "/var/lib/abs/jobs",
    stateDir: v.state_dir?.value ?? "/var/lib/abs/master",
    logDir: v.log_dir?.value ?? "/var/log/abs",
    adminSocket: v.admin_socket?.value ?? DEFAULT_ADMIN_SOCKET,
    adminSocketMode: v.admin_socket_mode?.value ?? 0o660,
    adminSocketGroup: v.admin_socket_group?.value ?? null,
    realm: m.realm,
    auth,
    realmKeyFile: kerberos ? null : (v.realm_key_file?.value ?? DEFAULT_REALM_KEY_FILE),
    disasterLogKeyFile: v.disaster_log_key_file?.value ?? null,
    keytab: v.keytab?.value ?? null,
    servicePrincipal: v.service_principal?.value ?? null,
    allowedPrincipals: v.allowed_principals?.value ?? (kerberos ? [`${slaveService}/*`] : []),
    slavePrincipalService: slaveService,
    slavePrincipals: m.slavePrincipals,
    tlsCert: v.tls_cert?.value ?? null,
    tlsKey: v.tls_key?.value ?? null,
    maxJobs: v.max_jobs?.value ?? 100_000,
    maxConcurrent: v.max_concurrent?.value ?? 100,
    defaultSlaveMaxJobs: v.default_slave_max_jobs?.value ?? 2,
    orphanGraceMs: v.orphan_grace?.value ?? 600_000,
    heartbeatIntervalMs: v.heartbeat_interval?.value ?? 10_000,
    handshakeTimeoutMs: v.handshake_timeout?.value ?? 10_000,
    maxHandshakes: v.max_handshakes?.value ?? DEFAULT_MAX_HANDSHAKES,
    maxHandshakesPerAddress:
      v.max_handshakes_per_address?.value ?? DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
    peers: v.peers?.value ?? [],
    timezone,
    jobs,
  };
}

/** The secret files the config names, for the trust check (read-config-files.ts checkKeyFiles). */
export function masterKeyFiles(config: MasterConfig): { file: string; what: string }[] {
  const keys: [string | null, string][] = [
    [config.realmKeyFile, "realm key file (realm_key_file)"],
    [config.disasterLogKeyFile, "disaster log key file (disaster_log_key_file)"],
    [config.keytab, "keytab"],
    [config.tlsKey, "TLS private key (tls_key)"],
  ];
  return keys.flatMap(([file, what]) => (file === null ? [] : [{ file, what }]));
}

/** One line for `abs-master -t`: "master.conf: OK; 2 job definitions: home (green-acres, 0 2 * * *, Europe/Paris), ..." */
export function summarizeMasterConfig(config: MasterConfig): string {
  const n = config.jobs.length;
  if (n === 0) return `${config.file}: OK; no job definitions`;
  const defs = config.jobs.map((j) => {
    const parts = [j.slaves.join("+"), j.schedule === null ? "manual only" : j.schedule.expression];
    if (j.schedule !== null) parts.push(j.timezone);
    if (!j.enabled) parts.push("disabled");
    return `${j.name} (${parts.join(", ")})`;
  });
  return `${config.file}: OK; ${n} job definition${n === 1 ? "" : "s"}: ${defs.join(", ")}`;
}
