import t from "tap";
import { ConfigError } from "../../src/errors.js";
import { configErrorFromIssues, type ConfigIssue } from "../../src/config/issues.js";
import { methodParams } from "../../src/config/job-definition.js";
import {
  type ConfigFile,
  loadMasterConfig,
  type MasterConfig,
  masterKeyFiles,
  summarizeMasterConfig,
} from "../../src/config/master-config.js";

const MASTER = "[master]\nrealm = EXAMPLE.COM\n";

/** A job file: header on line 1, slave 2, method 3, verify.archive 4, then `extra` from line 5. */
function job(extra: string, header = "[job home]"): string {
  return `${header}\nslave = green-acres\nmethod = verify\nverify.archive = /srv/a\n${extra}`;
}

function load(files: ConfigFile[]): { config: MasterConfig } | { errors: ConfigIssue[] } {
  return loadMasterConfig(files, { localTimeZone: "Europe/Paris" });
}

function errorsOf(files: ConfigFile[]): string[] {
  const r = load(files);
  return "errors" in r ? r.errors.map((e) => e.message) : [];
}

function configOf(files: ConfigFile[]): MasterConfig {
  const r = load(files);
  if ("errors" in r) throw new Error(r.errors.map((e) => e.message).join("\n"));
  return r.config;
}

const m = (text: string): ConfigFile[] => [{ file: "master.conf", text }];
const j = (text: string): ConfigFile[] => [
  { file: "master.conf", text: MASTER },
  { file: "jobs.d/home.conf", text },
];

