/**
 * A TCP forwarder whose outgoing connections leave from another loopback
 * address (127.0.0.2, …): a client in a test that must reach the hub from a
 * source of its own (per-source limits count 127.0.0.1 for everyone else).
 * Loopback only.
 */
import net from "node:net";

export type Forwarder = { address: string; close: () => Promise<void> };

export async function forwardFrom(
  localAddress: string,
  target: { host: string; port: number },
): Promise<Forwarder> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: target.host, port: target.port, localAddress });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      s.on("close", () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
