// The order in which `abs` looks for the admin socket, over a fake file system.

import { writeFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import {
  DEFAULT_ADMIN_SOCKET,
  DEFAULT_MASTER_CONF,
  type MasterConfReader,
  masterConfReader,
  resolveAdminSocket,
} from "../../src/cli/socket.js";
import { ConfigError } from "../../src/errors.js";
import { refusal } from "../helpers/refusal.js";
import { tempDir } from "../helpers/tmp.js";

/** master.conf files by name, each with its admin_socket. */
function fakeReader(files: Record<string, string>): MasterConfReader & { read: string[] } {
  const read: string[] = [];
  return {
    read,
    exists: (file) => file in files,
    adminSocketOf(file) {
      read.push(file);
      const socket = files[file];
      if (socket === undefined) return Promise.reject(new ConfigError(`${file}: cannot read`));
      return Promise.resolve(socket);
    },
  };
}

t.test("the first source given wins, in the documented order", async (t) => {
  const all = fakeReader({
    "/c/master.conf": "/from/config.sock",
    "/e/master.conf": "/from/abs-config.sock",
    [DEFAULT_MASTER_CONF]: "/from/etc.sock",
  });
  const env = { ABS_ADMIN_SOCKET: "/from/env.sock", ABS_CONFIG: "/e/master.conf" };
  const cases: [string, Parameters<typeof resolveAdminSocket>[0], string, string][] = [
    ["--socket first", { socket: "/s.sock", env }, "/s.sock", "--socket"],
    [
      "then ABS_ADMIN_SOCKET, even over --config",
      { config: "/c/master.conf", env },
      "/from/env.sock",
      "ABS_ADMIN_SOCKET",
    ],
    [
      "then --config",
      { config: "/c/master.conf", env: { ABS_CONFIG: "/e/master.conf" } },
      "/from/config.sock",
      "admin_socket in /c/master.conf (--config)",
    ],
    [
      "then ABS_CONFIG",
      { env: { ABS_CONFIG: "/e/master.conf" } },
      "/from/abs-config.sock",
      "admin_socket in /e/master.conf (ABS_CONFIG)",
    ],
    [
      "then /etc/abs/master.conf",
      { env: {} },
      "/from/etc.sock",
      `admin_socket in ${DEFAULT_MASTER_CONF}`,
    ],
    [
      "empty variables count as unset",
      { socket: "", env: { ABS_ADMIN_SOCKET: "", ABS_CONFIG: "" } },
      "/from/etc.sock",
      `admin_socket in ${DEFAULT_MASTER_CONF}`,
    ],
  ];
  for (const [name, sources, want, source] of cases) {
    t.same(await resolveAdminSocket(sources, all), { path: want, source }, name);
  }
  t.same(
    await resolveAdminSocket({ env: {} }, fakeReader({})),
    { path: DEFAULT_ADMIN_SOCKET, source: "the default" },
    "the default when there is no /etc/abs/master.conf",
  );
});

t.test("--socket and --config together are refused", async (t) => {
  const err = await refusal(
    resolveAdminSocket({ socket: "/s.sock", config: "/c/master.conf", env: {} }, fakeReader({})),
  );
  t.equal(err.code, "BAD_ARGUMENT");
  t.equal(
    err.message,
    "--socket and --config both say where the admin socket is; give one of them",
  );
});

t.test("config files are read only when needed", async (t) => {
  const reader = fakeReader({ [DEFAULT_MASTER_CONF]: "/etc.sock" });
  await resolveAdminSocket({ socket: "/s.sock", env: { ABS_CONFIG: "/nope" } }, reader);
  t.same(reader.read, [], "--socket given: no file read");
  const err = await refusal(resolveAdminSocket({ env: { ABS_CONFIG: "/nope" } }, reader));
  t.equal(err.code, "CONFIG", "a named config that cannot be read is an error, not skipped");
  t.same(reader.read, ["/nope"]);
});

t.test("the real reader: admin_socket, its default, and a config with errors", async (t) => {
  const dir = tempDir(t);
  const file = (name: string, text: string): string => {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const good = file("good.conf", "[master]\nrealm = EXAMPLE.COM\nadmin_socket = /tmp/x.sock\n");
  t.equal(await masterConfReader.adminSocketOf(good), "/tmp/x.sock");
  const bare = file("bare.conf", "[master]\nrealm = EXAMPLE.COM\n");
  t.equal(await masterConfReader.adminSocketOf(bare), DEFAULT_ADMIN_SOCKET);
  const bad = file(
    "bad.conf",
    "[master]\nrealm = EXAMPLE.COM\nadmin_socket = rel.sock\nfrobnicate = 1\n",
  );
  const err = await refusal(masterConfReader.adminSocketOf(bad));
  t.equal(err.code, "CONFIG");
  t.equal(
    err.message,
    `cannot take admin_socket from ${bad}, which has errors (or name the socket with --socket):\n` +
      `${bad}:3: admin_socket "rel.sock": expected an absolute path (starting with /)\n` +
      `${bad}:4: frobnicate "1": unknown key`,
  );
  // Mistakes elsewhere: admin_socket is still certain, and the master,
  // reached, reports them (abs reload).
  const typo = file(
    "typo.conf",
    "[master]\nrealm = EXAMPLE.COM\nadmin_socket = /tmp/y.sock\norphan_grace = soon\n[job x]\nslave = s\n",
  );
  t.equal(await masterConfReader.adminSocketOf(typo), "/tmp/y.sock");
  const typoDefault = file("typo2.conf", "[master]\nrealm = EXAMPLE.COM\nmax_jobs = many\n");
  t.equal(await masterConfReader.adminSocketOf(typoDefault), DEFAULT_ADMIN_SOCKET);
  // Not certain: a line that is not key = value (it may be the socket), two
  // [master] sections, two admin_socket lines.
  for (const [name, text] of [
    ["garbled.conf", "[master]\nrealm = EXAMPLE.COM\nadmin_socket /tmp/z.sock\n"],
    ["two.conf", "[master]\nrealm = A\n[master]\nadmin_socket = /tmp/z.sock\n"],
    ["twice.conf", "[master]\nrealm = A\nadmin_socket = /a.sock\nadmin_socket = /b.sock\n"],
    // Misspelt, the socket meant is not the default one.
    ["misspelt.conf", "[master]\nrealm = A\nadmin_sockt = /srv/test/admin.sock\n"],
    ["unknown.conf", "[master]\nrealm = A\nfrobnicate = 1\n"],
  ] as const) {
    const e = await refusal(masterConfReader.adminSocketOf(file(name, text)));
    t.equal(e.code, "CONFIG", name);
    t.match(e.message, `cannot take admin_socket from ${path.join(dir, name)}, which has errors`);
  }
  const missing = await refusal(masterConfReader.adminSocketOf(path.join(dir, "none.conf")));
  t.equal(missing.code, "CONFIG");
  t.match(missing.message, /none\.conf: cannot read/);
});
