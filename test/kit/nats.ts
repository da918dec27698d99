/**
 * A real nats-server on a random loopback port, for tests and the demo.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type Proc, watchProcess } from "./proc.ts";

export type NatsServer = { url: string; proc: Proc; stop: () => Promise<void> };

/**
 * With `jetstream`, JetStream is on, its store in a temporary directory
 * removed at stop. `config` is more nats-server configuration (e.g. the
 * operator-mode fragment `switchyard-hub nats init` writes); `tls` serves
 * TLS only (the url is then tls://).
 */
export async function startNatsServer(
  opts: { jetstream?: boolean; config?: string; tls?: { cert: string; key: string } } = {},
): Promise<NatsServer> {
  const store = opts.jetstream ? fs.mkdtempSync(path.join(os.tmpdir(), "sy-nats-js-")) : undefined;
  let confDir: string | undefined;
  const args = ["-a", "127.0.0.1", "-p", "-1", "-m", "0", ...(store ? ["-js", "-sd", store] : [])];
  if (opts.config !== undefined || opts.tls) {
    confDir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-nats-conf-"));
    const tls = opts.tls ? `tls {\n  cert_file: "${opts.tls.cert}"\n  key_file: "${opts.tls.key}"\n}\n` : "";
    fs.writeFileSync(path.join(confDir, "nats.conf"), `${opts.config ?? ""}\n${tls}`);
    args.push("-c", path.join(confDir, "nats.conf"));
  }
  const proc = watchProcess(spawn("nats-server", args, { stdio: ["ignore", "pipe", "pipe"] }));
  const cleanup = () => {
    if (store) fs.rmSync(store, { recursive: true, force: true });
    if (confDir) fs.rmSync(confDir, { recursive: true, force: true });
  };
  let m: RegExpMatchArray;
  try {
    m = await proc.waitFor(/Listening for client connections on [^:\s]+:(\d+)/, 15_000);
  } catch (e) {
    await proc.stop();
    cleanup();
    throw e;
  }
  return {
    url: `${opts.tls ? "tls" : "nats"}://127.0.0.1:${m[1]}`,
    proc,
    stop: async () => {
      await proc.stop();
      cleanup();
    },
  };
}
