/**
 * The admin API (proto/switchyard/v1/admin.proto) on a Unix socket in the
 * hub's state directory, mode 0600: agents and their sync status, clusters
 * and their health, policies and their verdicts, join tokens, revocations. The CLI talks to it; a
 * revocation through it cuts the affected streams at once.
 */
import fs from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import {
  AdminServiceClient,
  AdminServiceService,
  type AgentInfo,
  type ClusterInfo,
  type LookupRequest,
  type PolicyInfo,
  type TokenInfo,
} from "@switchyard/proto/admin";
import type { CredentialAuthority } from "../auth/credentials.ts";
import { checkTokenScope, type TokenRecord, type TokenStore } from "../auth/tokens.ts";
import type { ClusterConfig } from "../config.ts";
import type { World } from "../model/world.ts";
import type { ClusterManager } from "../sources/manager.ts";
import type { PolicyBook } from "../status/policy-status.ts";
import type { AssignmentServer } from "../xds/grpc-server.ts";
import type { SnapshotCache } from "../xds/snapshots.ts";
import { answerLookup, type LookupDeps } from "./lookup-service.ts";

export function adminSocketPath(stateDir: string): string {
  return path.join(stateDir, "admin.sock");
}

export function tokenInfo(r: TokenRecord): TokenInfo {
  return {
    id: r.id,
    cluster: r.cluster,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt ?? "",
    description: r.description,
    nodePattern: r.nodePattern ?? "*",
    maxNodes: r.maxNodes ?? 0,
    nodes: r.nodes ?? [],
    reach: r.reach ?? "pod",
  };
}

type Deps = {
  hubId: string;
  world: World;
  clusters: ClusterManager;
  clusterConfigs: () => { clusters: ClusterConfig[]; imports: Map<string, string[]> };
  snapshots?: Pick<SnapshotCache, "held">;
  tokens: TokenStore;
  credentials: CredentialAuthority;
  assignments: AssignmentServer;
  policies?: Pick<PolicyBook, "rows">;
  /** what Lookup reads (absent: Lookup is unavailable) */
  lookup?: LookupDeps;
};

type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => void;

function unary<Req, Res>(fn: (req: Req) => Promise<Res> | Res): Unary<Req, Res> {
  return (call, cb) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (res) => cb(null, res),
        (e: unknown) => {
          const err = e as { code?: grpc.status; message?: string };
          cb({ code: err.code ?? grpc.status.INTERNAL, details: err.message ?? String(e) });
        },
      );
  };
}

function invalid(message: string): Error & { code: grpc.status } {
  return Object.assign(new Error(message), { code: grpc.status.INVALID_ARGUMENT });
}