// [what, files, messages]: one row per kind of mistake.
const MISTAKES: [string, ConfigFile[], string[]][] = [
  // Structure.
  ["no file at all", [], ['master.conf:1: file "master.conf": no config file was given']],
  [
    "no [master] section",
    m(""),
    [
      'master.conf:1: section "master": missing; master.conf needs a [master] section with at least realm',
    ],
  ],
  [
    "[master] without realm",
    m("[master]\n"),
    ['master.conf:1: section "master": missing required key "realm"'],
  ],
  [
    "[master] twice",
    m(`${MASTER}[master]\n`),
    ['master.conf:3: section "master": already opened at line 1'],
  ],
  [
    "[master] in jobs.d",
    j("[master]\nrealm = X\n"),
    ['jobs.d/home.conf:1: section "master": belongs in master.conf, not in a jobs.d file'],
  ],
  [
    "a key outside any section",
    m(`realm = X\n${MASTER}`),
    ['master.conf:1: realm "X": outside any section; put it under [master] or [job NAME]'],
  ],
  [
    "unknown section",
    m(`${MASTER}[slaves]\n`),
    ['master.conf:3: section "slaves": unknown section; expected [master] or [job NAME]'],
  ],
  [
    "misspelt [master]",
    m("[mastr]\nrealm = X\n"),
    [
      'master.conf:1: section "mastr": unknown section; did you mean [master]?',
      'master.conf:1: section "master": missing; master.conf needs a [master] section with at least realm',
    ],
  ],
  [
    "misspelt [job NAME]",
    j("[jobs home]\n"),
    ['jobs.d/home.conf:1: section "jobs home": unknown section; did you mean [job home]?'],
  ],
  [
    "[job] without a name",
    j("[job]\n"),
    ['jobs.d/home.conf:1: section "job": a job definition needs a name: [job NAME]'],
  ],
  [
    "a job name with a space",
    j('[job "a b"]\n'),
    [
      'jobs.d/home.conf:1: job "a b": a name holds only letters a-z and A-Z, digits, "-", "_" and "."',
    ],
  ],
  [
    "a job name in unicode",
    j("[job hôme]\n"),
    [
      'jobs.d/home.conf:1: job "hôme": a name holds only letters a-z and A-Z, digits, "-", "_" and "."',
    ],
  ],
  // Unknown keys.
  [
    "unknown key, close to a known one",
    m(`${MASTER}lisen = 0.0.0.0:7370\n`),
    ['master.conf:3: lisen "0.0.0.0:7370": unknown key; did you mean "listen"?'],
  ],
  [
    "unknown key, close to none",
    m(`${MASTER}colour = blue\n`),
    ['master.conf:3: colour "blue": unknown key'],
  ],
  [
    "a job key in [master]",
    m(`${MASTER}schedule = 0 2 * * *\n`),
    ['master.conf:3: schedule "0 2 * * *": unknown key here; it belongs in a [job NAME] section'],
  ],
  [
    "a [master] key in a job",
    j(job("listen = 0.0.0.0:1\n")),
    ['jobs.d/home.conf:5: listen "0.0.0.0:1": unknown key here; it belongs in [master]'],
  ],
  [
    "misspelt job key",
    j(job("schedul = 0 2 * * *\n")),
    ['jobs.d/home.conf:5: schedul "0 2 * * *": unknown key; did you mean "schedule"?'],
  ],
  [
    "a method parameter without its prefix",
    j(job("sources = /home\n")),
    ['jobs.d/home.conf:5: sources "/home": unknown key; did you mean "tar.sources"?'],
  ],
  // Values of [master].
  [
    "listen: port out of range",
    m(`${MASTER}listen = 0.0.0.0:99999\n`),
    ['master.conf:3: listen "0.0.0.0:99999": port "99999" is not a number from 0 to 65535'],
  ],
  [
    "listen: IPv6 without brackets",
    m(`${MASTER}listen = ::1:7370\n`),
    ['master.conf:3: listen "::1:7370": an IPv6 address needs brackets, e.g. [2001:db8::7]:7370'],
  ],
  [
    "listen: not an IPv6 address",
    m(`${MASTER}listen = [::g]:7370\n`),
    ['master.conf:3: listen "[::g]:7370": ::g is not an IPv6 address'],
  ],
  [
    "listen: not a host",
    m(`${MASTER}listen = back up:1\n`),
    [
      "master.conf:3: listen \"back up:1\": a host name holds letters, digits, '-' and '_' in dot-separated parts",
    ],
  ],
  [
    "listen: not an IPv4 address",
    m(`${MASTER}listen = 10.0.0.256:1\n`),
    ['master.conf:3: listen "10.0.0.256:1": 10.0.0.256 is not an IPv4 address'],
  ],
  [
    "admin_socket_mode: world-writable",
    m(`${MASTER}admin_socket_mode = 0666\n`),
    [
      'master.conf:3: admin_socket_mode "0666": world-writable: anyone on this host could administer ABS; use 0660 or 0770',
    ],
  ],
  [
    "admin_socket_group: not a group name",
    m(`${MASTER}admin_socket_group = abs admins\n`),
    [
      'master.conf:3: admin_socket_group "abs admins": expected a group name (letters, digits, _ . -, at most 32) or a numeric gid',
    ],
  ],
  [
    "admin_socket_group: a mode that gives the group nothing",
    m(`${MASTER}admin_socket_group = 4242\nadmin_socket_mode = 0600\n`),
    [
      'master.conf:3: admin_socket_group "4242": its members could not use the socket: admin_socket_mode 0600 gives the group no read and write (use 0660)',
    ],
  ],
  [
    "admin_socket_mode: not octal",
    m(`${MASTER}admin_socket_mode = 0689\n`),
    ['master.conf:3: admin_socket_mode "0689": expected an octal mode such as 0660 (at most 0777)'],
  ],
  [
    "a relative path",
    m(`${MASTER}jobs_dir = var/lib/abs\n`),
    ['master.conf:3: jobs_dir "var/lib/abs": expected an absolute path (starting with /)'],
  ],
  [
    "a path with ..",
    m(`${MASTER}state_dir = /var/lib/../abs\n`),
    ['master.conf:3: state_dir "/var/lib/../abs": a path must not contain "." or ".." parts'],
  ],
  [
    "a bad enum",
    m(`${MASTER}auth = krb5\n`),
    ['master.conf:3: auth "krb5": expected "realm-key" or "kerberos"'],
  ],
  [
    "a bad integer",
    m(`${MASTER}max_jobs = 1e3\n`),
    ['master.conf:3: max_jobs "1e3": expected an integer from 1 to 10000000'],
  ],
  [
    "an integer out of range",
    m(`${MASTER}max_concurrent = 0\n`),
    ['master.conf:3: max_concurrent "0": expected an integer from 1 to 100000'],
  ],
  [
    "a negative duration",
    m(`${MASTER}orphan_grace = -5m\n`),
    ['master.conf:3: orphan_grace "-5m": a duration cannot be negative'],
  ],
  [
    "a per-address handshake cap above the default total",
    m(`${MASTER}max_handshakes_per_address = 300\n`),
    [
      'master.conf:3: max_handshakes_per_address "300": more than max_handshakes (128, the default): lower it, or raise max_handshakes',
    ],
  ],
  [
    "a per-address handshake cap above the total one",
    m(`${MASTER}max_handshakes = 8\nmax_handshakes_per_address = 9\n`),
    [
      'master.conf:4: max_handshakes_per_address "9": more than max_handshakes (8): lower it, or raise max_handshakes',
    ],
  ],
  [
    "a handshake cap of 0",
    m(`${MASTER}max_handshakes = 0\n`),
    ['master.conf:3: max_handshakes "0": expected an integer from 1 to 100000'],
  ],
  [
    "a garbage duration",
    m(`${MASTER}handshake_timeout = soon\n`),
    [
      'master.conf:3: handshake_timeout "soon": expected a duration such as 90s, 15m, 2h, 1d or 1h30m',
    ],
  ],
  [
    "a duration with units out of order",
    m(`${MASTER}orphan_grace = 30m1h\n`),
    [
      'master.conf:3: orphan_grace "30m1h": units must go from the largest to the smallest, each once (e.g. 1h30m)',
    ],
  ],
  [
    "a duration too short",
    m(`${MASTER}heartbeat_interval = 50ms\n`),
    ['master.conf:3: heartbeat_interval "50ms": must be at least 100ms'],
  ],
  [
    "a duration too long for a timer",
    m(`${MASTER}orphan_grace = 30d\n`),
    ['master.conf:3: orphan_grace "30d": longer than 24d, the longest a Node.js timer can wait'],
  ],
  [
    "a list with an empty item",
    m(`${MASTER}peers = a,,b\n`),
    ['master.conf:3: peers "a,,b": the list has an empty item (two commas, or one at an end)'],
  ],
  [
    "a list with a repeated item",
    m(`${MASTER}peers = m1, m1:7370\n`),
    ['master.conf:3: peers "m1, m1:7370": "m1:7370" is listed twice'],
  ],
  [
    "an unknown time zone",
    m(`${MASTER}timezone = Mars/Olympus\n`),
    [
      'master.conf:3: timezone "Mars/Olympus": unknown time zone; expected an IANA name such as Europe/Paris or UTC',
    ],
  ],
  [
    "a bad realm",
    m("[master]\nrealm = EXAMPLE COM\n"),
    [
      'master.conf:2: realm "EXAMPLE COM": expected a realm name without spaces, "@" or "/" (e.g. EXAMPLE.COM)',
    ],
  ],
  // Conflicts in [master].
  [
    "kerberos without keytab or service_principal",
    m(`${MASTER}auth = kerberos\n`),
    ['master.conf:3: auth "kerberos": needs keytab and service_principal'],
  ],
  [
    "a keytab with realm-key",
    m(`${MASTER}keytab = /etc/abs/abs.keytab\n`),
    [
      'master.conf:3: keytab "/etc/abs/abs.keytab": only used with auth = kerberos (auth is realm-key, the default)',
    ],
  ],
  [
    "a realm key file with kerberos",
    m(
      `${MASTER}auth = kerberos\nkeytab = /k\nservice_principal = abs/b.example.com\nrealm_key_file = /etc/abs/realm.key\n`,
    ),
    [
      'master.conf:6: realm_key_file "/etc/abs/realm.key": only used with auth = realm-key (auth is kerberos)',
    ],
  ],
  [
    "an allowed principal of another realm",
    m(
      `${MASTER}auth = kerberos\nkeytab = /k\nservice_principal = abs/b\nallowed_principals = host/a@EXAMPLE.COM, host/b@OTHER.ORG\n`,
    ),
    [
      'master.conf:6: allowed_principals "host/a@EXAMPLE.COM, host/b@OTHER.ORG": host/b@OTHER.ORG is not in the realm EXAMPLE.COM',
    ],
  ],
  [
    "slave_principal and slave_principal_service with realm-key",
    m(`${MASTER}slave_principal.db1 = backup/db1\nslave_principal_service = abs-slave\n`),
    [
      'master.conf:3: slave_principal.db1 "backup/db1": only used with auth = kerberos (auth is realm-key, the default)',
      'master.conf:4: slave_principal_service "abs-slave": only used with auth = kerberos (auth is realm-key, the default)',
    ],
  ],
  [
    "slave_principal: a bad name, a bad principal, another realm",
    m(
      `${MASTER}auth = kerberos\nkeytab = /k\nservice_principal = abs/b\nslave_principal.db 1 = host/x\nslave_principal.db2 = a b\nslave_principal.db3 = backup/db3@OTHER.ORG\nslave_principal_service = host/x\n`,
    ),
    [
      'master.conf:6: "slave_principal.db 1" "host/x": slave name: a name holds only letters a-z and A-Z, digits, "-", "_" and "."',
      'master.conf:7: slave_principal.db2 "a b": expected a Kerberos principal such as "host/client.example.com@EXAMPLE.COM"',
      'master.conf:8: slave_principal.db3 "backup/db3@OTHER.ORG": backup/db3@OTHER.ORG is not in the realm EXAMPLE.COM',
      'master.conf:9: slave_principal_service "host/x": expected a Kerberos service name such as "host" (letters, digits, . _ -)',
    ],
  ],
  [
    "a bad service principal",
    m(`${MASTER}auth = kerberos\nkeytab = /k\nservice_principal = abs\n`),
    [
      'master.conf:5: service_principal "abs": expected service/host or service/host@REALM (e.g. "abs/backup.example.com@EXAMPLE.COM")',
    ],
  ],
  [
    "a service principal of another realm: every connection would fail",
    m(
      `${MASTER}auth = kerberos\nkeytab = /k\nservice_principal = abs/backup.example.test@OTHER.TEST\n`,
    ),
    [
      'master.conf:5: service_principal "abs/backup.example.test@OTHER.TEST": its realm OTHER.TEST is not the master\'s realm EXAMPLE.COM (write it without @REALM, or with @EXAMPLE.COM)',
    ],
  ],
  [
    "tls_cert without tls_key",
    m(`${MASTER}tls_cert = /etc/abs/cert.pem\n`),
    [
      'master.conf:3: tls_cert "/etc/abs/cert.pem": needs tls_key too (or neither, for a self-signed certificate)',
    ],
  ],
  // Job definitions.
  [
    "a job without slave and method",
    j("[job home]\nschedule = 0 2 * * *\n"),
    [
      'jobs.d/home.conf:1: job "home": missing required key "slave"',
      'jobs.d/home.conf:1: job "home": missing required key "method"',
    ],
  ],
  [
    "a bad cron expression",
    j(job("schedule = 0 25 * * *\n")),
    ['jobs.d/home.conf:5: schedule "0 25 * * *": hour 25 is out of range 0-23'],
  ],
  [
    "a job's unknown time zone",
    j(job("schedule = 0 2 * * *\ntimezone = Europe/Pariss\n")),
    [
      'jobs.d/home.conf:6: timezone "Europe/Pariss": unknown time zone; expected an IANA name such as Europe/Paris or UTC',
    ],
  ],
  [
    "a zero max_run_time",
    j(job("max_run_time = 0\n")),
    ['jobs.d/home.conf:5: max_run_time "0": must be more than 0'],
  ],
  [
    "a bad priority",
    j(job("priority = high\n")),
    ['jobs.d/home.conf:5: priority "high": expected an integer from -1000 to 1000'],
  ],
  [
    "negative retries",
    j(job("retries = -1\n")),
    ['jobs.d/home.conf:5: retries "-1": expected an integer from 0 to 100'],
  ],
  [
    "a bad boolean",
    j(job("enabled = maybe\n")),
    ['jobs.d/home.conf:5: enabled "maybe": expected true or false (or yes/no, on/off)'],
  ],
  [
    "a bad overlap",
    j(job("overlap = queue\n")),
    ['jobs.d/home.conf:5: overlap "queue": expected "allow", "forbid" or "replace"'],
  ],
  [
    "a bad missed_run",
    j(job("schedule = 0 2 * * *\nmissed_run = all\n")),
    ['jobs.d/home.conf:6: missed_run "all": expected "skip" or "run-once"'],
  ],
  [
    "an unknown method",
    j("[job home]\nslave = a\nmethod = rsync\n"),
    ['jobs.d/home.conf:3: method "rsync": expected "tar", "restore", "verify" or "command"'],
  ],
  [
    "a bad slave name",
    j("[job home]\nslave = green acres\nmethod = verify\nverify.archive = /a\n"),
    [
      'jobs.d/home.conf:2: slave "green acres": "green acres": a name holds only letters a-z and A-Z, digits, "-", "_" and "."',
    ],
  ],
  [
    "a relative tar source",
    j("[job home]\nslave = a\nmethod = tar\ntar.sources = /etc, home\ntar.destination = /b\n"),
    [
      'jobs.d/home.conf:4: tar.sources "/etc, home": "home": expected an absolute path (starting with /)',
    ],
  ],
  [
    "method tar without sources and destination",
    j("[job home]\nslave = a\nmethod = tar\n"),
    ['jobs.d/home.conf:3: method "tar": needs tar.sources and tar.destination'],
  ],
  [
    "method command without program",
    j("[job home]\nslave = a\nmethod = command\ncommand.args = -v\n"),
    ['jobs.d/home.conf:3: method "command": needs command.program'],
  ],
  [
    "a parameter of another method",
    j(job("tar.gzip = yes\ncommand.env.PGHOST = db1\n")),
    [
      'jobs.d/home.conf:5: tar.gzip "yes": only used with method = tar (method is verify)',
      'jobs.d/home.conf:6: command.env.PGHOST "db1": only used with method = command (method is verify)',
    ],
  ],
  [
    "command.args with command.shell",
    j(
      "[job home]\nslave = a\nmethod = command\ncommand.program = pg_dumpall | gzip\ncommand.shell = true\ncommand.args = -v\n",
    ),
    [
      'jobs.d/home.conf:6: command.args "-v": not used with command.shell = true: the program is then a shell command line; put the arguments in it',
    ],
  ],
  [
    "an unclosed quote in command.args",
    j(
      '[job home]\nslave = a\nmethod = command\ncommand.program = restic\ncommand.args = backup "/srv/my data\n',
    ),
    ['jobs.d/home.conf:5: command.args "backup \\"/srv/my data": a " quote is not closed'],
  ],
  [
    "a bad environment variable name",
    j("[job home]\nslave = a\nmethod = command\ncommand.program = x\ncommand.env.1X = y\n"),
    [
      'jobs.d/home.conf:5: command.env.1X "y": an environment variable name holds letters, digits and _, and does not start with a digit',
    ],
  ],
  [
    "timezone and missed_run without a schedule",
    j(job("timezone = UTC\nmissed_run = skip\n")),
    [
      'jobs.d/home.conf:5: timezone "UTC": only used with a schedule; this definition has none (it runs only by abs run)',
      'jobs.d/home.conf:6: missed_run "skip": only used with a schedule; this definition has none (it runs only by abs run)',
    ],
  ],
  [
    "retry_backoff without retries",
    j(job("retry_backoff = 5m\n")),
    ['jobs.d/home.conf:5: retry_backoff "5m": only used when retries is more than 0'],
  ],
  [
    "retry_backoff_max shorter than retry_backoff",
    j(job("retries = 3\nretry_backoff = 10m\nretry_backoff_max = 5m\n")),
    ['jobs.d/home.conf:7: retry_backoff_max "5m": shorter than retry_backoff (10m)'],
  ],
  [
    "retry_backoff longer than the default maximum",
    j(job("retries = 3\nretry_backoff = 2h\n")),
    [
      'jobs.d/home.conf:6: retry_backoff "2h": longer than retry_backoff_max (1h, the default); raise retry_backoff_max too',
    ],
  ],
  [
    "the same key twice in a definition",
    j(job("priority = 1\npriority = 2\n")),
    ['jobs.d/home.conf:6: priority "2": already set at line 5'],
  ],
];

