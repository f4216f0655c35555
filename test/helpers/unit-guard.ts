// Loaded into every test process of `npm run test:unit` (scripts/test-unit.js):
// a unit test starts no child process and opens no real socket (in-memory
// pairs only), so that the tier runs fast and anywhere. Either throws here,
// naming the call, rather than quietly making a test slow or dependent on
// the machine. A test that needs them belongs in the integration tier: take
// it out of test/unit-tests.txt.

import childProcess from "node:child_process";
import net from "node:net";
import { syncBuiltinESMExports } from "node:module";

function refuse(what: string): () => never {
  return () => {
    throw new Error(
      `${what} in a unit test: a test that needs processes or sockets is an integration test (remove it from test/unit-tests.txt)`,
    );
  };
}

const processCalls = ["spawn", "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork"];
for (const name of processCalls) {
  Object.defineProperty(childProcess, name, { value: refuse(`child_process.${name}()`) });
}
net.connect = refuse("net.connect()");
net.createConnection = refuse("net.createConnection()");
net.Server.prototype.listen = refuse("net.Server.listen()");
net.Socket.prototype.connect = refuse("net.Socket.connect()");
// Makes `import { spawn } from "node:child_process"` see the refusals too.
syncBuiltinESMExports();
