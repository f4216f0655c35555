// The npm tarball: `npm pack` of the built tree, then `npm install -g` of it
// into a temp prefix, as an admin without the Debian package would install
// it. From the prefix only: the three commands run, the native helpers were
// built (or the install said it falls back), and man finds the pages
// through the package's `man` field.
//
// npm takes the runtime dependencies from its cache, which `npm ci` filled
// (--prefer-offline; from the registry only for what is missing there), so
// .ci/run runs it with the package test (npm run test:package), not in
// `npm test`, whose tests stay on loopback.

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { cleanEnv, run } from "../helpers/installed-program.js";
import { tempDir } from "../helpers/tmp.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

t.test("npm pack, then npm install -g of the tarball", (t) => {
  const dir = tempDir(t, "abs-npm-");
  // --ignore-scripts: the tree is built (npm run build); prepare would
  // build it again.
  const pack = spawnSync("npm", ["pack", "--ignore-scripts", "--pack-destination", dir], {
    cwd: repo,
    encoding: "utf8",
  });
  t.equal(pack.status, 0, pack.stderr);
  const tarball = path.join(dir, pack.stdout.trim().split("\n").at(-1) ?? "?");
  t.ok(existsSync(tarball), `npm pack wrote ${tarball}`);

  const prefix = path.join(dir, "prefix");
  const install = spawnSync(
    "npm",
    ["install", "-g", "--prefix", prefix, "--prefer-offline", "--no-audit", "--no-fund", tarball],
    { cwd: dir, encoding: "utf8", env: { ...process.env, npm_config_loglevel: "warn" } },
  );
  t.equal(install.status, 0, `npm install -g:\n${install.stdout}${install.stderr}`);

  const env = cleanEnv({ PATH: `${path.join(prefix, "bin")}:/usr/bin:/bin` });
  t.same(readdirSync(path.join(prefix, "bin")).sort(), ["abs", "abs-master", "abs-slave"]);
  const installed = path.join(prefix, "lib", "node_modules", "abs-backup");
  const help = run(["abs", "--help"], { env });
  t.equal(help.status, 0, help.stderr);
  t.match(help.stdout, /^Usage: abs \[options\] \[command\]$/m);
  const masterConf = path.join(installed, "etc", "master.conf");
  const master = run(["abs-master", "-t", "-c", masterConf], { env });
  t.equal(master.status, 0, master.stderr);
  t.match(master.stdout, `${masterConf}: OK; 4 job definitions: `);
  const slaveConf = path.join(installed, "etc", "slave.conf");
  const slave = run(["abs-slave", "-t", "-c", slaveConf], { env });
  t.equal(slave.status, 0, slave.stderr);
  t.match(slave.stdout, `${slaveConf}: OK; slave `);

  // With a compiler (CI has one) the helpers are built; without, npm's
  // output has the fallback's announcement.
  const built = ["lstat_names.node", "link_fd.node"].every((f) =>
    existsSync(path.join(installed, "native", "build", "Release", f)),
  );
  if (!built) t.match(install.stderr, /native\/lstat-names\.c did not build/);
  t.ok(built || /did not build/.test(install.stderr), "the native helpers built, or announced");
  if (process.env.CI === "true") t.ok(built, "CI has a compiler: the helpers are built");

  for (const [section, page] of [
    ["8", "abs"],
    ["8", "abs-master"],
    ["8", "abs-slave"],
    ["5", "abs.conf"],
  ]) {
    // man-db finds PREFIX/share/man from PATH's PREFIX/bin.
    const where = run(["man", "-w", section, page], { env });
    t.equal(where.stdout, `${path.join(installed, "man", `${page}.${section}`)}\n`, where.stderr);
  }
  t.end();
});