t.test("every kind of mistake has its exact message", (t) => {
  for (const [what, files, expected] of MISTAKES) t.same(errorsOf(files), expected, what);
  t.end();
});

t.test("a definition defined twice in two files names both places", (t) => {
  const files: ConfigFile[] = [
    {
      file: "master.conf",
      text: `${MASTER}\n[job db]\nslave = db1\nmethod = verify\nverify.archive = /a\n`,
    },
    { file: "jobs.d/a.conf", text: job("") },
    { file: "jobs.d/b.conf", text: `# the same again\n${job("")}\n[job db]\n` },
  ];
  t.same(errorsOf(files), [
    'jobs.d/b.conf:2: job "home": already defined at jobs.d/a.conf:1',
    'jobs.d/b.conf:7: job "db": already defined at master.conf:4',
  ]);
  t.end();
});

t.test("errors of every file are collected, in file then line order", (t) => {
  const files: ConfigFile[] = [
    { file: "master.conf", text: "[master]\nrealm = R\nmax_jobs = x\nlisten = :\n" },
    { file: "jobs.d/a.conf", text: "[job a]\nslave = s\nmethod = tar\nschedule = 61 * * * *\n" },
    { file: "jobs.d/b.conf", text: "garbage\n[job b]\n" },
  ];
  t.same(errorsOf(files), [
    'master.conf:3: max_jobs "x": expected an integer from 1 to 10000000',
    'master.conf:4: listen ":": the host is empty',
    'jobs.d/a.conf:3: method "tar": needs tar.sources and tar.destination',
    'jobs.d/a.conf:4: schedule "61 * * * *": minute 61 is out of range 0-59',
    'jobs.d/b.conf:1: line "garbage": expected "key = value", a [section] header or a comment',
    'jobs.d/b.conf:2: job "b": missing required key "slave"',
    'jobs.d/b.conf:2: job "b": missing required key "method"',
  ]);
  t.end();
});

