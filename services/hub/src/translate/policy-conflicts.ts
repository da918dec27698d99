/**
 * Pure: the one conflict space of both policy kinds (LocalRedirectPolicy and
 * BalancingPolicy) in a cluster. Each policy's frontends are resolved
 * against the cluster's Services; conflicts are two policies on one
 * Service, on one address:port, or a Service frontend and an address
 * frontend on the same ClusterIP:port, and two nodeProxy BalancingPolicies
 * on one entry port and protocol. Policies are decided oldest first
 * (createdAt, then namespace/name): a policy wins when nothing it wants is
 * held by an earlier winner, so the winner is never overwritten and, when
 * it goes, the next one takes over. What a winner becomes is the caller's
 * job (translate/local-redirect.ts, translate/balancing.ts).
 */
import { Protocol, type RedirectFrontend } from "@switchyard/proto/assignment";
import type {
  BalancingPolicy,
  LocalRedirectPolicy,
  PolicyKind,
  PolicyVerdict,
  ServicePort,
} from "../model/types.ts";
import type { ClusterState } from "../model/world.ts";
import { entryPortClaims } from "./node-entry.ts";

const PROTO = { TCP: Protocol.PROTOCOL_TCP, UDP: Protocol.PROTOCOL_UDP } as const;

function nsName(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function protoName(p: Protocol): string {
  return p === Protocol.PROTOCOL_UDP ? "UDP" : "TCP";
}

export function showFrontend(f: RedirectFrontend): string {
  return `${f.ip.includes(":") ? `[${f.ip}]` : f.ip}:${f.port}/${protoName(f.protocol)}`;
}

/** Oldest first, then by namespace/name: the order policies are decided in. */
function byAge(
  a: { createdAt: string; namespace: string; name: string },
  b: { createdAt: string; namespace: string; name: string },
): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  const ka = nsName(a.namespace, a.name);
  const kb = nsName(b.namespace, b.name);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

type Resolved =
  | { ok: false; reason: "ServiceNotFound" | "InvalidSpec"; message: string }
  | { ok: true; frontends: RedirectFrontend[]; keys: string[]; notes: string[] };

/** The frontends a policy (of either kind) takes, resolved against the cluster's Services (conflicts aside). */
function resolve(
  p: {
    cluster: string;
    namespace: string;
    frontend: LocalRedirectPolicy["frontend"];
    backend: { toPorts: ReadonlyArray<{ name: string; protocol: ServicePort["protocol"] }> };
  },
  state: ClusterState,
): Resolved {
  const fe = p.frontend;
  const frontends: RedirectFrontend[] = [];
  const keys: string[] = [];
  const notes: string[] = [];
  const toPortOf = (name: string, protocol: ServicePort["protocol"], what: string): string | undefined => {
    const t = p.backend.toPorts.find((x) => x.name === name);
    if (!t)
      return `${what} has no backend.toPorts entry named "${name}": add one (toPorts pair with frontend ports by name)`;
    if (t.protocol !== protocol)
      return `backend.toPorts "${name}" is ${t.protocol} but ${what} is ${protocol}: use the same protocol`;
    return undefined;
  };
  if (fe.kind === "service") {
    const svc = state.services.get(nsName(p.namespace, fe.service));
    if (!svc)
      return {
        ok: false,
        reason: "ServiceNotFound",
        message: `Service ${p.namespace}/${fe.service} does not exist; the policy applies as soon as it does`,
      };
    if (svc.type === "ExternalName" || svc.headless || svc.clusterIPs.length === 0)
      return {
        ok: false,
        reason: "InvalidSpec",
        message: `Service ${p.namespace}/${fe.service} has no ClusterIP (headless or ExternalName): nothing to redirect; name a Service with a ClusterIP or use an address frontend`,
      };
    let ports: ServicePort[];
    if (fe.ports.length === 0) ports = svc.ports;
    else {
      ports = [];
      for (const ref of fe.ports) {
        const hit = svc.ports.filter((sp) => ("name" in ref ? sp.name === ref.name : sp.port === ref.port));
        if (hit.length === 0)
          return {
            ok: false,
            reason: "InvalidSpec",
            message: `Service ${p.namespace}/${fe.service} has no port ${"name" in ref ? `named "${ref.name}"` : `numbered ${ref.port}`}: fix frontend.service.ports (${svc.ports.map((sp) => `${sp.name || "<unnamed>"}=${sp.port}/${sp.protocol}`).join(", ") || "the Service has none"})`,
          };
        for (const sp of hit) if (!ports.includes(sp)) ports.push(sp);
      }
    }
    if (ports.length === 0)
      return {
        ok: false,
        reason: "InvalidSpec",
        message: `Service ${p.namespace}/${fe.service} has no port`,
      };
    const fallbackService = `svc/${p.cluster}/${p.namespace}/${fe.service}`;
    for (const sp of ports) {
      const bad = toPortOf(
        sp.name,
        sp.protocol,
        `Service port ${sp.name || "<unnamed>"} (${sp.port}/${sp.protocol})`,
      );
      if (bad) return { ok: false, reason: "InvalidSpec", message: bad };
      for (const ip of svc.clusterIPs)
        frontends.push({
          ip,
          port: sp.port,
          protocol: PROTO[sp.protocol],
          portName: sp.name,
          fallbackService,
          fallbackPortName: sp.name,
        });
    }
    keys.push(`svc:${nsName(p.namespace, fe.service)}`);
  } else {
    let fallbackService = "";
    if (fe.fallbackService !== undefined) {
      fallbackService = `svc/${p.cluster}/${p.namespace}/${fe.fallbackService}`;
      const fb = state.services.get(nsName(p.namespace, fe.fallbackService));
      if (!fb)
        notes.push(
          `fallback Service ${p.namespace}/${fe.fallbackService} does not exist (yet): connects not redirected are refused until it does`,
        );
      else
        for (const port of fe.ports)
          if (!fb.ports.some((sp) => sp.name === port.name && sp.protocol === port.protocol))
            notes.push(
              `fallback Service ${p.namespace}/${fe.fallbackService} has no ${port.protocol} port named "${port.name}": connects to port ${port.port} not redirected are refused`,
            );
    }
    for (const port of fe.ports) {
      const bad = toPortOf(
        port.name,
        port.protocol,
        `frontend port ${port.name} (${port.port}/${port.protocol})`,
      );
      if (bad) return { ok: false, reason: "InvalidSpec", message: bad };
      frontends.push({
        ip: fe.ip,
        port: port.port,
        protocol: PROTO[port.protocol],
        portName: port.name,
        fallbackService,
        fallbackPortName: fallbackService ? port.name : "",
      });
    }
    if (frontends.length === 0)
      return { ok: false, reason: "InvalidSpec", message: "frontend.address has no port: list at least one" };
  }
  frontends.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port || a.protocol - b.protocol));
  for (const f of frontends) keys.push(`${f.ip}|${f.port}|${f.protocol}`);
  return { ok: true, frontends, keys, notes };
}

