#!/usr/bin/env node
/**
 * switchyard-hub: watches clusters and serves NAT assignments to agents.
 *
 *   switchyard-hub serve --cluster NAME=dir:PATH|kubeconfig:PATH|in-cluster ...
 *   switchyard-hub token create|list|revoke ...
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { computeCaHash } from "@switchyard/lib/ca-pin";
import { parseDuration } from "@switchyard/lib/duration";
import { err, ok, type Result } from "@switchyard/lib/errors";
import { createRootLogger } from "@switchyard/lib/log";
import type {
  CreateTokenResponse,
  ListAgentsResponse,
  ListClustersResponse,
  ListTokensResponse,
  RevokeAgentResponse,
  RevokeTokenResponse,
  RotateSigningKeyResponse,
  TokenInfo,
} from "@switchyard/proto/admin";
import { adminClient, adminSocketPath, call, serveAdmin, tokenInfo } from "./admin/admin-server.ts";
import { addIntrospection } from "./admin/introspection.ts";
import { createHubMetrics, serveMetrics } from "./admin/metrics.ts";
import { CredentialAuthority } from "./auth/credentials.ts";
import { KEK_ENV, type Kek, loadKek } from "./auth/signing-key.ts";
import { checkTokenScope, TokenStore } from "./auth/tokens.ts";
import {
  type ClusterConfig,
  checkIoThreads,
  type HubFileConfig,
  parseClusterFlag,
  parseFront,
  parseHubConfig,
  parseListen,
  parseViewFlag,
  resolveLimits,
} from "./config.ts";
import { World } from "./model/world.ts";
import { ClusterHealthTracker } from "./sources/health.ts";
import { ClusterManager } from "./sources/manager.ts";
import { FileState, type HubState, KvState } from "./state/hub-state.ts";
import { LastKnownStore, LastKnownWriter } from "./state/last-known.ts";
import { serveFront } from "./transport/front.ts";
import { DEFAULT_LIMITS, type FrontLimits, LIMIT_SPECS } from "./transport/limits.ts";
import type { FrontKind } from "./transport/server-stream.ts";
import { tuneGcForStreaming } from "./xds/gc-tuning.ts";
import { AssignmentServer } from "./xds/grpc-server.ts";
import { SnapshotCache } from "./xds/snapshots.ts";

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
  --front http2|own       the agent port's HTTP/2 stack: http2 = node:http2 (nghttp2) with the limits
                          below; own = the hub's own framing (default own, until measured side by side)
  --metrics-listen H:P    serve Prometheus metrics on http://H:P/metrics (cluster health, agents, process)
  --api-timeout DURATION  an API server that does not answer a probe (GET /version, sent this often)
                          within this is unreachable, as when a partition drops packets (default 10s)
  --stale-grace DURATION  how long an unreachable cluster's last known backends stay with other
                          clusters' agents before they are withdrawn, counted from when it was last seen
                          (across restarts; default 60s; its own agents keep them)
  --print-join-token      create a join token for the first cluster and print it on stdout
  --log-level LEVEL       pino level (default info; env SWITCHYARD_LOG_LEVEL)

serve flags for the agent port's limits (each has a safe default; --front own applies only the
streams per connection and the message deadline):
${LIMIT_HELP}

token, agent, agents, clusters flags:
  --state-dir DIR         as above
  --state-nats URL        as above (only when no hub runs on --state-dir)
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

function fail(msg: string): never {
  process.stderr.write(`switchyard-hub: ${msg}\n`);
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") {
    process.stdout.write(HELP);
    return;
  }
  if (cmd === "token") return tokenCommand(rest);
  if (cmd === "agent") return agentCommand(rest);
  if (cmd === "signing-key") return signingKeyCommand(rest);
  if (cmd === "agents" || cmd === "clusters") return statusCommand(cmd, rest);
  if (cmd === "serve") return serve(rest);
  fail(`unknown command "${cmd}"; see --help`);
}

const STATE_FLAGS = {
  "state-dir": { type: "string" as const, default: "/var/lib/switchyard-hub" },
  "state-nats": { type: "string" as const, multiple: true as const, default: [] as string[] },
};

/** The shared state: JetStream KV when NATS is given, else the file in the state dir. */
async function openState(stateDir: string, nats: string[]): Promise<HubState> {
  if (nats.length === 0) return new FileState(stateDir);
  return KvState.open(nats).catch((e: unknown) =>
    fail(`--state-nats ${nats.join(",")}: cannot open the JetStream KV bucket: ${(e as Error).message}`),
  );
}

