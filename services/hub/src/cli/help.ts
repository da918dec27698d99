/** `switchyard-hub --help`: every command's flags in one text (the limit flags from their table). */
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

const HELP = `switchyard-hub — aggregates Services from clusters and pushes NAT assignments to agents

Usage:
  switchyard-hub serve [flags]              run the hub
  switchyard-hub token create [flags]       create a join token and print it
  switchyard-hub token list [flags]         list join tokens with expiry and the nodes they admitted
  switchyard-hub token revoke ID            revoke a join token (its agents are cut off)
  switchyard-hub agents [flags]             connected agents: auth, acked version, pending, lag, NACKs
  switchyard-hub clusters [flags]           clusters: source, view, health, objects
  switchyard-hub policies [flags]           policies of every cluster: frontend, state (Accepted, or why
                                            not: Conflict with the winner, InvalidSpec, ServiceNotFound)
  switchyard-hub agent revoke CLUSTER/NODE  revoke an agent's credentials and cut its stream
  switchyard-hub signing-key rotate         new key for agent credentials; connected agents get new
                                            ones within a second; the old key's credentials work until
                                            they expire (--credential-ttl, default 24h), or not at all
                                            with --retire-now (a leaked key: its agents must rejoin)

The other commands talk to the running hub through its admin socket
(STATE-DIR/admin.sock, mode 0600); token and agent commands also work with
no hub running, on the state directly.

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
  --io-threads N          threads that serve the agents' connections (TLS, HTTP/2), sharing the port;
                          0 = on the main thread (default: 2 with 2 or more CPUs, else 0)
  --metrics-listen H:P    serve Prometheus metrics on http://H:P/metrics (cluster health, agents, process)
  --api-timeout DURATION  an API server that does not answer a probe (GET /version, sent this often)
                          within this is unreachable, as when a partition drops packets (default 10s)
  --stale-grace DURATION  how long an unreachable cluster's last known backends stay with other
                          clusters' agents before they are withdrawn, counted from when it was last seen
                          (across restarts; default 60s; its own agents keep them)
  --print-join-token      create a join token for the first cluster and print it on stdout
  --log-level LEVEL       pino level (default info; env SWITCHYARD_LOG_LEVEL)

serve flags for the agent port's limits (node:http2; each has a safe default):
${LIMIT_HELP}

token, agent, agents, clusters, policies flags:
  --state-dir DIR         as above
  --state-nats URL        as above (only when no hub runs on --state-dir)
  --json                  agents, clusters, policies: JSON instead of a table
  --cluster NAME          the cluster the token admits agents to (create)
  --ttl DURATION          e.g. 24h, 7d (create; default 24h, 0 = never expires)
  --description TEXT      free text (create)
  --node-pattern GLOB     node names the token admits, e.g. edge-* (create; default *)
  --max-nodes N           how many distinct nodes may join with it (create; default 0 = 1000; at most
                          1000000): each new node name is a write to the shared state
  --signing-key-kek-file FILE  as for serve (signing-key rotate with no hub running)
  --reach pod|nodeport    how its agents reach backends (create): pod = pod IPs (cluster nodes,
                          hosts on a routable pod network; default); nodeport = the pod's node
                          IP + the Service's NodePort (KubeEdge edge nodes without CNI, other hosts)
`;

/** Prints the help text (`--help`, `-h`, `help`, or no command). */
export function printHelp(): void {
  process.stdout.write(HELP);
}
