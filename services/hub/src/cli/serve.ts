/**
 * `switchyard-hub serve`: its help (every flag; the limit flags from their
 * table); the composition root itself is serve/serve.ts.
 */
import type { Command } from "@switchyard/lib/cli";
import { serve } from "../serve/serve.ts";
import { DEFAULT_LIMITS, LIMIT_SPECS } from "../transport/limits.ts";

/** the agent port's limit flags, from their table (transport/limits.ts) */
const LIMIT_HELP = LIMIT_SPECS.map((x) => {
  const d = DEFAULT_LIMITS[x.key];
  const def = x.kind === "duration" ? `${d / 1000}s` : x.kind === "bytes" ? `${d >> 20}MiB` : String(d);
  const arg = { count: "N", duration: "DURATION", bytes: "BYTES" }[x.kind];
  const lines = [""];
  for (const w of `${x.help}; default ${def} (config file: limits.${x.file})`.split(" ")) {
    if (lines.at(-1)!.length + w.length > 76) lines.push("");
    lines[lines.length - 1] += `${lines.at(-1) ? " " : ""}${w}`;
  }
  return [`  --${x.flag} ${arg}`, ...lines.map((l) => `${" ".repeat(26)}${l}`)].join("\n");
}).join("\n");

const HELP = `switchyard-hub serve — watch the clusters and serve NAT assignments to agents

Usage:
  switchyard-hub serve --cluster NAME=SOURCE [flags]
  switchyard-hub serve --config FILE [flags]

serve flags:
  --config FILE           YAML config (clusters with their views, listen, metricsListen, staleGrace,
                          stateDir, debounceMs, externalTrafficStrict); watched: clusters, views and
                          externalTrafficStrict change live, a bad edit is reported and the previous
                          config stays (also reloaded on SIGHUP)
  --cluster NAME=SOURCE   a cluster to watch (repeatable; adds to the config file's). SOURCE is one of
                            dir:PATH         a directory of Kubernetes YAML, watched live
                            kubeconfig:PATH  a cluster's API server (K8s, K3s)
                            in-cluster       the cluster the hub runs in
  --view HOME=C1[,C2]     agents of cluster HOME also receive the Services of C1, C2 (repeatable);
                          a ClusterIP in several clusters of a view goes to HOME's Service, else
                          to the first by name, and the hub logs both owners
  --listen HOST:PORT      gRPC listen address (default 127.0.0.1:7443)
  --state-dir DIR         join tokens, agent credentials' signing key, each cluster's last known state,
                          the admin socket (default /var/lib/switchyard-hub)
  --state-nats URL        keep the shared state (tokens, revocations, signing key, clusters' last known
                          state) in NATS JetStream KV instead of a file, so hub replicas share it (repeatable)
  --state-nats-creds FILE the NATS user for it when that NATS is in operator mode (\`nats init
                          --state-creds-out FILE\`: one NATS for state and events; docs/hub-replicas.md)
  --state-nats-tls-ca FILE  the CA that signs the state NATS's certificate (TLS to it)
  --state-nats-tls-server-name NAME  the name that certificate carries, when not the URL's host
  --credential-ttl DUR    lifetime of the per-agent credentials the hub issues (default 24h;
                          a fresh one is sent when a third is left)
  --signing-key-kek-file FILE
                          key-encryption key (32 random bytes, base64 or hex: openssl rand -base64 32)
                          that seals the credential signing key in the shared state; the same on every
                          replica; required with --state-nats (or env SWITCHYARD_HUB_KEK); without
                          either, a state file's hub keeps one in STATE-DIR/signing-key.kek
  --tls-cert FILE         server certificate (PEM); with --tls-key enables TLS
  --tls-key FILE          server private key (PEM)
  --tls-ca FILE           the CA that signed --tls-cert: served in the chain, and its hash printed,
                          so agents can join with --hub-ca-hash instead of a copy of the CA
  --debounce-ms N         coalescing window for changes (default 20)
  --events-nats URL       the NATS the agents publish NAT events to (repeatable; config events.nats): the
                          hub keeps their history there, a JetStream stream SWITCHYARD_EVENTS over
                          switchyard.nat.> limited by events.historyMaxAge / historyMaxBytes (default 1h,
                          1GiB; created or updated at start and on reload); after \`nats init\` the hub
                          connects as its own user of the account
  --nats-tls-ca FILE      the CA that signs that NATS server's certificate (config events.tlsCa)
  --nats-tls-server-name NAME
                          the name in that certificate, when it is not the URL's host
  --io-threads N          threads that serve the agents' connections (TLS, HTTP/2), sharing the port;
                          0 = on the main thread (default: 2 with 2 or more CPUs, else 0)
  --metrics-listen H:P    serve Prometheus metrics on http://H:P/metrics (cluster health, agents, process),
                          /healthz (the process answers) and /readyz (every cluster listed, restored from
                          its last known state, or failed to start; else 503)
  --api-timeout DURATION  an API server that does not answer a probe (GET /version, sent this often)
                          within this is unreachable, as when a partition drops packets (default 10s)
  --stale-grace DURATION  how long an unreachable cluster's last known backends stay with other
                          clusters' agents before they are withdrawn, counted from when it was last seen
                          (across restarts; default 60s; its own agents keep them)
  --print-join-token      create a join token for the first cluster and print it on stderr (with the
                          other human lines; stdout carries the JSON log)
  --log-level LEVEL       pino level (default info; env SWITCHYARD_LOG_LEVEL)

serve flags for the agent port's limits (node:http2; each has a safe default):
${LIMIT_HELP}
`;

export const serveCommand: Command = {
  name: "serve",
  summary: [["serve [flags]", "run the hub"]],
  help: HELP,
  run: serve,
};
