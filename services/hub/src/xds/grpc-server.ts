/**
 * gRPC adapter for the assignment stream: authenticates the join token or
 * the agent's credential (issuing one after a join, rotating it before it
 * expires), waits for Hello, then drives an AgentSession from snapshot
 * changes and the agent's Acks. One bad or hostile stream is closed with a clear status and
 * never affects the others.
 */
import type { Logger } from "@switchyard/lib/log";
import {
  type Hello,
  ResourceEncoding,
  StreamAssignmentsRequest,
  StreamAssignmentsResponse,
} from "@switchyard/proto/assignment";
import { AuthGuard, type AuthLimits } from "../auth/auth-guard.ts";
import { type AgentIdentity, type CredentialAuthority, isCredential } from "../auth/credentials.ts";
import { type Refusal, refusal } from "../auth/refusal.ts";
import { sourceKey } from "../auth/source-key.ts";
import { type TokenStore, tokenIdOf } from "../auth/tokens.ts";
import type { Reach } from "../translate/compute-resources.ts";
import { type GrpcCall, Status, type StatusCode } from "../transport/grpc-call.ts";
import { ConvergenceTracker } from "./convergence.ts";
import { encodeResponse } from "./encode.ts";
import { parseNodeReport } from "./node-report.ts";
import { AgentSession, type NackRecord } from "./session.ts";
import type { SnapshotCache, View } from "./snapshots.ts";

const NODE_NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** the gRPC method agents call (proto/switchyard/v1/assignment.proto) */
export const STREAM_ASSIGNMENTS_PATH = "/switchyard.v1.AssignmentService/StreamAssignments";
const encodeHead = (x: StreamAssignmentsResponse) => StreamAssignmentsResponse.encode(x).finish();

export type AgentStatus = {
  node: string;
  cluster: string;
  tokenId: string;
  /** "join-token <id>" or "credential (expires …)" */
  auth: string;
  peer: string;
  agentVersion: string;
  connectedAt: string;
  viewVersion: string;
  ackedVersion: string;
  /** resources still to send or acknowledge */
  pending: number;
  /** ms since the agent was last in sync (0 = in sync) */
  lagMs: number;
  acks: number;
  nacks: number;
  lastNack: string | undefined;
};

export type AssignmentServerOptions = {
  hubId: string;
  tokens: TokenStore;
  credentials: CredentialAuthority;
  snapshots: SnapshotCache;
  /** the clusters an agent of a home cluster sees */
  viewOf: (cluster: string, reach: Reach) => View;
  /** the topology zone of a node of a cluster ("" when unknown) */
  nodeZone?: (cluster: string, node: string) => string;
  /** the interface whose addresses are a node's entry addresses (the entryInterface setting; "" = none) */
  entryInterface?: (cluster: string) => string;
  /** a node's agent reported its entry addresses (checked; empty: none) */
  onEntryAddresses?: (cluster: string, node: string, addresses: string[]) => void;
  maxResourcesPerMessage?: number;
  /** for agents that accept zstd-packed batches */
  maxResourcesPerPackedMessage?: number;
  /** failed authentications allowed per source and per token id (auth-guard.ts) */
  authLimits?: AuthLimits;
  /** refusals are logged as one summary line per source this often (default 10 s) */
  authSummaryIntervalMs?: number;
  /** the agent's NATS user (.creds text) sent with each credential, expiring with it; "" for none (auth/nats-accounts.ts) */
  natsCreds?: (cluster: string, node: string, expiresAtMs: number) => Promise<string>;
  /** when the NATS account was made (ms): a credential issued before carries no NATS user and is renewed */
  natsUsersSince?: () => number | undefined;
  log: Logger;
};

type Stream = GrpcCall;

/** "2 resource(s) not applied: svc/c/ns/a: writing … failed: E2BIG (map full: raise its size) (+1 more)" */
function describeNack(n: NackRecord | undefined): string | undefined {
  if (!n) return undefined;
  const first = n.resources[0];
  if (!first) return n.message;
  const more = n.resources.length > 1 ? ` (+${n.resources.length - 1} more)` : "";
  return `${n.message}: ${first.name}: ${first.message}${more}`;
}

type Auth =
  | { kind: "token"; tokenId: string }
  | { kind: "credential"; identity: AgentIdentity; rotating: boolean };