t.test("defaults are filled in", (t) => {
  const c = configOf([
    { file: "master.conf", text: MASTER },
    {
      file: "jobs.d/home.conf",
      text: "[job home]\nslave = green-acres\nmethod = tar\ntar.sources = /home/\ntar.destination = /srv/b\n",
    },
  ]);
  const { jobs, ...master } = c;
  t.same(master, {
    file: "master.conf",
    listen: { host: "0.0.0.0", port: 7370 },
    jobsDir: "/var/lib/abs/jobs",
    stateDir: "/var/lib/abs/master",
    logDir: "/var/log/abs",
    adminSocket: "/run/abs/admin.sock",
    adminSocketMode: 0o660,
    adminSocketGroup: null,
    realm: "EXAMPLE.COM",
    auth: "realm-key",
    realmKeyFile: "/etc/abs/realm.key",
    disasterLogKeyFile: null,
    keytab: null,
    servicePrincipal: null,
    allowedPrincipals: [],
    slavePrincipalService: "host",
    slavePrincipals: {},
    tlsCert: null,
    tlsKey: null,
    maxJobs: 100_000,
    maxConcurrent: 100,
    defaultSlaveMaxJobs: 2,
    orphanGraceMs: 600_000,
    heartbeatIntervalMs: 10_000,
    handshakeTimeoutMs: 10_000,
    maxHandshakes: 128,
    maxHandshakesPerAddress: 16,
    peers: [],
    timezone: "Europe/Paris",
  });
  t.same(jobs, [
    {
      name: "home",
      file: "jobs.d/home.conf",
      line: 1,
      slaves: ["green-acres"],
      schedule: null,
      timezone: "Europe/Paris",
      method: {
        kind: "tar",
        sources: ["/home"],
        destination: "/srv/b",
        exclude: [],
        level: "full",
        gzip: false,
      },
      priority: 0,
      maxRunTimeMs: null,
      startDeadlineMs: null,
      retries: 0,
      retryBackoffMs: 60_000,
      retryBackoffMaxMs: 3_600_000,
      overlap: "forbid",
      missedRun: "run-once",
      enabled: true,
    },
  ]);
  t.end();
});

