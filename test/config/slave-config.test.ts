import t from "tap";
import { loadSlaveConfig, type SlaveConfig } from "../../src/config/slave-config.js";

const PIN = Array.from({ length: 32 }, (_, i) => (i * 8).toString(16).padStart(2, "0")).join(":");

function load(text: string, hostName = "client7") {
  return loadSlaveConfig("slave.conf", text, { hostName });
}

function errorsOf(text: string, hostName?: string): string[] {
  const r = load(text, hostName);
  return "errors" in r ? r.errors.map((e) => e.message) : [];
}

function configOf(text: string): SlaveConfig {
  const r = load(text);
  if ("errors" in r) throw new Error(r.errors.map((e) => e.message).join("\n"));
  return r.config;
}

/** The one line every slave.conf needs besides master (no implicit "everywhere"). */
const PATHS = "allowed_paths: /\n";

t.test(
  "the ABS seed's line, exactly as written, and allowed_paths make a whole slave.conf",
  (t) => {
    t.same(configOf("master: green-acres\n" + PATHS), {
      file: "slave.conf",
      master: { host: "green-acres", port: 7370 },
      name: "client7",
      stateDir: "/var/lib/abs/slave",
      logDir: "/var/log/abs",
      auth: "realm-key",
      keyFile: "/etc/abs/slave.key",
      keytab: null,
      principal: null,
      ccache: null,
      masterPrincipal: null,
      masterPrincipalIsDefault: false,
      masterFingerprint: null,
      masterCa: null,
      maxJobs: 2,
      allowedPaths: ["/"],
      allowedMethods: ["tar", "restore", "verify"],
      allowedPrograms: [],
      heartbeatIntervalMs: 10_000,
    });
    t.same(
      configOf(PATHS + "master: green-acres").master,
      { host: "green-acres", port: 7370 },
      "no final newline",
    );
    t.end();
  },
);

t.test("master as host:port and [IPv6]:port, in both forms", (t) => {
  const cases: [string, { host: string; port: number }][] = [
    ["master: green-acres:7400", { host: "green-acres", port: 7400 }],
    ["master = green-acres.example.com:7400", { host: "green-acres.example.com", port: 7400 }],
    ["master: 192.0.2.7", { host: "192.0.2.7", port: 7370 }],
    ["master: [::1]:7371", { host: "::1", port: 7371 }],
    ["master: [2001:db8::7]", { host: "2001:db8::7", port: 7370 }],
    ["master:green-acres", { host: "green-acres", port: 7370 }],
    ["  master   :   green-acres   # comment", { host: "green-acres", port: 7370 }],
  ];
  for (const [text, master] of cases) t.same(configOf(`${PATHS}${text}`).master, master, text);
  t.end();
});

t.test("every setting in either form, with an optional [slave] header", (t) => {
  const text = [
    "# slave.conf",
    "; written by hand",
    "master: green-acres",
    "[slave]",
    "name = client7.example.com",
    "state_dir: /srv/abs/state/",
    "log_dir = /srv/abs/log",
    "auth: kerberos",
    "keytab = /etc/krb5.keytab",
    "principal: host/client7.example.com@EXAMPLE.COM",
    "ccache = FILE:/srv/abs/krb5cc",
    "master_principal: abs/backup.example.com@EXAMPLE.COM",
    `master_fingerprint = ${PIN}`,
    "master_ca: /etc/abs/ca.pem",
    "max_jobs = 4",
    "allowed_paths: /home, /srv/restore",
    "allowed_methods = tar, command",
    "allowed_programs: /usr/bin/pg_dump, /usr/local/lib/abs/*, /opt/hooks/**/run",
    "heartbeat_interval = 2s",
  ].join("\r\n");
  t.same(configOf(text), {
    file: "slave.conf",
    master: { host: "green-acres", port: 7370 },
    name: "client7.example.com",
    stateDir: "/srv/abs/state",
    logDir: "/srv/abs/log",
    auth: "kerberos",
    keyFile: null,
    keytab: "/etc/krb5.keytab",
    principal: "host/client7.example.com@EXAMPLE.COM",
    ccache: "FILE:/srv/abs/krb5cc",
    masterPrincipal: "abs/backup.example.com@EXAMPLE.COM",
    masterPrincipalIsDefault: false,
    masterFingerprint: PIN.toUpperCase(),
    masterCa: "/etc/abs/ca.pem",
    maxJobs: 4,
    allowedPaths: ["/home", "/srv/restore"],
    allowedMethods: ["tar", "command"],
    allowedPrograms: ["/usr/bin/pg_dump", "/usr/local/lib/abs/*", "/opt/hooks/**/run"],
    heartbeatIntervalMs: 2000,
  });
  const defaulted = configOf(
    `master: m.example.com\nauth = kerberos\nccache = FILE:/x\nmaster_fingerprint = ${PIN}\n${PATHS}`,
  );
  t.equal(
    defaulted.masterPrincipal,
    "abs/m.example.com",
    "the master's principal defaults to abs/<master host>",
  );
  t.equal(defaulted.masterPrincipalIsDefault, true);
  t.end();
});