type Agent = {
  status: Omit<
    AgentStatus,
    "viewVersion" | "ackedVersion" | "pending" | "lagMs" | "acks" | "nacks" | "lastNack" | "auth"
  >;
  auth: Auth;
  view: View;
  session: AgentSession;
  /** when the agent last went from in sync to behind */
  behindSince: number | undefined;
  cutOff: (reason: string, code?: StatusCode) => void;
  send: (m: StreamAssignmentsResponse) => void;
};

export class AssignmentServer {
  private readonly opts: AssignmentServerOptions;
  readonly agents = new Map<Stream, Agent>();
  private streamSeq = 0;
  /** view change → every agent of the view ACKed it (the metric switchyard_hub_view_convergence_seconds) */
  readonly convergence = new ConvergenceTracker();
  private readonly trackedViews = new Set<string>();
  /** resources per message: bounds what one agent's stream buffers at once */
  readonly maxResourcesPerMessage: number;
  /**
   * the same for agents that take zstd-packed batches: ~70 KB on the wire
   * for 2,000 resources; a quarter of the messages (and ACK round trips) for a
   * cold start cost both sides far less (bench: 20-22 s instead of 34-36 s
   * for 1,000 agents, hub CPU 17 s instead of 28)
   */
  readonly maxResourcesPerPackedMessage: number;
  private readonly recheck: NodeJS.Timeout;
  /** failure limits and the refusals' summary: refused streams are never logged one by one */
  readonly authGuard: AuthGuard;
  private readonly authSummary: NodeJS.Timeout;

  constructor(opts: AssignmentServerOptions) {
    this.opts = opts;
    this.maxResourcesPerMessage = opts.maxResourcesPerMessage ?? 500;
    this.maxResourcesPerPackedMessage = opts.maxResourcesPerPackedMessage ?? 2000;
    // revoked or expired tokens and credentials lose their streams within a second; credentials rotate
    this.recheck = setInterval(() => this.recheckAuth(), 1000);
    this.recheck.unref();
    this.authGuard = new AuthGuard(opts.authLimits);
    const every = opts.authSummaryIntervalMs ?? 10_000;
    this.authSummary = setInterval(() => this.logAuthSummary(every), every);
    this.authSummary.unref();
    // a dropped view is tracked again when an agent of it comes back
    opts.snapshots.onEvict = (key) => this.trackedViews.delete(key);
  }

  /** Streams whose agent credential was signed with this hub key. */
  countWithCredentialKey(keyId: string): number {
    let n = 0;
    for (const a of this.agents.values())
      if (a.auth.kind === "credential" && a.auth.identity.keyId === keyId) n++;
    return n;
  }

  /** Cuts streams whose token or credential no longer holds and rotates credentials. */
  recheckAuth(now: Date = new Date()): void {
    for (const a of [...this.agents.values()]) {
      if (a.auth.kind === "token") {
        const r = this.opts.tokens.stillValid(a.auth.tokenId, now);
        if (!r.ok) a.cutOff(r.error);
        continue;
      }
      const auth = a.auth;
      const r = this.opts.credentials.stillValid(auth.identity, now);
      if (!r.ok) {
        a.cutOff(r.error);
        continue;
      }
      const natsSince = this.opts.natsUsersSince?.();
      const lacksNatsUser = natsSince !== undefined && auth.identity.issuedAt < natsSince;
      if (!auth.rotating && (lacksNatsUser || this.opts.credentials.needsRotation(auth.identity, now))) {
        auth.rotating = true;
        this.issueTo(a, auth.identity, now)
          .catch((e: unknown) =>
            this.opts.log.error(
              { node: a.status.node, err: (e as Error).message },
              "could not renew an agent credential; will retry",
            ),
          )
          .finally(() => {
            auth.rotating = false;
          });
      }
    }
  }

  /** Signs a credential for the agent and sends it on its stream (no nonce: not acknowledged). */
  private async issueTo(
    a: Agent,
    who: Pick<AgentIdentity, "cluster" | "node" | "reach" | "tokenId">,
    now = new Date(),
  ) {
    const c = await this.opts.credentials.issue(
      { cluster: who.cluster, node: who.node, reach: who.reach, tokenId: who.tokenId },
      now,
    );
    const natsCreds = (await this.opts.natsCreds?.(who.cluster, who.node, c.identity.expiresAt)) ?? "";
    a.auth = { kind: "credential", identity: c.identity, rotating: false };
    a.send(
      StreamAssignmentsResponse.fromPartial({
        credential: { token: c.token, expiresAt: new Date(c.identity.expiresAt).toISOString(), natsCreds },
      }),
    );
    return c;
  }