t.test("Kerberos: allowed_principals defaults to the slave service's principals", (t) => {
  const kerberos = `${MASTER}auth = kerberos\nkeytab = /k\nservice_principal = abs/b\n`;
  t.same(configOf(m(kerberos)).allowedPrincipals, ["host/*"]);
  t.same(configOf(m(`${kerberos}slave_principal_service = abs-slave\n`)).allowedPrincipals, [
    "abs-slave/*",
  ]);
  t.end();
});

t.test("every value read and every duration converted to milliseconds", (t) => {
  const c = configOf([
    {
      file: "/etc/abs/master.conf",
      text: [
        "[master]",
        "realm = EXAMPLE.COM",
        "listen = [::1]:0",
        "jobs_dir = /srv/abs/jobs",
        "admin_socket_mode = 0770",
        "admin_socket_group = abs-admin",
        "auth = kerberos",
        "keytab = /etc/abs/abs.keytab",
        "service_principal = abs/backup.example.com",
        "allowed_principals = host/a.example.com@EXAMPLE.COM, host/b.example.com",
        "slave_principal_service = abs-slave",
        "slave_principal.db1 = backup/db1.example.com",
        "slave_principal.db2 = backup/db2.example.com@EXAMPLE.COM",
        "tls_cert = /etc/abs/cert.pem",
        "tls_key = /etc/abs/key.pem",
        "max_jobs = 5000",
        "max_concurrent = 8",
        "default_slave_max_jobs = 3",
        "orphan_grace = 1h30m",
        "heartbeat_interval = 90",
        "handshake_timeout = 250ms",
        "max_handshakes = 1000",
        "max_handshakes_per_address = 1000",
        "peers = m2.example.com, [2001:db8::2]:7400",
        "timezone = UTC",
      ].join("\n"),
    },
    {
      file: "/etc/abs/jobs.d/db.conf",
      text: [
        '[job "db"]',
        "slave = db1, db2",
        "schedule = 0 30 1 * * MON-FRI",
        "timezone = America/New_York",
        "method = command",
        "command.program = /usr/bin/pg_dumpall",
        "command.args = --clean -f '/srv/dump/all.sql' \"--exclude=a b\" # the file",
        "command.env.PGHOST = db.example.com",
        "command.env.PGPASSFILE = '/etc/abs/pgpass ; x'",
        "command.cwd = /srv/dump",
        "priority = 10",
        "max_run_time = 2h",
        "start_deadline = 15m",
        "retries = 3",
        "retry_backoff = 30s",
        "retry_backoff_max = 10m",
        "overlap = replace",
        "missed_run = skip",
        "enabled = no",
      ].join("\n"),
    },
  ]);
  t.same(c.listen, { host: "::1", port: 0 });
  t.equal(c.adminSocketMode, 0o770);
  t.equal(c.adminSocketGroup, "abs-admin");
  t.equal(c.auth, "kerberos");
  t.equal(c.realmKeyFile, null);
  t.same(c.allowedPrincipals, ["host/a.example.com@EXAMPLE.COM", "host/b.example.com"]);
  t.equal(c.slavePrincipalService, "abs-slave");
  t.same(c.slavePrincipals, {
    db1: "backup/db1.example.com@EXAMPLE.COM",
    db2: "backup/db2.example.com@EXAMPLE.COM",
  });
  t.same([c.orphanGraceMs, c.heartbeatIntervalMs, c.handshakeTimeoutMs], [5_400_000, 90_000, 250]);
  t.same([c.maxHandshakes, c.maxHandshakesPerAddress], [1000, 1000]);
  t.same(c.peers, [
    { host: "m2.example.com", port: 7370 },
    { host: "2001:db8::2", port: 7400 },
  ]);
  const db = c.jobs[0];
  t.same(db?.slaves, ["db1", "db2"]);
  t.equal(db?.schedule?.expression, "0 30 1 * * MON-FRI");
  t.equal(db?.schedule?.hasSeconds, true);
  t.equal(db?.timezone, "America/New_York");
  t.same(db?.method, {
    kind: "command",
    program: "/usr/bin/pg_dumpall",
    args: ["--clean", "-f", "/srv/dump/all.sql", "--exclude=a b"],
    env: { PGHOST: "db.example.com", PGPASSFILE: "/etc/abs/pgpass ; x" },
    cwd: "/srv/dump",
    shell: false,
  });
  t.same(
    [
      db?.priority,
      db?.maxRunTimeMs,
      db?.startDeadlineMs,
      db?.retries,
      db?.retryBackoffMs,
      db?.retryBackoffMaxMs,
    ],
    [10, 7_200_000, 900_000, 3, 30_000, 600_000],
  );
  t.same([db?.overlap, db?.missedRun, db?.enabled], ["replace", "skip", false]);
  t.same(methodParams(db?.method ?? { kind: "verify", archive: "" }), {
    method: "command",
    params: {
      program: "/usr/bin/pg_dumpall",
      args: ["--clean", "-f", "/srv/dump/all.sql", "--exclude=a b"],
      env: { PGHOST: "db.example.com", PGPASSFILE: "/etc/abs/pgpass ; x" },
      cwd: "/srv/dump",
      shell: false,
    },
  });
  t.end();
});