export async function serveAdmin(deps: Deps, stateDir: string): Promise<grpc.Server> {
  const server = new grpc.Server();
  const listAgents = (): AgentInfo[] =>
    deps.assignments.status().map((a) => ({
      node: a.node,
      cluster: a.cluster,
      auth: a.auth,
      peer: a.peer,
      connectedAt: a.connectedAt,
      agentVersion: a.agentVersion,
      viewVersion: a.viewVersion,
      ackedVersion: a.ackedVersion,
      pendingResources: a.pending,
      lagMs: a.lagMs,
      acks: a.acks,
      nacks: a.nacks,
      lastNack: a.lastNack ?? "",
      hubId: deps.hubId,
    }));
  const listClusters = (): ClusterInfo[] => {
    const { clusters, imports } = deps.clusterConfigs();
    const held = deps.snapshots?.held() ?? new Map<string, readonly string[]>();
    return clusters.map((c) => {
      const st = deps.world.clusters.get(c.name);
      const h = st?.health;
      const holding = [...held].filter(([, waiting]) => waiting.includes(c.name)).map(([view]) => view);
      const failure = deps.clusters.failure(c.name);
      const rejectedNow = deps.clusters.rejectedNow(c.name);
      return {
        name: c.name,
        source: c.kind,
        imports: imports.get(c.name) ?? [],
        stale: h?.stale ?? false,
        withdrawn: h?.withdrawn ?? false,
        staleSince: h?.staleSince ? new Date(h.staleSince).toISOString() : "",
        reason: [
          h?.reason,
          st?.sync === "pending" ? "not listed since the hub started" : undefined,
          st?.sync === "restored" ? "serving its last known state until it is listed" : undefined,
          holding.length ? `views held back until it is seen: ${holding.join(", ")}` : undefined,
        ]
          .filter((x) => x !== undefined)
          .join("; "),
        services: st?.services.size ?? 0,
        endpointSlices: st?.slices.size ?? 0,
        nodes: st?.nodes.size ?? 0,
        // the objects refused now (a count of every refusal since start is the metric's)
        rejectedObjects: rejectedNow.length,
        failed: failure !== undefined,
        rejected: rejectedNow,
        pods: st?.pods.size ?? 0,
        localRedirectPolicies: st?.localRedirects.size ?? 0,
        balancingPolicies: st?.balancing.size ?? 0,
      };
    });
  };
  server.addService(AdminServiceService, {
    listAgents: unary(() => ({ agents: listAgents() })),
    listClusters: unary(() => ({ clusters: listClusters() })),
    listPolicies: unary(() => ({
      policies: (deps.policies?.rows() ?? []).map(
        (r): PolicyInfo => ({
          cluster: r.cluster,
          kind: r.kind,
          namespace: r.namespace,
          name: r.name,
          generation: r.generation,
          frontend: r.frontend,
          state: r.state,
          reason: r.reason,
          message: r.message,
          winner: r.winner,
        }),
      ),
    })),
    lookup: unary((req: LookupRequest) => {
      if (!deps.lookup)
        throw Object.assign(new Error("lookup is not served by this hub"), {
          code: grpc.status.UNIMPLEMENTED,
        });
      return answerLookup(deps.lookup, req);
    }),
    listTokens: unary(() => ({ tokens: deps.tokens.list().map(tokenInfo) })),
    createToken: unary(
      async (req: {
        cluster: string;
        ttlMs: number;
        description: string;
        nodePattern: string;
        maxNodes: number;
        reach: string;
      }) => {
        if (!deps.clusterConfigs().clusters.some((c) => c.name === req.cluster))
          throw invalid(
            `cluster "${req.cluster}" is not a cluster of this hub (its clusters: ${
              deps
                .clusterConfigs()
                .clusters.map((c) => c.name)
                .join(", ") || "none"
            })`,
          );
        const scopeError = checkTokenScope({
          nodePattern: req.nodePattern || "*",
          reach: req.reach || "pod",
          maxNodes: Number(req.maxNodes ?? 0),
        });
        if (scopeError) throw invalid(scopeError);
        const { token, record } = await deps.tokens.create(req.cluster, {
          ...(req.ttlMs ? { ttlMs: Number(req.ttlMs) } : {}),
          description: req.description,
          nodePattern: req.nodePattern || "*",
          maxNodes: req.maxNodes,
          reach: req.reach === "nodeport" ? "nodeport" : "pod",
        });
        return { token, info: tokenInfo(record) };
      },
    ),
    revokeToken: unary(async (req: { id: string }) => {
      if (!(await deps.tokens.revoke(req.id)))
        throw Object.assign(new Error(`no join token with id ${req.id}`), { code: grpc.status.NOT_FOUND });
      return {
        agentsCutOff: deps.assignments.cutOffToken(req.id, `join token ${req.id} was revoked`),
      };
    }),
    rotateSigningKey: unary(async (req: { retireNow: boolean }) => {
      // the streams a retired key loses: counted before, since the hub's own re-check may cut them first
      const cut = req.retireNow ? deps.assignments.countWithCredentialKey(deps.credentials.keyId) : 0;
      const r = await deps.credentials.rotate({ retireNow: req.retireNow });
      deps.assignments.recheckAuth();
      return { ...r, agentsCutOff: cut };
    }),
    revokeAgent: unary(async (req: { cluster: string; node: string }) => {
      if (!req.cluster || !req.node) throw invalid("name the agent as CLUSTER/NODE");
      await deps.credentials.revokeAgent(req.cluster, req.node);
      return {
        agentsCutOff: deps.assignments.cutOffAgent(
          req.cluster,
          req.node,
          `agent ${req.cluster}/${req.node} was revoked`,
        ),
      };
    }),
  });
  const sock = adminSocketPath(stateDir);
  // Unix socket paths are limited to 107 bytes
  if (Buffer.byteLength(sock) > 100)
    throw new Error(`the admin socket path ${sock} is too long for a Unix socket; use a shorter --state-dir`);
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  fs.rmSync(sock, { force: true });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${sock}`, grpc.ServerCredentials.createInsecure(), (e) =>
      e ? reject(e) : resolve(),
    ),
  );
  fs.chmodSync(sock, 0o600);
  return server;
}

/** A client for the CLI, or undefined when no hub listens on the state dir's socket. */
export function adminClient(stateDir: string): InstanceType<typeof AdminServiceClient> | undefined {
  const sock = adminSocketPath(stateDir);
  if (!fs.existsSync(sock)) return undefined;
  return new AdminServiceClient(`unix:${sock}`, grpc.credentials.createInsecure());
}

/** Calls a unary admin method as a promise: call((cb) => client.listAgents({}, cb)). */
export function call<Res>(
  fn: (cb: (e: grpc.ServiceError | null, res: Res) => void) => unknown,
): Promise<Res> {
  return new Promise((resolve, reject) => fn((e, res) => (e ? reject(e) : resolve(res))));
}