  /** Ends the streams of a cluster's agents (e.g. its view changed); they reconnect and resume. */
  cutOffCluster(cluster: string, reason: string): number {
    return this.cutOffWhere((a) => a.status.cluster === cluster, reason, Status.UNAVAILABLE);
  }

  /** Ends the streams of the agents a join token admitted (it was revoked). */
  cutOffToken(tokenId: string, reason: string): number {
    return this.cutOffWhere((a) => a.status.tokenId === tokenId, reason);
  }

  /** Ends one agent's streams (it was revoked). */
  cutOffAgent(cluster: string, node: string, reason: string): number {
    return this.cutOffWhere((a) => a.status.cluster === cluster && a.status.node === node, reason);
  }

  private cutOffWhere(pred: (a: Agent) => boolean, reason: string, code?: StatusCode): number {
    let n = 0;
    for (const a of [...this.agents.values()])
      if (pred(a)) {
        a.cutOff(reason, code);
        n++;
      }
    return n;
  }

  close(): void {
    clearInterval(this.recheck);
    clearInterval(this.authSummary);
    this.logAuthSummary(undefined);
  }

  /** The hub's front serves StreamAssignments with this (transport/front.ts). */
  route(): [path: string, handler: (call: GrpcCall) => void] {
    return [STREAM_ASSIGNMENTS_PATH, (call) => this.handle(call)];
  }

  /** Agents and their NACKs per home cluster: cheap enough for every metrics scrape. */
  countsByCluster(): Map<string, { agents: number; nacks: number }> {
    const out = new Map<string, { agents: number; nacks: number }>();
    for (const a of this.agents.values()) {
      const c = out.get(a.status.cluster) ?? { agents: 0, nacks: 0 };
      c.agents++;
      c.nacks += a.session.nacks;
      out.set(a.status.cluster, c);
    }
    return out;
  }

  status(now = Date.now()): AgentStatus[] {
    return [...this.agents.values()].map((a) => {
      const pending = a.session.pending;
      return {
        ...a.status,
        auth:
          a.auth.kind === "token"
            ? `join-token ${a.auth.tokenId}`
            : `credential (key ${a.auth.identity.keyId}, expires ${new Date(a.auth.identity.expiresAt).toISOString()})`,
        viewVersion: this.opts.snapshots.get(a.view, a.status.node).version,
        ackedVersion: a.session.ackedVersion,
        pending,
        lagMs: pending > 0 && a.behindSince !== undefined ? now - a.behindSince : 0,
        acks: a.session.acks,
        nacks: a.session.nacks,
        lastNack: describeNack(a.session.lastNack),
      };
    });
  }

