/**
 * A real nats-server on a random loopback port, for tests and the demo.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type Proc, watchProcess } from "./proc.ts";

export type NatsServer = { url: string; proc: Proc; stop: () => Promise<void> };

/** With `jetstream`, JetStream is on, its store in a temporary directory removed at stop. */
export async function startNatsServer(opts: { jetstream?: boolean } = {}): Promise<NatsServer> {
  const store = opts.jetstream ? fs.mkdtempSync(path.join(os.tmpdir(), "sy-nats-js-")) : undefined;
  const args = ["-a", "127.0.0.1", "-p", "-1", "-m", "0", ...(store ? ["-js", "-sd", store] : [])];
  const proc = watchProcess(spawn("nats-server", args, { stdio: ["ignore", "pipe", "pipe"] }));
  const m = await proc.waitFor(/Listening for client connections on [^:\s]+:(\d+)/, 15_000);
  return {
    url: `nats://127.0.0.1:${m[1]}`,
    proc,
    stop: async () => {
      await proc.stop();
      if (store) fs.rmSync(store, { recursive: true, force: true });
    },
  };
}