const NO_PATHS =
  'slave.conf:1: file "slave.conf": missing required key "allowed_paths": the paths jobs may read and write under (e.g. "allowed_paths: /home, /srv/backup"); write "allowed_paths: /" for a whole-system backup';

// [what, text, messages]. A text without allowed_paths gets PATHS as its
// last line (the test below), so that each shows its own mistake.
const MISTAKES: [string, string, string[]][] = [
  [
    "empty file",
    "",
    ['slave.conf:1: file "slave.conf": missing required key "master" (e.g. "master: green-acres")'],
  ],
  [
    "no allowed_paths",
    "master: a\nallowed_paths:\n",
    ['slave.conf:2: allowed_paths "": expected at least one item'],
  ],
  [
    "a relative allowed program",
    "master: a\nallowed_methods: command\nallowed_programs: /usr/bin/pg_dump, pg_dump\n",
    [
      'slave.conf:3: allowed_programs "/usr/bin/pg_dump, pg_dump": "pg_dump": expected an absolute path (starting with /)',
    ],
  ],
  [
    "an allowed program with ..",
    "master: a\nallowed_methods: command\nallowed_programs: /usr/lib/abs/../../../bin/sh\n",
    [
      'slave.conf:3: allowed_programs "/usr/lib/abs/../../../bin/sh": "/usr/lib/abs/../../../bin/sh": a path must not contain "." or ".." parts',
    ],
  ],
  [
    "an allowed directory",
    "master: a\nallowed_methods: command\nallowed_programs: /usr/lib/abs/\n",
    [
      'slave.conf:3: allowed_programs "/usr/lib/abs/": "/usr/lib/abs/": a directory is not a program; write "/usr/lib/abs/*" for the programs in it',
    ],
  ],
  [
    "an unknown method",
    "master: a\nallowed_methods: tar, ftp\n",
    [
      'slave.conf:2: allowed_methods "tar, ftp": "ftp": expected "tar", "restore", "verify" or "command"',
    ],
  ],
  [
    "a method twice",
    "master: a\nallowed_methods: tar, tar\n",
    ['slave.conf:2: allowed_methods "tar, tar": "tar" is listed twice'],
  ],
  [
    "command without allowed_programs",
    "master: a\nallowed_methods: tar, command\n",
    [
      'slave.conf:2: allowed_methods "tar, command": command needs allowed_programs: the programs command jobs may run (e.g. "allowed_programs: /usr/bin/pg_dump, /usr/local/lib/abs/*")',
    ],
  ],
  [
    "allowed_programs without command (the default methods)",
    "master: a\nallowed_programs: /usr/bin/pg_dump\n",
    [
      'slave.conf:2: allowed_programs "/usr/bin/pg_dump": only used when allowed_methods lists command (allowed_methods is tar, restore, verify, the default)',
    ],
  ],
  [
    "allowed_programs without command (written)",
    "master: a\nallowed_methods: tar\nallowed_programs: /usr/bin/pg_dump\n",
    [
      'slave.conf:3: allowed_programs "/usr/bin/pg_dump": only used when allowed_methods lists command (allowed_methods is tar)',
    ],
  ],
  [
    "only comments",
    "# master: green-acres\n",
    ['slave.conf:1: file "slave.conf": missing required key "master" (e.g. "master: green-acres")'],
  ],
  [
    "a misspelt key",
    "master: a\nmastr_ca: /ca.pem\n",
    ['slave.conf:2: mastr_ca "/ca.pem": unknown key; did you mean "master_ca"?'],
  ],
  ["an unknown key", "master: a\nfoo = bar\n", ['slave.conf:2: foo "bar": unknown key']],
  [
    "a duplicate key",
    "master: green-acres\nmaster: blue-meadows\n",
    ['slave.conf:2: master "blue-meadows": already set at line 1'],
  ],
  [
    "a duplicate across the top and [slave]",
    "master: a\n[slave]\nmaster = b\n",
    ['slave.conf:3: master "b": already set at line 1'],
  ],
  [
    "an unknown section",
    "master: a\nallowed_paths: /\n[slaves]\n",
    [
      'slave.conf:3: section "slaves": unknown section; slave.conf has only [slave], or no section at all; did you mean [slave]?',
    ],
  ],
  [
    "a line that is not a setting",
    "master green-acres\n",
    [
      'slave.conf:1: line "master green-acres": expected "key: value" or "key = value", a [section] header or a comment',
      'slave.conf:1: file "slave.conf": missing required key "master" (e.g. "master: green-acres")',
    ],
  ],
  ["an empty master", "master:\n", ['slave.conf:1: master "": the host is empty']],
  [
    "a master port out of range",
    "master: green-acres:0\n",
    ['slave.conf:1: master "green-acres:0": port "0" is not a number from 1 to 65535'],
  ],
  [
    "an IPv6 master without brackets",
    "master: ::1\n",
    ['slave.conf:1: master "::1": an IPv6 address needs brackets, e.g. [2001:db8::7]:7370'],
  ],
  [
    "a bad name",
    "master: a\nname: my laptop\n",
    [
      'slave.conf:2: name "my laptop": a name holds only letters a-z and A-Z, digits, "-", "_" and "."',
    ],
  ],
  [
    "a host name that is no slave name",
    "master: a\n",
    [
      'slave.conf:1: name "höst": the host name is not a usable slave name (a name holds only letters a-z and A-Z, digits, "-", "_" and "."); set name',
    ],
  ],
  [
    "a bad auth",
    "master: a\nauth: password\n",
    ['slave.conf:2: auth "password": expected "realm-key" or "kerberos"'],
  ],
  [
    "a short fingerprint",
    "master: a\nmaster_fingerprint: AB:CD\n",
    [
      'slave.conf:2: master_fingerprint "AB:CD": expected a SHA-256 fingerprint, 32 hex bytes separated by ":" (AB:CD:...), got 2 parts',
    ],
  ],
  [
    "a fingerprint that is not hex",
    `master: a\nmaster_fingerprint: ${PIN.replace(/^00/, "ZZ")}\n`,
    [
      `slave.conf:2: master_fingerprint ${JSON.stringify(PIN.replace(/^00/, "ZZ").slice(0, 60) + "...")}: expected a SHA-256 fingerprint, 32 hex bytes separated by ":" (AB:CD:...); each part is two hex digits`,
    ],
  ],
  [
    "a relative allowed path",
    "master: a\nallowed_paths: /home, srv\n",
    [
      'slave.conf:2: allowed_paths "/home, srv": "srv": expected an absolute path (starting with /)',
    ],
  ],
  [
    "max_jobs zero",
    "master: a\nmax_jobs: 0\n",
    ['slave.conf:2: max_jobs "0": expected an integer from 1 to 10000'],
  ],
  [
    "a bad heartbeat",
    "master: a\nheartbeat_interval: 1.5s\n",
    [
      'slave.conf:2: heartbeat_interval "1.5s": expected a duration such as 90s, 15m, 2h, 1d or 1h30m',
    ],
  ],
  [
    "a bad ccache",
    "master: a\nauth: kerberos\nccache: krb5cc\nmaster_ca: /ca\n",
    [
      'slave.conf:3: ccache "krb5cc": expected a credential cache such as "FILE:/var/lib/abs/krb5cc"',
    ],
  ],
  [
    "kerberos without keytab or ccache",
    `master: a\nauth: kerberos\nmaster_fingerprint: ${PIN}\n`,
    ['slave.conf:2: auth "kerberos": needs keytab or ccache (the slave\'s Kerberos credentials)'],
  ],
  [
    "kerberos without a way to verify the master",
    "master: a\nauth: kerberos\nkeytab: /etc/krb5.keytab\n",
    [
      'slave.conf:2: auth "kerberos": needs master_fingerprint or master_ca: Kerberos is not bound to the TLS session, so the slave must verify the master\'s certificate',
    ],
  ],
  [
    "Kerberos settings with realm-key",
    "master: a\nkeytab: /etc/krb5.keytab\nprincipal: host/a@R\n",
    [
      'slave.conf:2: keytab "/etc/krb5.keytab": only used with auth = kerberos (auth is realm-key, the default)',
      'slave.conf:3: principal "host/a@R": only used with auth = kerberos (auth is realm-key, the default)',
    ],
  ],
  [
    "a principal without its realm: every connection would fail",
    "master: a\nauth: kerberos\nkeytab: /k\nmaster_ca: /ca\nprincipal: host/green-acres.example.test\n",
    [
      'slave.conf:5: principal "host/green-acres.example.test": has no realm: write it with the master\'s realm, as name@REALM (e.g. "host/green-acres.example.test@EXAMPLE.COM")',
    ],
  ],
  [
    "a key file with kerberos",
    "master: a\nauth: kerberos\nkeytab: /k\nmaster_ca: /ca\nkey_file: /etc/abs/slave.key\n",
    [
      'slave.conf:5: key_file "/etc/abs/slave.key": only used with auth = realm-key (auth is kerberos)',
    ],
  ],
  [
    "the realm key: a slave no longer holds it",
    "master: a\nname: db1\nrealm_key_file: /etc/abs/realm.key\n",
    [
      'slave.conf:3: realm_key_file "/etc/abs/realm.key": a slave no longer holds the realm key: whoever holds it can pose as the master to every slave. On the master\'s host run `abs keygen --slave db1 db1.key`, copy db1.key to this host as /etc/abs/slave.key (mode 0600), replace this line with "key_file: /etc/abs/slave.key", and remove the realm key from this host',
    ],
  ],
  [
    "a control character",
    "master: green\u0007acres\n",
    [
      'slave.conf:1: line "master: green\\u0007acres": contains the control character U+0007; is this a text config file?',
      'slave.conf:1: file "slave.conf": missing required key "master" (e.g. "master: green-acres")',
    ],
  ],
];