  private handle(call: Stream): void {
    const log = this.opts.log;
    const peer = call.peer;
    const authz = call.metadata("authorization");
    const bearer = authz?.startsWith("Bearer ") ? authz.slice(7) : "";
    // over the failure limit: refused before any hash or signature is checked, and nothing is written
    const source = sourceKey(peer);
    const presentedId = isCredential(bearer) ? undefined : tokenIdOf(bearer);
    const gate = this.authGuard.admit(source, presentedId, Date.now());
    if (!gate.ok) {
      call.finish(
        Status.RESOURCE_EXHAUSTED,
        `too many failed authentications from this address or for this token; retry in ${Math.ceil(gate.retryAfterMs / 1000)}s`,
      );
      return;
    }
    let auth: Auth;
    let cluster: string;
    let reach: Reach;
    let tokenId: string;
    if (isCredential(bearer)) {
      const v = this.opts.credentials.verify(bearer);
      if (!v.ok) {
        this.refuse(call, source, undefined, v.error);
        return;
      }
      auth = { kind: "credential", identity: v.value, rotating: false };
      ({ cluster, reach, tokenId } = v.value);
    } else {
      const grant = this.opts.tokens.verify(bearer);
      if (!grant.ok) {
        this.refuse(call, source, presentedId, grant.error);
        return;
      }
      auth = { kind: "token", tokenId: grant.value.id };
      ({ cluster, reach, id: tokenId } = grant.value);
    }
    let session: AgentSession | undefined;
    /** the agent's node (from its Hello): it receives the view's shared resources and its node's own */
    let agentNode: string | undefined;
    /** the agent reads zstd-packed batches (Hello.accept_encodings) */
    let packs = false;
    let helloSeen = false;
    let unsubscribe: (() => void) | undefined;
    let closed = false;
    const view = this.opts.viewOf(cluster, reach);
    const fail = (code: StatusCode, details: string) => {
      if (closed) return;
      log.warn({ peer, cluster, details }, "agent stream closed by hub");
      cleanup(code, details);
    };
    /** not admitted (node name, scope, revoked): counted and summarised with the auth failures, not logged each */
    const deny = (details: string) => {
      if (closed) return;
      this.authGuard.refused(source, undefined, refusal("not-admitted", details), Date.now());
      cleanup(Status.PERMISSION_DENIED, details);
    };
    const cleanup = (code: StatusCode = Status.OK, details = "") => {
      if (closed) return;
      closed = true;
      unsubscribe?.();
      this.agents.delete(call);
      this.convergence.gone(view.key, call);
      call.finish(code, details);
    };
    /** one response; `pack`: the agent reads zstd-packed batches */
    const send = (m: StreamAssignmentsResponse) => {
      if (!closed) call.write(encodeResponse(m, encodeHead, packs));
    };
    const pump = () => {
      // a view waiting for a cluster the hub has not seen yet sends nothing: its agents keep what they hold
      if (!session || closed || this.opts.snapshots.isHeld(view)) return;
      const msg = session.next(this.opts.snapshots.get(view, agentNode));
      if (msg) send(msg);
      const a = this.agents.get(call);
      if (a) {
        if (session.pending === 0) a.behindSince = undefined;
        else a.behindSince ??= Date.now();
      }
    };

    const onHello = async (hello: Hello) => {
      const node = hello.nodeName;
      if (!NODE_NAME_RE.test(node)) {
        return fail(
          Status.INVALID_ARGUMENT,
          `node name "${node.slice(0, 64)}" is not a DNS subdomain (lowercase letters, digits, '-' and '.')`,
        );
      }
      if (auth.kind === "credential" && auth.identity.node !== node)
        return deny(
          `this credential belongs to node ${auth.identity.cluster}/${auth.identity.node}; node "${node}" may not use it`,
        );
      if (auth.kind === "token") {
        // a revoked agent comes back only with a join token created after its revocation
        const revokedAt = this.opts.credentials.revokedAt(cluster, node);
        const created = this.opts.tokens.createdAt(tokenId);
        if (revokedAt !== undefined && created !== undefined && new Date(created).getTime() <= revokedAt)
          return deny(
            `agent ${cluster}/${node} was revoked at ${new Date(revokedAt).toISOString()}; only a join token created after that readmits it`,
          );
        const admitted = await this.opts.tokens.admitNode(tokenId, node);
        if (!admitted.ok) return deny(admitted.error);
      }
      if (closed) return;
      // resume shortcut: an agent that holds exactly the current view says so with one version
      let inSyncWith: string | undefined;
      if (hello.heldViewVersion && Object.keys(hello.initialResourceVersions).length === 0) {
        const current = this.opts.snapshots.get(view, node).version;
        // a view held back (a cluster not seen yet) is not the view: "in sync" with it would let the agent
        // prune what the missing cluster gave it — the agent lists its versions and waits for the release
        if (this.opts.snapshots.isHeld(view))
          return fail(
            Status.FAILED_PRECONDITION,
            "resend versions: the view is held back until every cluster of it has been seen",
          );
        if (hello.heldViewVersion !== current)
          return fail(
            Status.FAILED_PRECONDITION,
            `resend versions: the agent holds view version ${hello.heldViewVersion}, the view is at ${current}`,
          );
        inSyncWith = current;
      }
      packs = hello.acceptEncodings.includes(ResourceEncoding.RESOURCE_ENCODING_ZSTD);
      const s = new AgentSession(
        hello.initialResourceVersions,
        `${this.opts.hubId}-${++this.streamSeq}`,
        packs ? this.maxResourcesPerPackedMessage : this.maxResourcesPerMessage,
        inSyncWith,
      );
      const agent: Agent = {
        session: s,
        auth,
        view,
        behindSince: Date.now(),
        cutOff: (reason, code = Status.PERMISSION_DENIED) => fail(code, reason),
        send,
        status: {
          node,
          cluster,
          tokenId,
          peer,
          agentVersion: hello.agentVersion.slice(0, 64),
          connectedAt: new Date().toISOString(),
        },
      };
      this.agents.set(call, agent);
      log.info(
        {
          peer,
          node,
          cluster,
          auth: auth.kind,
          resumed: inSyncWith
            ? `in sync at ${inSyncWith}`
            : Object.keys(hello.initialResourceVersions).length,
        },
        "agent joined",
      );
      // changes from here on are the session's to send, also those made while the credential is signed
      this.trackView(view);
      agentNode = node;
      unsubscribe = this.opts.snapshots.subscribe(
        view,
        (_snap, changed) => {
          s.markDirty(changed);
          pump();
        },
        { node },
      );
      send(
        StreamAssignmentsResponse.fromPartial({
          welcome: {
            hubId: this.opts.hubId,
            cluster,
            viewClusters: view.clusters,
            nodeZone: this.opts.nodeZone?.(cluster, node) ?? "",
            entryInterface: this.opts.entryInterface?.(cluster) ?? "",
            // the agent holds the whole view: it may prune now, no delta follows until the view changes
            inSync: inSyncWith !== undefined,
          },
        }),
      );
      // an agent that joined with a join token gets its own credential for every later stream
      if (auth.kind === "token") await this.issueTo(agent, { cluster, node, reach, tokenId });
      if (closed) return;
      session = s;
      pump();
    };

    const onMessage = (bytes: Buffer) => {
      let m: StreamAssignmentsRequest;
      try {
        m = StreamAssignmentsRequest.decode(bytes);
      } catch (e) {
        return fail(
          Status.INVALID_ARGUMENT,
          `malformed StreamAssignmentsRequest (${bytes.length} bytes): ${(e as Error).message}`,
        );
      }
      const kind = m.kind;
      if (!kind) return fail(Status.INVALID_ARGUMENT, "message has neither hello nor ack");
      if (kind.$case === "hello") {
        if (helloSeen) return fail(Status.INVALID_ARGUMENT, "hello sent twice on one stream");
        helloSeen = true;
        onHello(kind.value).catch((e: unknown) =>
          fail(Status.INTERNAL, `could not admit the agent: ${(e as Error).message}`),
        );
        return;
      }
      // a report may come right after the Welcome, before the credential is sent and acks are taken
      if (kind.$case === "nodeReport") {
        if (agentNode === undefined)
          return fail(Status.FAILED_PRECONDITION, "nodeReport before hello was answered");
        const r = parseNodeReport(kind.value);
        if (!r.ok) log.warn({ node: agentNode, cluster, reason: r.error }, "agent's entry addresses refused");
        else {
          if (kind.value.entryProblem)
            log.warn(
              { node: agentNode, cluster, reason: kind.value.entryProblem.slice(0, 200) },
              "agent reports no entry address",
            );
          this.opts.onEntryAddresses?.(cluster, agentNode, r.value);
        }
        return;
      }
      if (!session) return fail(Status.FAILED_PRECONDITION, "ack before hello was answered");
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
      this.convergence.acked(
        view.key,
        call,
        session.ackedVersion,
        agentNode === undefined ? undefined : this.opts.snapshots.get(view, agentNode).version,
      );
    };
    call.start({ onMessage, onClose: () => cleanup() });
  }

