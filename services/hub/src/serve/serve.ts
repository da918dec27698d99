/**
 * `switchyard-hub serve`: the composition root. Settings (flags over the
 * config file) in settings.ts, the config file's live reload in
 * config-reload.ts; here the parts are built and wired, the ports opened,
 * and everything stopped again on SIGINT/SIGTERM.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { computeCaHash } from "@switchyard/lib/ca-pin";
import { parseFlags } from "@switchyard/lib/cli";
import { parseDuration } from "@switchyard/lib/duration";
import { createRootLogger } from "@switchyard/lib/log";
import { adminSocketPath, serveAdmin } from "../admin/admin-server.ts";
import { addIntrospection } from "../admin/introspection.ts";
import { createHubMetrics, serveMetrics } from "../admin/metrics.ts";
import { computeHubReadiness } from "../admin/readiness.ts";
import { CredentialAuthority } from "../auth/credentials.ts";
import { followNatsAccounts } from "../auth/nats-accounts.ts";
import { TokenStore } from "../auth/tokens.ts";
import { fail, kekOrFail, openState } from "../cli/common.ts";
import { parseListen } from "../config.ts";
import { HubEvents } from "../events/hub-events.ts";
import { World } from "../model/world.ts";
import { ClusterHealthTracker } from "../sources/health.ts";
import { ClusterManager } from "../sources/manager.ts";
import { LastKnownStore, LastKnownWriter } from "../state/last-known.ts";
import { PolicyBook, PolicyStatusWriter } from "../status/policy-status.ts";
import type { Reach } from "../translate/compute-resources.ts";
import { clusterPolicyVerdicts } from "../translate/local-redirect.ts";
import { serveFront } from "../transport/front.ts";
import { LIMIT_SPECS } from "../transport/limits.ts";
import { logRefusalSummaries } from "../transport/refusals.ts";
import { tuneGcForStreaming } from "../xds/gc-tuning.ts";
import { AssignmentServer } from "../xds/grpc-server.ts";
import { SnapshotCache, type View } from "../xds/snapshots.ts";
import { watchConfig } from "./config-reload.ts";
import { resolveSettings } from "./settings.ts";

export async function serve(argv: string[]): Promise<void> {
  tuneGcForStreaming();
  const { values } = parseFlags(argv, {
    config: { type: "string" },
    cluster: { type: "string", multiple: true, default: [] },
    view: { type: "string", multiple: true, default: [] },
    listen: { type: "string" },
    "state-dir": { type: "string" },
    "state-nats": { type: "string", multiple: true, default: [] },
    "state-nats-creds": { type: "string" },
    "state-nats-tls-ca": { type: "string" },
    "state-nats-tls-server-name": { type: "string" },
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
    "events-nats": { type: "string", multiple: true, default: [] },
    "nats-tls-ca": { type: "string" },
    "nats-tls-server-name": { type: "string" },
    // removed: only so that `--front own` gets a clear error (settings.ts)
    front: { type: "string" },
    ...Object.fromEntries(LIMIT_SPECS.map((x) => [x.flag, { type: "string" as const }])),
    "print-join-token": { type: "boolean", default: false },
    "log-level": { type: "string" },
  });
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
  const shared = current.stateNats.servers.length > 0;
  const state = await openState(current.stateDir, current.stateNats);
  log.info({ state: state.describe }, "shared state");
  const tokens = new TokenStore(state);
  const sealing = kekOrFail({ ...values, "state-nats": current.stateNats.servers }, current.stateDir);
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
  // the NATS account whose signer the hubs are (`switchyard-hub nats init`), if made; its users go to agents
  const natsAccounts = followNatsAccounts(state, sealing.kek);
  const tracker = new ClusterHealthTracker(world, current.staleGraceMs, log.child({ component: "health" }));
  // each cluster's last known state, shared like the tokens: a restart or a fresh replica starts from it
  const lastKnown = new LastKnownStore(state);
  // every policy with the translator's verdict (or why it was refused), written back to its cluster
  const policies = new PolicyBook(world, clusterPolicyVerdicts);
  const clusters = new ClusterManager(world, tracker, log, current.apiTimeoutMs, lastKnown, policies);
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
  /** the clusters an agent of CLUSTER sees (its home first, then its imports), per way of reaching backends */
  const viewOf = (cluster: string, reach: Reach): View => {
    const imports = current.imports.get(cluster) ?? [];
    return { key: `${cluster}+${imports.join(",")}/${reach}`, clusters: [cluster, ...imports], reach };
  };
  const assignments = new AssignmentServer({
    hubId,
    tokens,
    credentials,
    snapshots,
    viewOf,
    nodeZone: (cluster, node) => world.clusters.get(cluster)?.nodes.get(node)?.zone ?? "",
    // node entry (nodeProxy): agents read this interface and report its addresses (the node annotation wins)
    entryInterface: () => current.entryInterface,
    onEntryAddresses: (cluster, node, addresses) => world.setReportedEntryAddresses(cluster, node, addresses),
    natsCreds: async (cluster, node, expiresAtMs) =>
      (await natsAccounts()?.agentCreds(cluster, node, expiresAtMs)) ?? "",
    natsUsersSince: () => natsAccounts()?.createdAtMs,
    log: log.child({ component: "assignments" }),
  });
  const policyStatus = new PolicyStatusWriter(
    policies,
    world,
    (cluster) => clusters.statusClientOf(cluster),
    log.child({ component: "policy-status" }),
    {
      // status.nodes: this hub's agents that hold their whole view; replicas (shared state) each see
      // only their own agents and would overwrite each other's counts, so they do not write it
      ...(!shared
        ? {
            nodesOf: (cluster: string) =>
              assignments
                .status()
                .filter(
                  (a) => a.cluster === cluster && a.ackedVersion !== "" && a.ackedVersion === a.viewVersion,
                )
                .map((a) => a.node),
          }
        : {}),
    },
  );
  assignments.convergence.onConverged = (view, ms, agents) => {
    log.info({ component: "assignments", view, agents, ms: Math.round(ms * 10) / 10 }, "view converged");
    // every agent of the view holds it now: policies' status.nodes may have moved
    policyStatus.recount();
  };
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

  // a cluster whose source cannot start is logged by name and listed as failed (`clusters`, metrics); the
  // hub serves the others, and tries it again at the next config reload
  await clusters.apply(current.clusters).catch(() => {});
  const front = await serveFront({
    host: listen.value.host,
    port: listen.value.port,
    tls,
    routes: new Map([assignments.route()]),
    fallback: server,
    maxMessageBytes: 16 * 1024 * 1024,
    ioThreads: current.ioThreads,
    limits: current.limits,
    onInternalError: (e) =>
      log.error({ err: e.stack ?? e.message }, "a connection was closed after an internal error"),
  }).catch((e: unknown) => fail(`cannot listen on ${current.listen}: ${(e as Error).message}`));
  const port = front.port;
  // what the port's limits refuse: one summary line per interval at most, never a line per connection
  const stopRefusalLog = logRefusalSummaries(front.refusals, (fields, msg) => log.warn(fields, msg));
  log.info(
    { hubId, address: `${listen.value.host}:${port}`, tls: Boolean(values["tls-cert"]) },
    "hub serving",
  );
  let metricsServer: import("node:http").Server | undefined;
  if (current.metricsListen) {
    const m = parseListen(current.metricsListen);
    if (!m.ok) fail(m.error);
    metricsServer = await serveMetrics(
      createHubMetrics({ world, clusters, assignments, snapshots, front, policies }),
      m.value.host,
      m.value.port,
      () =>
        computeHubReadiness(
          clusters.clusters.map((name) => ({
            name,
            sync: world.clusters.get(name)?.sync,
            failed: clusters.failure(name) !== undefined,
          })),
        ),
    ).catch((e: unknown) =>
      fail(`cannot serve metrics on ${current.metricsListen}: ${(e as Error).message}`),
    );
    const a = metricsServer.address() as { port: number };
    process.stderr.write(`metrics http://${m.value.host}:${a.port}/metrics (and /healthz, /readyz)\n`);
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
      policies,
      lookup: {
        world,
        snapshots,
        viewOf,
        clusterNames: () => current.clusters.map((c) => c.name),
        agents: () => assignments.status(),
        policies,
      },
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
    process.stderr.write(`join token for cluster ${current.clusters[0]!.name}: ${token}\n`);
  }
  if (values["tls-ca"])
    process.stderr.write(
      `agents join with --hub-ca-hash ${computeCaHash(fs.readFileSync(values["tls-ca"]))}\n`,
    );
  // a line other programs (tests, the demo) can wait for; human lines go to stderr, stdout is the JSON log
  process.stderr.write(`listening ${listen.value.host}:${port}\n`);

  // NAT events: the history stream's limits (and, on reload, their changes)
  let events: HubEvents;
  try {
    events = HubEvents.start(current.events, natsAccounts, hubId, log.child({ component: "events" }));
  } catch (e) {
    return fail((e as Error).message);
  }
  // the config file is watched: clusters and views change live; a bad edit is reported and ignored
  const watcher = watchConfig({
    events,
    values,
    configFile,
    current: () => current,
    setCurrent: (next) => {
      current = next;
    },
    log,
    tracker,
    clusters,
    snapshots,
    assignments,
  });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info({}, "hub stopping");
    watcher.close();
    health.setStatus("", "NOT_SERVING");
    assignments.close();
    snapshots.close();
    void policyStatus.close();
    metricsServer?.close();
    await events.close();
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
    stopRefusalLog();
    await front.close();
    server.forceShutdown();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
