/**
 * The metrics port of the hub and the agent: `GET /metrics` (Prometheus
 * text), `GET /healthz` (the process answers: 200) and `GET /readyz` (200
 * when the process can do its job, else 503 with the reason), as Kubernetes
 * probes and load balancers expect them. node:http; no policy here.
 */
import http from "node:http";
import { err, ok, type Result } from "./errors.ts";

/** "HOST:PORT" (an IPv6 host in brackets) → its parts; the message names the flag's expected form. */
export function parseListen(v: string): Result<{ host: string; port: number }> {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(v);
  if (!m) return err(`--listen "${v}" must be HOST:PORT (e.g. 127.0.0.1:7443 or [::]:7443)`);
  const port = Number(m[2]);
  if (port > 65535) return err(`--listen port ${port} is out of range`);
  return ok({ host: m[1]!, port });
}

export type Readiness = { ready: true } | { ready: false; reason: string };

export type MetricsEndpoints = {
  /** the Prometheus text and its content type */
  metrics: () => Promise<{ contentType: string; text: string }>;
  ready: () => Readiness;
};

/** Listens on host:port (port 0: any); resolves once bound. */
export async function serveMetricsAndHealth(
  endpoints: MetricsEndpoints,
  host: string,
  port: number,
): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? "").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      return;
    }
    if (url === "/readyz") {
      let r: Readiness;
      try {
        r = endpoints.ready();
      } catch (e) {
        r = { ready: false, reason: `readiness check failed: ${(e as Error).message}` };
      }
      res
        .writeHead(r.ready ? 200 : 503, { "content-type": "text/plain" })
        .end(r.ready ? "ready\n" : `not ready: ${r.reason}\n`);
      return;
    }
    if (url !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("try GET /metrics, /healthz or /readyz\n");
      return;
    }
    endpoints.metrics().then(
      (m) => res.writeHead(200, { "content-type": m.contentType }).end(m.text),
      (e: unknown) => res.writeHead(500).end(String(e)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host.replace(/^\[|\]$/g, ""), () => resolve());
  });
  return server;
}
