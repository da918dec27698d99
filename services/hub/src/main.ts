#!/usr/bin/env node
/**
 * switchyard-hub: watches clusters and serves NAT assignments to agents.
 *
 *   switchyard-hub serve --cluster NAME=dir:PATH|kubeconfig:PATH|in-cluster ...
 *   switchyard-hub token create|list|revoke ...
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { computeCaHash } from "@switchyard/lib/ca-pin";
import { createRootLogger } from "@switchyard/lib/log";
import { addIntrospection } from "./admin/introspection.ts";
import { parseDuration, TokenStore } from "./auth/tokens.ts";
import { type ClusterConfig, parseClusterFlag, parseListen, parseViewFlag } from "./config.ts";
import { World } from "./model/world.ts";
import { DirectorySource } from "./sources/directory.ts";
import { KubeSource } from "./sources/kube.ts";
import { type ClusterSource, WorldWriter } from "./sources/source.ts";
import { AssignmentServer } from "./xds/grpc-server.ts";
import { SnapshotCache } from "./xds/snapshots.ts";

const HELP = `switchyard-hub — aggregates Services from clusters and pushes NAT assignments to agents

Usage:
  switchyard-hub serve [flags]          run the hub
  switchyard-hub token create [flags]   create a join token and print it
  switchyard-hub token list [flags]     list join tokens with expiry
  switchyard-hub token revoke ID        revoke a join token

serve flags:
  --cluster NAME=SOURCE   a cluster to watch (repeatable). SOURCE is one of
                            dir:PATH         a directory of Kubernetes YAML, watched live
                            kubeconfig:PATH  a cluster's API server (K8s, K3s)
                            in-cluster       the cluster the hub runs in
  --view HOME=C1[,C2]     agents of cluster HOME also receive the Services of C1, C2 (repeatable);
                          a ClusterIP in several clusters of a view goes to HOME's Service, else
                          to the first by name, and the hub logs both owners
  --listen HOST:PORT      gRPC listen address (default 127.0.0.1:7443)
  --state-dir DIR         where join tokens are kept (default /var/lib/switchyard-hub)
  --tls-cert FILE         server certificate (PEM); with --tls-key enables TLS
  --tls-key FILE          server private key (PEM)
  --tls-ca FILE           the CA that signed --tls-cert: served in the chain, and its hash printed,
                          so agents can join with --hub-ca-hash instead of a copy of the CA
  --debounce-ms N         coalescing window for changes (default 20)
  --print-join-token      create a join token for the first cluster and print it on stdout
  --log-level LEVEL       pino level (default info; env SWITCHYARD_LOG_LEVEL)

token flags:
  --state-dir DIR         as above
  --cluster NAME          the cluster the token admits agents to (create)
  --ttl DURATION          e.g. 24h, 7d (create; default 24h, 0 = never expires)
  --description TEXT      free text (create)
  --node-pattern GLOB     node names the token admits, e.g. edge-* (create; default *)
  --max-nodes N           how many distinct nodes may join with it (create; default 0 = no limit)
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
  if (cmd === "serve") return serve(rest);
  fail(`unknown command "${cmd}"; see --help`);
}

function tokenCommand(argv: string[]): void {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      "state-dir": { type: "string", default: "/var/lib/switchyard-hub" },
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
  const store = new TokenStore(values["state-dir"]);
  const [sub, arg] = positionals;
  if (sub === "create") {
    if (!values.cluster) fail("token create needs --cluster NAME (the cluster the token admits agents to)");
    let ttlMs: number | undefined;
    if (values.ttl !== "0") {
      const d = parseDuration(values.ttl);
      if (!d.ok) fail(`--ttl: ${d.error}`);
      ttlMs = d.value;
    }
    const maxNodes = Number(values["max-nodes"]);
    if (!Number.isInteger(maxNodes) || maxNodes < 0)
      fail(`--max-nodes "${values["max-nodes"]}" must be a whole number (0 = no limit)`);
    if (!/^[a-z0-9.*-]+$/.test(values["node-pattern"])) {
      fail(`--node-pattern "${values["node-pattern"]}" may hold lowercase letters, digits, '-', '.' and '*'`);
    }
    if (values.reach !== "pod" && values.reach !== "nodeport")
      fail(`--reach "${values.reach}" must be pod or nodeport`);
    const { token } = store.create(values.cluster, {
      reach: values.reach,
      ...(ttlMs ? { ttlMs } : {}),
      description: values.description,
      nodePattern: values["node-pattern"],
      maxNodes,
    });
    process.stdout.write(`${token}\n`);
    return;
  }
  if (sub === "list") {
    const rows = store.list();
    process.stdout.write("ID      CLUSTER          EXPIRES                   DESCRIPTION\n");
    for (const r of rows) {
      process.stdout.write(
        `${r.id}  ${r.cluster.padEnd(16)} ${(r.expiresAt ?? "never").padEnd(25)} ${r.description}\n`,
      );
    }
    return;
  }
  if (sub === "revoke") {
    if (!arg) fail("token revoke needs the token ID");
    if (!store.revoke(arg)) fail(`no token with id ${arg}`);
    process.stdout.write(`revoked ${arg}\n`);
    return;
  }
  fail(`unknown token command "${sub ?? ""}": use create, list or revoke`);
}

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      cluster: { type: "string", multiple: true, default: [] },
      view: { type: "string", multiple: true, default: [] },
      listen: { type: "string", default: "127.0.0.1:7443" },
      "state-dir": { type: "string", default: "/var/lib/switchyard-hub" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "tls-ca": { type: "string" },
      "debounce-ms": { type: "string", default: "20" },
      "print-join-token": { type: "boolean", default: false },
      "log-level": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void process.stdout.write(HELP);
  const clusters: ClusterConfig[] = [];
  for (const c of values.cluster) {
    const r = parseClusterFlag(c);
    if (!r.ok) fail(r.error);
    if (clusters.some((x) => x.name === r.value.name)) fail(`--cluster ${r.value.name} given twice`);
    clusters.push(r.value);
  }
  if (clusters.length === 0) fail("give at least one --cluster NAME=SOURCE (see --help)");
  const imports = new Map<string, string[]>();
  for (const v of values.view) {
    const r = parseViewFlag(
      v,
      clusters.map((c) => c.name),
    );
    if (!r.ok) fail(r.error);
    if (imports.has(r.value.home)) fail(`--view for ${r.value.home} given twice`);
    imports.set(r.value.home, r.value.imports);
  }
  const listen = parseListen(values.listen);
  if (!listen.ok) fail(listen.error);
  const debounceMs = Number(values["debounce-ms"]);
  if (!Number.isFinite(debounceMs) || debounceMs < 0)
    fail(`--debounce-ms "${values["debounce-ms"]}" is not a number of milliseconds`);
  if (Boolean(values["tls-cert"]) !== Boolean(values["tls-key"]))
    fail("--tls-cert and --tls-key go together");

  const log = createRootLogger("switchyard-hub", values["log-level"]);
  const hubId = `hub-${randomBytes(3).toString("hex")}`;
  const world = new World();
  const snapshots = new SnapshotCache(world, debounceMs);
  const tokens = new TokenStore(values["state-dir"]);

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

  const sources: ClusterSource[] = clusters.map((c) => {
    const clog = log.child({ component: "source", cluster: c.name });
    const writer = new WorldWriter(world, c.name, clog);
    if (c.kind === "dir") return new DirectorySource(c.path, writer, clog);
    return new KubeSource(
      writer,
      clog,
      c.kind === "in-cluster" ? { inCluster: true } : { kubeconfig: c.path },
    );
  });

  const server = new grpc.Server({
    "grpc.max_receive_message_length": 16 * 1024 * 1024,
    "grpc.keepalive_time_ms": 30_000,
  });
  const assignments = new AssignmentServer({
    hubId,
    tokens,
    snapshots,
    viewOf: (cluster, reach) => ({
      key: `${cluster}/${reach}`,
      clusters: [cluster, ...(imports.get(cluster) ?? [])],
      reach,
    }),
    nodeZone: (cluster, node) => world.clusters.get(cluster)?.nodes.get(node)?.zone ?? "",
    log: log.child({ component: "assignments" }),
  });
  assignments.register(server);
  const health = addIntrospection(server);

  const creds = values["tls-cert"]
    ? grpc.ServerCredentials.createSsl(null, [
        {
          // with --tls-ca the chain carries the CA, so agents can pin it by hash on first join
          cert_chain: Buffer.concat([
            fs.readFileSync(values["tls-cert"]),
            ...(values["tls-ca"] ? [fs.readFileSync(values["tls-ca"])] : []),
          ]),
          private_key: fs.readFileSync(values["tls-key"]!),
        },
      ])
    : grpc.ServerCredentials.createInsecure();
  if (!values["tls-cert"])
    log.warn(
      {},
      "serving WITHOUT TLS: join tokens travel in clear text; pass --tls-cert/--tls-key outside loopback",
    );

  for (const s of sources) {
    const synced = await s
      .start()
      .catch((e: unknown) => fail(`cluster ${s.cluster}: ${(e as Error).message}`));
    if (synced) log.info({ cluster: s.cluster }, "cluster synced");
    else log.warn({ cluster: s.cluster }, "cluster not reachable yet; retrying in the background");
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${listen.value.host}:${listen.value.port}`, creds, (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  ).catch((e: unknown) => fail(`cannot listen on ${values.listen}: ${(e as Error).message}`));
  log.info(
    { hubId, address: `${listen.value.host}:${port}`, tls: Boolean(values["tls-cert"]) },
    "hub serving",
  );
  if (values["print-join-token"]) {
    const { token } = tokens.create(clusters[0]!.name, {
      ttlMs: 86_400_000,
      description: "printed at start",
    });
    process.stdout.write(`join token for cluster ${clusters[0]!.name}: ${token}\n`);
  }
  if (values["tls-ca"])
    process.stdout.write(
      `agents join with --hub-ca-hash ${computeCaHash(fs.readFileSync(values["tls-ca"]))}\n`,
    );
  // a line other programs (tests, the demo) can wait for
  process.stdout.write(`listening ${listen.value.host}:${port}\n`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info({}, "hub stopping");
    health.setStatus("", "NOT_SERVING");
    assignments.close();
    snapshots.close();
    await Promise.all(sources.map((s) => s.stop()));
    server.forceShutdown();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`switchyard-hub: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