/** A Service frontend's key holds the Service; an address:port key is shown as such; a nodeProxy entry port as one. */
function showKey(key: string): string {
  if (key.startsWith("svc:")) return `Service ${key.slice(4)}`;
  if (key.startsWith("entry|")) {
    const [, port, proto] = key.split("|") as [string, string, string];
    return `nodeProxy entry port ${port}/${proto} on this cluster's nodes`;
  }
  const [ip, port, proto] = key.split("|") as [string, string, string];
  return `${ip.includes(":") ? `[${ip}]` : ip}:${port}/${protoName(Number(proto) as Protocol)}`;
}

/** A policy of either kind, as the conflict space decides it. */
export type PolicyItem =
  | { kind: "LocalRedirectPolicy"; p: LocalRedirectPolicy }
  | { kind: "BalancingPolicy"; p: BalancingPolicy };

/** One policy's outcome: a verdict already (not resolved, or in conflict), or won with its frontends. */
export type PolicyDecision =
  | { item: PolicyItem; key: string; won: false; verdict: PolicyVerdict }
  | { item: PolicyItem; key: string; won: true; frontends: RedirectFrontend[]; notes: string[] };

/** A verdict on one policy; `frontends` are shown as address:port/protocol. */
export function policyVerdict(
  item: PolicyItem,
  reason: PolicyVerdict["reason"],
  message: string,
  winner?: string,
  frontends: RedirectFrontend[] = [],
): PolicyVerdict {
  const p = item.p;
  return {
    kind: item.kind,
    cluster: p.cluster,
    namespace: p.namespace,
    name: p.name,
    generation: p.generation,
    reason,
    message,
    winner,
    frontends: frontends.map(showFrontend),
  };
}

/**
 * Decides every policy of both kinds in one pass, oldest first (no Pod is
 * looked at). Returns the decisions in that order and `referenced`: the
 * ns/name of the Services some policy names (frontend or fallback), whose
 * change decides again.
 */
export function decidePolicies(state: ClusterState | undefined): {
  decisions: PolicyDecision[];
  referenced: Set<string>;
} {
  // both kinds in one conflict space, oldest first
  const policies: PolicyItem[] = state
    ? [
        ...[...state.localRedirects.values()].map((p) => ({ kind: "LocalRedirectPolicy" as const, p })),
        ...[...state.balancing.values()].map((p) => ({ kind: "BalancingPolicy" as const, p })),
      ].sort((a, b) => byAge(a.p, b.p))
    : [];
  const claims = new Map<string, { kind: PolicyKind; key: string }>();
  const referenced = new Set<string>();
  const decisions: PolicyDecision[] = [];
  for (const item of policies) {
    const p = item.p;
    const key = nsName(p.namespace, p.name);
    const fe = p.frontend;
    if (fe.kind === "service") referenced.add(nsName(p.namespace, fe.service));
    else if (fe.fallbackService !== undefined) referenced.add(nsName(p.namespace, fe.fallbackService));
    const r = resolve(p, state!);
    if (!r.ok) {
      decisions.push({ item, key, won: false, verdict: policyVerdict(item, r.reason, r.message) });
      continue;
    }
    // a nodeProxy policy also takes its entry ports (translate/node-entry.ts)
    const keys = item.kind === "BalancingPolicy" ? [...r.keys, ...entryPortClaims(item.p)] : r.keys;
    const taken = keys.find((k) => claims.has(k));
    if (taken !== undefined) {
      const h = claims.get(taken)!;
      // a holder of the other kind is named with its kind
      const holder = h.kind === item.kind ? h.key : `${h.kind} ${h.key}`;
      const verdict = policyVerdict(
        item,
        "Conflict",
        `${holder} holds ${showKey(taken)} (the oldest policy wins; then the first by namespace/name); this policy applies when that one goes or lets go`,
        holder,
        r.frontends,
      );
      decisions.push({ item, key, won: false, verdict });
      continue;
    }
    for (const k of keys) claims.set(k, { kind: item.kind, key });
    decisions.push({ item, key, won: true, frontends: r.frontends, notes: r.notes });
  }
  return { decisions, referenced };
}
