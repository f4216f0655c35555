// Child of the auth benchmark: slaves connecting and authenticating to a
// master, many in flight, from their own process (as real slaves are on
// their own hosts). Prints {"seconds", "handshakes"} when done.
//
// Usage: node auth-clients.js JSON   with {port, count, inFlight, auth, pin?}
//
// In realm-key mode `auth` is {mode: "realm-key", realmKeyFile, keyDir}: each
// slave-N gets its own key file in keyDir, written before the clock starts
// (as `abs keygen --slave` would), and reads it at each connection, as a
// slave daemon does.

import path from "node:path";
import { type SlaveAuthOptions, connectToMaster } from "../src/auth/link-client.js";
import { loadRealmKey } from "../src/auth/realm-key.js";
import { writeSlaveKey } from "../src/auth/slave-key.js";

export type ClientAuth =
  | { mode: "realm-key"; realmKeyFile: string; keyDir: string }
  | Extract<SlaveAuthOptions, { mode: "kerberos" }>;

interface Args {
  port: number;
  count: number;
  inFlight: number;
  auth: ClientAuth;
  pin?: string;
}

const args = JSON.parse(process.argv[2] ?? "{}") as Args;
const slaveName = (i: number): string => `slave-${i}`;
const authOf = (name: string): SlaveAuthOptions =>
  args.auth.mode === "realm-key"
    ? { mode: "realm-key", keyFile: path.join(args.auth.keyDir, `${name}.key`) }
    : args.auth;
if (args.auth.mode === "realm-key") {
  const realmKey = await loadRealmKey(args.auth.realmKeyFile);
  for (let i = -1; i < args.count; i++) {
    const name = slaveName(i);
    await writeSlaveKey(realmKey, name, path.join(args.auth.keyDir, `${name}.key`));
  }
}
let next = 0;
const connect = async (i: number): Promise<void> => {
  const conn = await connectToMaster({
    host: "127.0.0.1",
    port: args.port,
    name: slaveName(i),
    auth: authOf(slaveName(i)),
    ...(args.pin === undefined ? {} : { tls: { pin: args.pin } }),
  });
  conn.close();
};
const lane = async (): Promise<void> => {
  while (next < args.count) await connect(next++);
};
// Warm-up, then the measured run.
await Promise.all(Array.from({ length: args.inFlight }, () => connect(-1)));
const start = process.hrtime.bigint();
await Promise.all(Array.from({ length: args.inFlight }, lane));
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
process.stdout.write(JSON.stringify({ seconds, handshakes: args.count }) + "\n");