t.test("every kind of slave.conf mistake has its exact message", (t) => {
  for (const [what, text, expected] of MISTAKES) {
    const whole = text.includes("allowed_paths") ? text : text + PATHS;
    t.same(
      errorsOf(whole, what === "a host name that is no slave name" ? "höst" : "client7"),
      expected,
      what,
    );
  }
  t.end();
});

t.test("a slave.conf without allowed_paths is refused: no implicit /", (t) => {
  t.same(errorsOf("master: green-acres\n"), [NO_PATHS]);
  t.same(errorsOf("master: green-acres\nallowed_methods: tar\n"), [NO_PATHS]);
  t.same(configOf("master: green-acres\nallowed_paths: /\n").allowedPaths, ["/"]);
  t.end();
});

t.test("hostile slave.conf", (t) => {
  t.same(
    configOf(`\ufeffmaster: green-acres\r\n${PATHS}`).master.host,
    "green-acres",
    "BOM and CRLF",
  );
  t.same(configOf(`master: green-acres\rname: a\r${PATHS}`).name, "a", "old Mac line ends");
  const long = errorsOf(`master: ${"g".repeat(1024 * 1024)}\n${PATHS}`);
  t.equal(long.length, 2);
  t.match(long[0], /^slave\.conf:1: line "master: g{52}\.\.\.": longer than 65536 characters$/);
  const bytes = Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 131) % 256));
  const garbage = errorsOf(bytes.toString("utf8"));
  t.ok(garbage.length > 0 && garbage.length <= 23, `${garbage.length} errors for binary garbage`);
  const full = "master: green-acres\nmax_jobs = 3\n";
  for (let n = 0; n <= full.length; n++) {
    const r = load(full.slice(0, n));
    if ("errors" in r) for (const e of r.errors) t.match(e.message, /^slave\.conf:\d+: /);
  }
  t.end();
});
