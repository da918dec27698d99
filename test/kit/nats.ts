/**
 * A real nats-server on a random loopback port, for tests and the demo.
 */
import { spawn } from "node:child_process";
import { type Proc, watchProcess } from "./proc.ts";

export type NatsServer = { url: string; proc: Proc; stop: () => Promise<void> };

export async function startNatsServer(): Promise<NatsServer> {
  const proc = watchProcess(
    spawn("nats-server", ["-a", "127.0.0.1", "-p", "-1", "-m", "0"], { stdio: ["ignore", "pipe", "pipe"] }),
  );
  const m = await proc.waitFor(/Listening for client connections on [^:\s]+:(\d+)/, 15_000);
  return { url: `nats://127.0.0.1:${m[1]}`, proc, stop: async () => void (await proc.stop()) };
}
