// Child of the auth benchmark: a realm-key master link server alone in its
// process, so that its RSS with many idle connections is measured apart from
// the clients. Prints {"port"} once listening; answers "rss" lines on stdin
// with {"rss", "connections"}.

import { createInterface } from "node:readline";
import { LinkServer } from "../src/auth/link-server.js";
import { loadRealmKey } from "../src/auth/realm-key.js";
import { loadOrCreateMasterTls } from "../src/auth/tls.js";
import { silentLogger } from "../src/log.js";

const [dir, keyFile] = process.argv.slice(2);
if (dir === undefined || keyFile === undefined) throw new Error("usage: auth-master DIR KEYFILE");
const tls = await loadOrCreateMasterTls({ stateDir: dir, hostName: "127.0.0.1" });
const server = await LinkServer.listen({
  host: "127.0.0.1",
  port: 0,
  tls,
  masterName: "bench-master",
  realmKey: await loadRealmKey(keyFile),
  logger: silentLogger,
});
server.on("connection", (conn) => conn.onMessage(() => undefined));
process.stdout.write(JSON.stringify({ port: server.port }) + "\n");
for await (const line of createInterface({ input: process.stdin })) {
  if (line === "rss") {
    process.stdout.write(
      JSON.stringify({ rss: process.memoryUsage().rss, connections: server.openConnections }) +
        "\n",
    );
  }
}
await server.close();
