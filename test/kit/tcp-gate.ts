/**
 * A loopback TCP port a test opens and shuts: while open it forwards to a
 * target (which may change between openings: a restarted server on a new
 * port); while shut nothing listens (connects are refused) and the
 * connections it carried are cut. For a client that must lose a server and
 * find it again at the same address, at moments the test decides.
 */
import net from "node:net";

export class TcpGate {
  readonly port: number;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  private constructor(port: number) {
    this.port = port;
  }

  /** A shut gate on a free loopback port. */
  static async create(): Promise<TcpGate> {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    return new TcpGate(port);
  }

  get isOpen(): boolean {
    return this.server !== undefined;
  }

  /** Listens again on the same port, forwarding to `target`. */
  async open(target: { host: string; port: number }): Promise<void> {
    if (this.server) throw new Error("gate already open");
    const server = net.createServer((client) => {
      const upstream = net.connect({ host: target.host, port: target.port });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
        s.on("close", () => {
          this.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", resolve);
    });
    this.server = server;
  }

  /** Stops listening and cuts every connection it carried. */
  async shut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