t.test("CRLF line endings, a BOM and unicode values", (t) => {
  const text =
    "\ufeff[master]\r\nrealm = EXAMPLE.COM\r\n\r\n[job home]\r\nslave = green-acres\r\nmethod = tar\r\ntar.sources = /home/zoë/日本\r\ntar.destination = /srv/b\r\ntar.exclude = *.tmp, cache/**\r\n";
  const c = configOf(m(text));
  t.same(c.jobs[0]?.method, {
    kind: "tar",
    sources: ["/home/zoë/日本"],
    destination: "/srv/b",
    exclude: ["*.tmp", "cache/**"],
    level: "full",
    gzip: false,
  });
  t.same(
    errorsOf(m(text.replace("tar.destination", "tar.destinaton"))),
    [
      'master.conf:8: tar.destinaton "/srv/b": unknown key; did you mean "tar.destination"?',
      'master.conf:6: method "tar": needs tar.destination',
    ].sort((a, b) => Number(a.split(":")[1]) - Number(b.split(":")[1])),
  );
  t.end();
});

t.test("hostile master.conf", (t) => {
  t.same(errorsOf(m("")), [
    'master.conf:1: section "master": missing; master.conf needs a [master] section with at least realm',
  ]);
  const big = errorsOf(m(`[master]\nrealm = ${"R".repeat(1024 * 1024)}\n`));
  t.same(
    big,
    [
      `master.conf:2: line "realm = ${"R".repeat(52)}...": longer than 65536 characters`,
      'master.conf:1: section "master": missing required key "realm"',
    ].sort((a, b) => Number(a.split(":")[1]) - Number(b.split(":")[1])),
  );
  const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256));
  const garbage = errorsOf(m(`${MASTER}${bytes.toString("latin1")}`));
  t.ok(garbage.length > 0 && garbage.length <= 22, `${garbage.length} errors for binary garbage`);
  for (const e of garbage) t.match(e, /^master\.conf:\d+: /);
  t.end();
});

