/** What every benchmark reports the same way. */
import { createHash } from "node:crypto";
import net from "node:net";
import os from "node:os";

/** Nearest-rank percentile: the smallest value with at least p % of the values at or below it (p99 of 100 samples is the 99th, not the worst). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) throw new Error("percentile of no samples");
  return [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil((xs.length * p) / 100) - 1)]!;
}

/** The machine a result was measured on: cores, CPU model, memory, kernel, architecture. */
export function machine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, kernel ${os.release()}, ${os.arch()}`;
}

/**
 * This machine's speed now (a shared VM: it drifts by ±30 % within an hour,
 * mostly in the kernel's network path), so that a result can carry it from
 * the start and the end of its run and be compared with others: SHA-256 over
 * 64 MB (plain CPU), and 20,000 round trips of 100 bytes over loopback TCP
 * (syscalls, the TCP stack, wake-ups: what the hub's fan-out is made of);
 * best of 3 each.
 */
export async function speedProbe(): Promise<{ cpuMs: number; loopbackMs: number }> {
  const best = async (fn: () => Promise<void> | void) => {
    let ms = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await fn();
      ms = Math.min(ms, performance.now() - t0);
    }
    return Math.round(ms * 10) / 10;
  };
  const data = Buffer.alloc(64 * 1024 * 1024, 7);
  const cpuMs = await best(() => {
    createHash("sha256").update(data).digest();
  });
  const server = net.createServer((s) => s.on("data", (d) => s.write(d)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, "127.0.0.1");
  client.setNoDelay(true);
  await new Promise<void>((r) => client.once("connect", r));
  const msg = Buffer.alloc(100, 1);
  const loopbackMs = await best(
    () =>
      new Promise<void>((done) => {
        let left = 20_000;
        let got = 0;
        const onData = (d: Buffer) => {
          got += d.length;
          while (got >= msg.length) {
            got -= msg.length;
            if (--left === 0) {
              client.off("data", onData);
              return done();
            }
            client.write(msg);
          }
        };
        client.on("data", onData);
        client.write(msg);
      }),
  );
  client.destroy();
  server.close();
  return { cpuMs, loopbackMs };
}
