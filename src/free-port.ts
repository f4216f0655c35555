// A free TCP port on 127.0.0.1, for a daemon whose address must be known
// before it starts and stay the same across restarts (port 0 would give it
// another one each time): bind port 0, read it, close.

import net from "node:net";

export async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
