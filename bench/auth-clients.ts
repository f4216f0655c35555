// Child of the auth benchmark: slaves connecting and authenticating to a
// master, many in flight, from their own process (as real slaves are on
// their own hosts). Prints {"seconds", "handshakes"} when done.
//
// Usage: node auth-clients.js JSON   with {port, count, inFlight, auth, pin?}

import { type SlaveAuthOptions, connectToMaster } from "../src/auth/link-client.js";

interface Args {
  port: number;
  count: number;
  inFlight: number;
  auth: SlaveAuthOptions;
  pin?: string;
}

const args = JSON.parse(process.argv[2] ?? "{}") as Args;
let next = 0;
const connect = async (i: number): Promise<void> => {
  const conn = await connectToMaster({
    host: "127.0.0.1",
    port: args.port,
    name: `slave-${i}`,
    auth: args.auth,
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