t.test("the -t summary", (t) => {
  const c = configOf([
    { file: "master.conf", text: `${MASTER}timezone = UTC\n` },
    {
      file: "jobs.d/a.conf",
      text: "[job home]\nslave = green-acres\nschedule = 0 2 * * *\ntimezone = Europe/Paris\nmethod = verify\nverify.archive = /a\n",
    },
    {
      file: "jobs.d/b.conf",
      text: "[job db]\nslave = db1, db2\nschedule = @daily\nmethod = verify\nverify.archive = /a\n[job adhoc]\nslave = x\nmethod = verify\nverify.archive = /a\nenabled = false\n",
    },
  ]);
  t.equal(
    summarizeMasterConfig(c),
    "master.conf: OK; 3 job definitions: home (green-acres, 0 2 * * *, Europe/Paris), db (db1+db2, @daily, UTC), adhoc (x, manual only, disabled)",
  );
  t.equal(summarizeMasterConfig(configOf(m(MASTER))), "master.conf: OK; no job definitions");
  t.equal(
    summarizeMasterConfig(configOf(j(job("")))),
    "master.conf: OK; 1 job definition: home (green-acres, manual only)",
  );
  t.end();
});

t.test("one ConfigError carrying every issue", (t) => {
  const r = load(m("[master]\nmax_jobs = 0\n"));
  t.ok("errors" in r);
  if (!("errors" in r)) {
    t.end();
    return;
  }
  const err = configErrorFromIssues(r.errors);
  t.ok(err instanceof ConfigError);
  t.equal(err.code, "CONFIG");
  t.equal(
    err.message,
    'master.conf:1: section "master": missing required key "realm"\nmaster.conf:2: max_jobs "0": expected an integer from 1 to 10000000',
  );
  t.same(err.context, { file: "master.conf", line: 1, field: "section" });
  t.end();
});

t.test(
  "disaster_log_key_file: an absolute path, in either auth mode; the key files listed",
  (t) => {
    t.match(errorsOf(m(`${MASTER}disaster_log_key_file = disaster.key\n`)), [
      /^master\.conf:3: disaster_log_key_file "disaster\.key": /,
    ]);
    const kerberos = configOf(
      m(
        `${MASTER}auth = kerberos\nkeytab = /etc/abs/abs.keytab\nservice_principal = abs/backup.example.com\ndisaster_log_key_file = /etc/abs/disaster-log.key\n`,
      ),
    );
    t.equal(kerberos.disasterLogKeyFile, "/etc/abs/disaster-log.key");
    t.same(masterKeyFiles(kerberos), [
      {
        file: "/etc/abs/disaster-log.key",
        what: "disaster log key file (disaster_log_key_file)",
      },
      { file: "/etc/abs/abs.keytab", what: "keytab" },
    ]);
    const plain = configOf(m(`${MASTER}tls_cert = /etc/abs/c.pem\ntls_key = /etc/abs/k.pem\n`));
    t.same(
      masterKeyFiles(plain).map((k) => k.file),
      ["/etc/abs/realm.key", "/etc/abs/k.pem"],
    );
    t.end();
  },
);