  /** One listener per view: each change starts waiting for the view's agents to ACK it. */
  private trackView(view: View): void {
    if (this.trackedViews.has(view.key)) return;
    this.trackedViews.add(view.key);
    // passive: bookkeeping does not keep a view alive once its agents are gone
    this.opts.snapshots.subscribe(
      view,
      (snap) => {
        const agents: Array<{ key: unknown; acked: string; current: string }> = [];
        for (const [call, a] of this.agents)
          if (a.view.key === view.key)
            agents.push({
              key: call,
              acked: a.session.ackedVersion,
              current: this.opts.snapshots.get(view, a.status.node).version,
            });
        this.convergence.viewChanged(view.key, snap.version, agents);
      },
      { passive: true },
    );
  }

  /** A refused authentication: counted against the limits and the summary, never logged on its own. */
  private refuse(call: Stream, source: string, tokenId: string | undefined, r: Refusal): void {
    this.authGuard.refused(source, tokenId, r, Date.now());
    call.finish(Status.UNAUTHENTICATED, r.message);
  }

  /** One line per source with refusals since the last one (at most a few dozen lines, however many refusals). */
  private logAuthSummary(everyMs: number | undefined): void {
    const intervalS = everyMs === undefined ? undefined : everyMs / 1000;
    for (const line of this.authGuard.drain())
      this.opts.log.warn({ ...line, ...(intervalS ? { intervalS } : {}) }, "agent authentication refused");
  }
}