/** The running hub's admin API, or undefined when none answers on the state dir's socket. */
async function runningHub(stateDir: string) {
  const c = adminClient(stateDir);
  if (!c) return undefined;
  const ok = await new Promise<boolean>((resolve) =>
    c.waitForReady(Date.now() + 2000, (e) => resolve(e === undefined || e === null)),
  );
  if (ok) return c;
  c.close();
  return undefined;
}

type AdminClient = NonNullable<Awaited<ReturnType<typeof runningHub>>>;

/**
 * Runs a CLI command through the running hub's admin API (streams are cut
 * at once), else directly on the shared state; errors end the CLI with
 * their reason; both are closed afterwards.
 */
async function viaHubOrState(
  flags: { "state-dir": string; "state-nats": string[] },
  run: (on: { hub: AdminClient; state?: undefined } | { hub?: undefined; state: HubState }) => Promise<void>,
): Promise<void> {
  const hub = await runningHub(flags["state-dir"]);
  const state = hub ? undefined : await openState(flags["state-dir"], flags["state-nats"]);
  try {
    await run(hub ? { hub } : { state: state! });
  } catch (e) {
    fail((e as { details?: string }).details ?? (e as Error).message);
  } finally {
    hub?.close();
    await state?.close();
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return `${rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

function printTokens(tokens: TokenInfo[]): void {
  const rows = [["ID", "CLUSTER", "REACH", "EXPIRES", "NODES", "DESCRIPTION"]];
  for (const t of tokens)
    rows.push([
      t.id,
      t.cluster,
      t.reach,
      t.expiresAt || "never",
      `${t.nodes.length}${t.maxNodes ? `/${t.maxNodes}` : ""} ${t.nodePattern !== "*" ? `(${t.nodePattern})` : ""}`.trim(),
      t.description,
    ]);
  process.stdout.write(table(rows));
}

async function tokenCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...STATE_FLAGS,
      cluster: { type: "string" },
      ttl: { type: "string", default: "24h" },
      description: { type: "string", default: "" },
      "node-pattern": { type: "string", default: "*" },
      "max-nodes": { type: "string", default: "0" },
      reach: { type: "string", default: "pod" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void process.stdout.write(HELP);
  const [sub, arg] = positionals;
  if (sub !== "create" && sub !== "list" && sub !== "revoke")
    fail(`unknown token command "${sub ?? ""}": use create, list or revoke`);
  await viaHubOrState(values, async ({ hub, state }) => {
    const store = state ? new TokenStore(state) : undefined;
    if (sub === "create") {
      if (!values.cluster) fail("token create needs --cluster NAME (the cluster the token admits agents to)");
      let ttlMs = 0;
      if (values.ttl !== "0") {
        const d = parseDuration(values.ttl);
        if (!d.ok) fail(`--ttl: ${d.error}`);
        ttlMs = d.value;
      }
      if (!/^\d+$/.test(values["max-nodes"]))
        fail(`--max-nodes "${values["max-nodes"]}" must be a whole number (0 = the default, 1000)`);
      const maxNodes = Number(values["max-nodes"]);
      const scopeError = checkTokenScope({
        nodePattern: values["node-pattern"],
        reach: values.reach,
        maxNodes,
      });
      if (scopeError) fail(scopeError);
      const req = {
        cluster: values.cluster,
        ttlMs,
        description: values.description,
        nodePattern: values["node-pattern"],
        maxNodes,
        reach: values.reach,
      };
      const token = hub
        ? (await call<CreateTokenResponse>((cb) => hub.createToken(req, cb))).token
        : (
            await store!.create(values.cluster, {
              ...(ttlMs ? { ttlMs } : {}),
              description: req.description,
              nodePattern: req.nodePattern,
              maxNodes,
              reach: values.reach === "nodeport" ? "nodeport" : "pod",
            })
          ).token;
      process.stdout.write(`${token}\n`);
      return;
    }
    if (sub === "list") {
      printTokens(
        hub
          ? (await call<ListTokensResponse>((cb) => hub.listTokens({}, cb))).tokens
          : store!.list().map(tokenInfo),
      );
      return;
    }
    if (!arg) fail("token revoke needs the token ID");
    if (hub) {
      const r = await call<RevokeTokenResponse>((cb) => hub.revokeToken({ id: arg }, cb));
      process.stdout.write(`revoked ${arg}; ${r.agentsCutOff} agent stream(s) cut off\n`);
    } else {
      if (!(await store!.revoke(arg))) fail(`no token with id ${arg}`);
      process.stdout.write(`revoked ${arg}\n`);
    }
  });
}

async function agentCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...STATE_FLAGS, help: { type: "boolean", short: "h" } },
  });
  if (values.help) return void process.stdout.write(HELP);
  const [sub, who] = positionals;
  if (sub !== "revoke") fail(`unknown agent command "${sub ?? ""}": use revoke CLUSTER/NODE`);
  const m = /^([a-z0-9-]+)\/([a-z0-9.-]+)$/.exec(who ?? "");
  if (!m) fail(`agent revoke needs CLUSTER/NODE, e.g. prod/edge-7 (got "${who ?? ""}")`);
  const [cluster, node] = [m[1]!, m[2]!];
  await viaHubOrState(values, async ({ hub, state }) => {
    if (hub) {
      const r = await call<RevokeAgentResponse>((cb) => hub.revokeAgent({ cluster, node }, cb));
      process.stdout.write(`revoked ${cluster}/${node}; ${r.agentsCutOff} stream(s) cut off\n`);
      return;
    }
    await state.put(`revoked/${cluster}/${node}`, { at: new Date().toISOString() });
    process.stdout.write(
      `revoked ${cluster}/${node} (no hub running here; hubs cut it off within a second)\n`,
    );
  });
}

/** The KEK that seals the signing key (flag, env, or the state dir's own); a bad one ends the process. */
function kekOrFail(
  values: { "signing-key-kek-file"?: string | undefined; "state-nats": string[] },
  stateDir: string,
): { kek: Kek; created: boolean; notes: string[] } {
  const k = loadKek({
    file: values["signing-key-kek-file"],
    env: process.env[KEK_ENV],
    stateDir,
    shared: values["state-nats"].length > 0,
  });
  if (!k.ok) fail(k.error);
  return k.value;
}

async function signingKeyCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...STATE_FLAGS,
      "signing-key-kek-file": { type: "string" },
      "retire-now": { type: "boolean", default: false },
      "credential-ttl": { type: "string", default: "24h" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void process.stdout.write(HELP);
  if (positionals[0] !== "rotate" || positionals.length !== 1)
    fail(`unknown signing-key command "${positionals.join(" ")}": use rotate [--retire-now]`);
  const ttl = parseDuration(values["credential-ttl"]);
  if (!ttl.ok) fail(`--credential-ttl: ${ttl.error}`);
  const report = (r: { keyId: string; previousKeyId: string; previousValidUntil: string }, extra: string) =>
    process.stdout.write(
      `signing key ${r.keyId} is current; credentials of ${r.previousKeyId} are accepted until ${r.previousValidUntil}${extra}\n`,
    );
  await viaHubOrState(values, async ({ hub, state }) => {
    if (hub) {
      const r = await call<RotateSigningKeyResponse>((cb) =>
        hub.rotateSigningKey({ retireNow: values["retire-now"] }, cb),
      );
      report(r, `; ${r.agentsCutOff} stream(s) cut off, the others get new credentials within a second`);
      return;
    }
    const { kek } = kekOrFail(values, values["state-dir"]);
    const ca = await CredentialAuthority.open(state, ttl.value, kek).catch((e: unknown) =>
      fail((e as Error).message),
    );
    report(
      await ca.rotate({ retireNow: values["retire-now"] }),
      " (no hub running here; hubs follow within a second)",
    );
  });
}

/** `agents` and `clusters`: tables from the running hub. */
async function statusCommand(what: "agents" | "clusters", argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      "state-dir": STATE_FLAGS["state-dir"],
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void process.stdout.write(HELP);
  const hub = await runningHub(values["state-dir"]);
  if (!hub) fail(`no hub is running on --state-dir ${values["state-dir"]} (no admin socket answers there)`);
  try {
    if (what === "agents") {
      const { agents } = await call<ListAgentsResponse>((cb) => hub.listAgents({}, cb));
      if (values.json) return void process.stdout.write(`${JSON.stringify(agents, null, 2)}\n`);
      const rows = [
        ["NODE", "CLUSTER", "AUTH", "PEER", "ACKED", "VIEW", "PENDING", "LAG", "ACKS", "NACKS", "LAST NACK"],
      ];
      for (const a of agents)
        rows.push([
          a.node,
          a.cluster,
          a.auth,
          a.peer,
          a.ackedVersion.slice(0, 12),
          a.viewVersion.slice(0, 12),
          String(a.pendingResources),
          `${a.lagMs}ms`,
          String(a.acks),
          String(a.nacks),
          a.lastNack,
        ]);
      process.stdout.write(table(rows));
    } else {
      const { clusters } = await call<ListClustersResponse>((cb) => hub.listClusters({}, cb));
      if (values.json) return void process.stdout.write(`${JSON.stringify(clusters, null, 2)}\n`);
      const rows = [
        ["NAME", "SOURCE", "IMPORTS", "HEALTH", "SERVICES", "SLICES", "NODES", "REJECTED", "REASON"],
      ];
      for (const c of clusters)
        rows.push([
          c.name,
          c.source,
          c.imports.join(",") || "-",
          c.withdrawn
            ? `withdrawn (since ${c.staleSince})`
            : c.stale
              ? `stale (since ${c.staleSince})`
              : "ok",
          String(c.services),
          String(c.endpointSlices),
          String(c.nodes),
          String(c.rejectedObjects),
          c.reason,
        ]);
      process.stdout.write(table(rows));
    }
  } finally {
    hub.close();
  }
}

/** I/O threads by default: two when the machine has the cores for them (bench:protocol: convergence at 1,000 agents) */
function defaultIoThreads(): number {
  return os.availableParallelism() >= 2 ? 2 : 0;
}

type ServeSettings = {
  clusters: ClusterConfig[];
  imports: Map<string, string[]>;
  listen: string;
  stateDir: string;
  metricsListen: string | undefined;
  staleGraceMs: number;
  apiTimeoutMs: number;
  debounceMs: number;
  ioThreads: number;
  externalTrafficStrict: boolean;
  front: FrontKind;
  limits: FrontLimits;
};

/** Flags over the config file: flag clusters and views add to the file's; other flags win. */
function resolveSettings(
  values: Record<string, string | boolean | string[] | undefined>,
  fileText: string | undefined,
  file: string | undefined,
): Result<ServeSettings> {
  let fromFile: HubFileConfig | undefined;
  if (fileText !== undefined) {
    const r = parseHubConfig(fileText, file);
    if (!r.ok) return r;
    fromFile = r.value;
  }
  const clusters: ClusterConfig[] = [...(fromFile?.clusters ?? [])];
  for (const c of values["cluster"] as string[]) {
    const r = parseClusterFlag(c);
    if (!r.ok) return r;
    if (clusters.some((x) => x.name === r.value.name))
      return err(`cluster ${r.value.name} given twice (--cluster and/or the config file)`);
    clusters.push(r.value);
  }
  if (clusters.length === 0)
    return err("give at least one --cluster NAME=SOURCE or a --config file with clusters");
  const imports = new Map(fromFile?.imports ?? []);
  for (const v of values["view"] as string[]) {
    const r = parseViewFlag(
      v,
      clusters.map((c) => c.name),
    );
    if (!r.ok) return r;
    if (imports.has(r.value.home)) return err(`the view of ${r.value.home} is given twice`);
    imports.set(r.value.home, r.value.imports);
  }
  const pick = (flag: string, fromCfg: string | undefined, def: string) =>
    (values[flag] as string | undefined) ?? fromCfg ?? def;
  const listen = pick("listen", fromFile?.listen, "127.0.0.1:7443");
  const l = parseListen(listen);
  if (!l.ok) return l;
  const metricsListen = (values["metrics-listen"] as string | undefined) ?? fromFile?.metricsListen;
  if (metricsListen !== undefined) {
    const m = parseListen(metricsListen);
    if (!m.ok) return err(`--metrics-listen: ${m.error}`);
  }
  let staleGraceMs = fromFile?.staleGraceMs ?? 60_000;
  if (values["stale-grace"] !== undefined) {
    const d = parseDuration(values["stale-grace"] as string);
    if (!d.ok) return err(`--stale-grace: ${d.error}`);
    staleGraceMs = d.value;
  }
  let apiTimeoutMs = fromFile?.apiTimeoutMs ?? 10_000;
  if (values["api-timeout"] !== undefined) {
    const d = parseDuration(values["api-timeout"] as string);
    if (!d.ok || d.value < 100) return err("--api-timeout: give a duration of at least 100ms");
    apiTimeoutMs = d.value;
  }
  let debounceMs = fromFile?.debounceMs ?? 20;
  if (values["debounce-ms"] !== undefined) {
    debounceMs = Number(values["debounce-ms"]);
    if (!Number.isFinite(debounceMs) || debounceMs < 0)
      return err(`--debounce-ms "${String(values["debounce-ms"])}" is not a number of milliseconds`);
  }
  let ioThreads = fromFile?.ioThreads ?? defaultIoThreads();
  if (values["io-threads"] !== undefined) {
    ioThreads = Number(values["io-threads"]);
    const e = checkIoThreads(/^\d+$/.test(values["io-threads"] as string) ? ioThreads : values["io-threads"]);
    if (e) return err(`--io-threads ${e}`);
  }
  let front = fromFile?.front ?? "own";
  if (values["front"] !== undefined) {
    const f = parseFront(values["front"], "--front");
    if (!f.ok) return f;
    front = f.value;
  }
  const limits = resolveLimits(fromFile?.limits ?? {}, values);
  if (!limits.ok) return limits;
  return ok({
    front,
    limits: limits.value,
    ioThreads,
    clusters,
    imports,
    listen,
    stateDir: pick("state-dir", fromFile?.stateDir, "/var/lib/switchyard-hub"),
    metricsListen,
    staleGraceMs,
    apiTimeoutMs,
    debounceMs,
    externalTrafficStrict: fromFile?.externalTrafficStrict ?? false,
  });
}

async function serve(argv: string[]): Promise<void> {
  tuneGcForStreaming();
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: "string" },
      cluster: { type: "string", multiple: true, default: [] },
      view: { type: "string", multiple: true, default: [] },
      listen: { type: "string" },
      "state-dir": { type: "string" },
      "state-nats": { type: "string", multiple: true, default: [] },
      "credential-ttl": { type: "string", default: "24h" },
      "signing-key-kek-file": { type: "string" },
      "metrics-listen": { type: "string" },
      "stale-grace": { type: "string" },
      "api-timeout": { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "tls-ca": { type: "string" },
      "debounce-ms": { type: "string" },
      "io-threads": { type: "string" },
      front: { type: "string" },
      ...Object.fromEntries(LIMIT_SPECS.map((x) => [x.flag, { type: "string" as const }])),
      "print-join-token": { type: "boolean", default: false },
      "log-level": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void process.stdout.write(HELP);
  const configFile = values.config;
  const readConfig = (): string | undefined => {
    if (!configFile) return undefined;
    try {
      return fs.readFileSync(configFile, "utf8");
    } catch (e) {
      return fail(`--config ${configFile}: ${(e as Error).message}`);
    }
  };
  const settings = resolveSettings(values, readConfig(), configFile);
  if (!settings.ok) fail(settings.error);
  let current = settings.value;
  const listen = parseListen(current.listen);
  if (!listen.ok) fail(listen.error);
  if (Boolean(values["tls-cert"]) !== Boolean(values["tls-key"]))
    fail("--tls-cert and --tls-key go together");

  const log = createRootLogger("switchyard-hub", values["log-level"]);
  const hubId = `hub-${randomBytes(3).toString("hex")}`;
  const world = new World();
  const snapshots = new SnapshotCache(world, current.debounceMs, {
    translate: { externalTrafficStrict: current.externalTrafficStrict },
  });
  const credentialTtl = parseDuration(values["credential-ttl"]);
  if (!credentialTtl.ok) fail(`--credential-ttl: ${credentialTtl.error}`);
  const state = await openState(current.stateDir, values["state-nats"]);
  log.info({ state: state.describe }, "shared state");
  const tokens = new TokenStore(state);
  const sealing = kekOrFail(values, current.stateDir);
  for (const note of sealing.notes) log.warn({ kek: sealing.kek.source }, note);
  if (sealing.created)
    log.warn(
      { kek: sealing.kek.source },
      "made a key-encryption key for the signing key beside the state; keep it elsewhere with --signing-key-kek-file",
    );
  const credentials = await CredentialAuthority.open(state, credentialTtl.value, sealing.kek).catch(
    (e: unknown) => fail((e as Error).message),
  );
  if (credentials.opened === "sealed")
    log.warn(
      { kek: sealing.kek.source, key: credentials.keyId },
      "the signing key was stored in clear; it is sealed now (hubs of older versions on this state can no longer read it)",
    );
  const tracker = new ClusterHealthTracker(world, current.staleGraceMs, log.child({ component: "health" }));
  // each cluster's last known state, shared like the tokens: a restart or a fresh replica starts from it
  const lastKnown = new LastKnownStore(state);
  const clusters = new ClusterManager(world, tracker, log, current.apiTimeoutMs, lastKnown);
  const lastKnownWriter = new LastKnownWriter(world, lastKnown, log.child({ component: "last-known" }));
  snapshots.onHold = (view, waitingFor) => {
    if (waitingFor.length > 0)
      log.warn(
        { component: "assignments", view, waitingFor },
        "view held back: clusters not seen yet; its agents are sent nothing and keep what they hold",
      );
    else log.info({ component: "assignments", view }, "view released: every cluster of it seen");
  };

  snapshots.onRebuild = (view, snap, changed, ms) => {
    const tlog = log.child({ component: "translate", view });
    tlog.info(
      {
        version: snap.version,
        resources: snap.resources.size,
        changed: changed.size,
        ms: Math.round(ms * 100) / 100,
      },
      "view updated",
    );
    for (const name of changed)
      for (const reason of snap.diagnosticsOf(name))
        tlog.info({ object: name, reason }, "service not assigned");
  };

  // health checking and reflection (grpc-js, reached through the front in process); the agents' streams are the front's own
  const server = new grpc.Server({
    // health and reflection requests are a few bytes: a client gets no room to park megabytes per stream
    "grpc.max_receive_message_length": 64 * 1024,
    "grpc.enable_channelz": 0,
  });
  const assignments = new AssignmentServer({
    hubId,
    tokens,
    credentials,
    snapshots,
    viewOf: (cluster, reach) => {
      const imports = current.imports.get(cluster) ?? [];
      return { key: `${cluster}+${imports.join(",")}/${reach}`, clusters: [cluster, ...imports], reach };
    },
    nodeZone: (cluster, node) => world.clusters.get(cluster)?.nodes.get(node)?.zone ?? "",
    log: log.child({ component: "assignments" }),
  });
  assignments.convergence.onConverged = (view, ms, agents) =>
    log.info({ component: "assignments", view, agents, ms: Math.round(ms * 10) / 10 }, "view converged");
  const health = addIntrospection(server);

  const tls = values["tls-cert"]
    ? {
        // with --tls-ca the chain carries the CA, so agents can pin it by hash on first join
        cert: Buffer.concat([
          fs.readFileSync(values["tls-cert"]),
          ...(values["tls-ca"] ? [fs.readFileSync(values["tls-ca"])] : []),
        ]),
        key: fs.readFileSync(values["tls-key"]!),
      }
    : undefined;
  if (!values["tls-cert"])
    log.warn(
      {},
      "serving WITHOUT TLS: join tokens travel in clear text; pass --tls-cert/--tls-key outside loopback",
    );

  await clusters.apply(current.clusters).catch((e: unknown) => fail((e as Error).message));
  const front = await serveFront({
    host: listen.value.host,
    port: listen.value.port,
    tls,
    routes: new Map([assignments.route()]),
    fallback: server,
    maxMessageBytes: 16 * 1024 * 1024,
    ioThreads: current.ioThreads,
    front: current.front,
    limits: current.limits,
    onInternalError: (e) =>
      log.error({ err: e.stack ?? e.message }, "a connection was closed after an internal error"),
  }).catch((e: unknown) => fail(`cannot listen on ${current.listen}: ${(e as Error).message}`));
  const port = front.port;
  log.info(
    { hubId, address: `${listen.value.host}:${port}`, tls: Boolean(values["tls-cert"]) },
    "hub serving",
  );
  let metricsServer: import("node:http").Server | undefined;
  if (current.metricsListen) {
    const m = parseListen(current.metricsListen);
    if (!m.ok) fail(m.error);
    metricsServer = await serveMetrics(
      createHubMetrics({ world, clusters, assignments, snapshots, front }),
      m.value.host,
      m.value.port,
    ).catch((e: unknown) =>
      fail(`cannot serve metrics on ${current.metricsListen}: ${(e as Error).message}`),
    );
    const a = metricsServer.address() as { port: number };
    process.stdout.write(`metrics http://${m.value.host}:${a.port}/metrics\n`);
  }
  const admin = await serveAdmin(
    {
      hubId,
      world,
      clusters,
      clusterConfigs: () => current,
      snapshots,
      tokens,
      credentials,
      assignments,
    },
    current.stateDir,
  ).catch((e: unknown) =>
    fail(`cannot serve the admin socket in ${current.stateDir}: ${(e as Error).message}`),
  );
  const adminIno = fs.statSync(adminSocketPath(current.stateDir)).ino;
  if (values["print-join-token"]) {
    const { token } = await tokens.create(current.clusters[0]!.name, {
      ttlMs: 86_400_000,
      description: "printed at start",
    });
    process.stdout.write(`join token for cluster ${current.clusters[0]!.name}: ${token}\n`);
  }
  if (values["tls-ca"])
    process.stdout.write(
      `agents join with --hub-ca-hash ${computeCaHash(fs.readFileSync(values["tls-ca"]))}\n`,
    );
  // a line other programs (tests, the demo) can wait for
  process.stdout.write(`listening ${listen.value.host}:${port}\n`);

  // the config file is watched: clusters and views change live; a bad edit is reported and ignored
  let reloading = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(async () => {
      const next = resolveSettings(values, readConfigQuiet(configFile), configFile);
      if (!next.ok) {
        log.error({ file: configFile, reason: next.error }, "config not applied; the previous one stays");
        return;
      }
      const prev = current;
      if (next.value.listen !== prev.listen || next.value.stateDir !== prev.stateDir)
        log.warn({ file: configFile }, "listen and stateDir changes take effect at the next restart");
      if (
        next.value.front !== prev.front ||
        JSON.stringify(next.value.limits) !== JSON.stringify(prev.limits)
      )
        log.warn({ file: configFile }, "front and limits changes take effect at the next restart");
      if (next.value.metricsListen !== prev.metricsListen)
        log.warn({ file: configFile }, "metricsListen changes take effect at the next restart");
      current = { ...next.value, listen: prev.listen, stateDir: prev.stateDir };
      tracker.graceMs = next.value.staleGraceMs;
      clusters.apiTimeoutMs = next.value.apiTimeoutMs;
      if (next.value.externalTrafficStrict !== prev.externalTrafficStrict)
        log.info(
          { externalTrafficStrict: next.value.externalTrafficStrict },
          "traffic policy setting changed",
        );
      snapshots.setTranslateOptions({ externalTrafficStrict: next.value.externalTrafficStrict });
      try {
        const r = await clusters.apply(next.value.clusters);
        if (r.added.length || r.removed.length) log.info(r, "clusters changed");
      } catch (e) {
        log.error({ reason: (e as Error).message }, "some clusters could not start");
      }
      for (const c of new Set([...prev.imports.keys(), ...current.imports.keys()])) {
        if ((prev.imports.get(c) ?? []).join() === (current.imports.get(c) ?? []).join()) continue;
        const n = assignments.cutOffCluster(
          c,
          "the cluster's view changed; reconnect to receive the new one",
        );
        log.info({ cluster: c, imports: current.imports.get(c) ?? [], agents: n }, "view changed");
      }
    });
  };
  let watcher: fs.FSWatcher | undefined;
  if (configFile) {
    let timer: NodeJS.Timeout | undefined;
    // watch the directory: editors replace the file rather than write it in place
    watcher = fs.watch(path.dirname(path.resolve(configFile)), (_ev, f) => {
      if (f !== null && f !== path.basename(configFile)) return;
      clearTimeout(timer);
      timer = setTimeout(reload, 100);
    });
  }
  process.on("SIGHUP", reload);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info({}, "hub stopping");
    watcher?.close();
    health.setStatus("", "NOT_SERVING");
    assignments.close();
    snapshots.close();
    metricsServer?.close();
    admin.forceShutdown();
    // remove the socket only if it is still ours (another hub on this state dir may have replaced it)
    try {
      if (fs.statSync(adminSocketPath(current.stateDir)).ino === adminIno)
        fs.rmSync(adminSocketPath(current.stateDir), { force: true });
    } catch {}
    // healthy clusters were seen until now (a shared state that does not answer does not hold up the stop)
    await Promise.race([
      lastKnownWriter.close().catch(() => {}),
      new Promise((resolve) => setTimeout(resolve, 3000)),
    ]);
    await clusters.stop();
    await state.close();
    await front.close();
    server.forceShutdown();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

function readConfigQuiet(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    // a file being replaced: its next event brings it back
    return "";
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`switchyard-hub: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
