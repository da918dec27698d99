/**
 * gRPC adapter for the assignment stream: authenticates the join token,
 * waits for Hello, then drives an AgentSession from snapshot changes and the
 * agent's Acks. One bad or hostile stream is closed with a clear status and
 * never affects the others.
 */
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "@switchyard/lib/log";
import {
  AssignmentServiceService,
  type StreamAssignmentsRequest,
  StreamAssignmentsResponse,
} from "@switchyard/proto/assignment";
import type { TokenStore } from "../auth/tokens.ts";
import type { Reach } from "../translate/compute-resources.ts";
import { encodeResponse } from "./encode.ts";
import { AgentSession } from "./session.ts";
import type { SnapshotCache, View } from "./snapshots.ts";

const NODE_NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export type AgentStatus = {
  node: string;
  cluster: string;
  tokenId: string;
  connectedAt: string;
  ackedVersion: string;
  acks: number;
  nacks: number;
  lastNack: string | undefined;
};

export type AssignmentServerOptions = {
  hubId: string;
  tokens: TokenStore;
  snapshots: SnapshotCache;
  /** the clusters an agent of a home cluster sees */
  viewOf: (cluster: string, reach: Reach) => View;
  /** the topology zone of a node of a cluster ("" when unknown) */
  nodeZone?: (cluster: string, node: string) => string;
  log: Logger;
};

type Stream = grpc.ServerDuplexStream<StreamAssignmentsRequest, StreamAssignmentsResponse>;

export class AssignmentServer {
  private readonly opts: AssignmentServerOptions;
  readonly agents = new Map<
    Stream,
    { status: AgentStatus; session: AgentSession; cutOff: (reason: string, code?: grpc.status) => void }
  >();
  private streamSeq = 0;
  private readonly recheck: NodeJS.Timeout;

  constructor(opts: AssignmentServerOptions) {
    this.opts = opts;
    // revoked or expired tokens lose their streams within a second
    this.recheck = setInterval(() => this.recheckTokens(), 1000);
    this.recheck.unref();
  }

  recheckTokens(now: Date = new Date()): void {
    for (const a of [...this.agents.values()]) {
      const r = this.opts.tokens.stillValid(a.status.tokenId, now);
      if (!r.ok) a.cutOff(r.error);
    }
  }

  /** Ends the streams of a cluster's agents (e.g. its view changed); they reconnect and resume. */
  cutOffCluster(cluster: string, reason: string): number {
    let n = 0;
    for (const a of [...this.agents.values()])
      if (a.status.cluster === cluster) {
        a.cutOff(reason, grpc.status.UNAVAILABLE);
        n++;
      }
    return n;
  }

  close(): void {
    clearInterval(this.recheck);
  }

  register(server: grpc.Server): void {
    // the generated definition, with responses built from once-encoded resources
    const service = {
      ...AssignmentServiceService,
      streamAssignments: {
        ...AssignmentServiceService.streamAssignments,
        responseSerialize: (m: StreamAssignmentsResponse) =>
          encodeResponse(m, (x) => StreamAssignmentsResponse.encode(x).finish()),
      },
    };
    server.addService(service, { streamAssignments: (call: Stream) => this.handle(call) });
  }

  status(): AgentStatus[] {
    return [...this.agents.values()].map((a) => ({
      ...a.status,
      ackedVersion: a.session.ackedVersion,
      acks: a.session.acks,
      nacks: a.session.nacks,
      lastNack: a.session.lastNack?.message,
    }));
  }

  private handle(call: Stream): void {
    const log = this.opts.log;
    const peer = call.getPeer();
    const auth = call.metadata.get("authorization")[0];
    const token = typeof auth === "string" && auth.startsWith("Bearer ") ? auth.slice(7) : "";
    const grant = this.opts.tokens.verify(token);
    if (!grant.ok) {
      log.warn({ peer, reason: grant.error }, "agent refused");
      call.emit("error", { code: grpc.status.UNAUTHENTICATED, details: grant.error });
      call.end();
      return;
    }
    const { cluster, id: tokenId, reach } = grant.value;
    let session: AgentSession | undefined;
    let unsubscribe: (() => void) | undefined;
    let closed = false;
    const view = this.opts.viewOf(cluster, reach);
    const fail = (code: grpc.status, details: string) => {
      if (closed) return;
      log.warn({ peer, cluster, details }, "agent stream closed by hub");
      call.emit("error", { code, details });
      cleanup();
    };
    const cleanup = () => {
      if (closed) return;
      closed = true;
      unsubscribe?.();
      this.agents.delete(call);
      call.end();
    };
    const pump = () => {
      if (!session || closed) return;
      const msg = session.next(this.opts.snapshots.get(view));
      if (msg) call.write(msg);
    };

    call.on("data", (m: StreamAssignmentsRequest) => {
      const kind = m.kind;
      if (!kind) return fail(grpc.status.INVALID_ARGUMENT, "message has neither hello nor ack");
      if (kind.$case === "hello") {
        if (session) return fail(grpc.status.INVALID_ARGUMENT, "hello sent twice on one stream");
        const node = kind.value.nodeName;
        if (!NODE_NAME_RE.test(node)) {
          return fail(
            grpc.status.INVALID_ARGUMENT,
            `node name "${node.slice(0, 64)}" is not a DNS subdomain (lowercase letters, digits, '-' and '.')`,
          );
        }
        const admitted = this.opts.tokens.admitNode(tokenId, node);
        if (!admitted.ok) return fail(grpc.status.PERMISSION_DENIED, admitted.error);
        session = new AgentSession(
          kind.value.initialResourceVersions,
          `${this.opts.hubId}-${++this.streamSeq}`,
        );
        this.agents.set(call, {
          session,
          cutOff: (reason: string, code = grpc.status.PERMISSION_DENIED) => fail(code, reason),
          status: {
            node,
            cluster,
            tokenId,
            connectedAt: new Date().toISOString(),
            ackedVersion: "",
            acks: 0,
            nacks: 0,
            lastNack: undefined,
          },
        });
        log.info(
          { peer, node, cluster, resumed: Object.keys(kind.value.initialResourceVersions).length },
          "agent joined",
        );
        call.write({
          nonce: "",
          systemVersion: "",
          welcome: {
            hubId: this.opts.hubId,
            cluster,
            viewClusters: view.clusters,
            nodeZone: this.opts.nodeZone?.(cluster, node) ?? "",
          },
          resources: [],
          removedResources: [],
        });
        const own = session;
        unsubscribe = this.opts.snapshots.subscribe(view, (_snap, changed) => {
          own.markDirty(changed);
          pump();
        });
        pump();
        return;
      }
      if (!session) return fail(grpc.status.FAILED_PRECONDITION, "ack before hello");
      const ack = kind.value;
      const error = ack.error
        ? {
            message: ack.error.message,
            resources: ack.error.resourceErrors.map((r) => ({ name: r.name, message: r.message })),
          }
        : undefined;
      if (!session.onAck(ack.responseNonce, error)) {
        log.debug(
          { node: this.agents.get(call)?.status.node, nonce: ack.responseNonce },
          "stale ack ignored",
        );
        return;
      }
      if (error)
        log.warn({ node: this.agents.get(call)?.status.node, cluster, error }, "agent rejected resources");
      pump();
    });
    call.on("error", (e) => {
      log.debug({ peer, err: e.message }, "agent stream error");
      cleanup();
    });
    call.on("end", cleanup);
    call.on("cancelled", cleanup);
  }
}
