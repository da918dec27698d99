/**
 * Pure: "where does IP:PORT go on node N" from the resources the hub sends
 * that node (its view's shared snapshot and its own), the way the agent
 * reads them: LocalRedirectPolicy > BalancingPolicy > Service, ready
 * backends (terminating serving ones only when none is ready), the traffic
 * policies for the node, failover tiers in order. What it cannot find is
 * explained: a refused policy, the address's Service in a cluster outside
 * the node's view, a Service the translator left out.
 */
import type { LookupBackend, LookupMatch, LookupResponse } from "@switchyard/proto/admin";
import {
  type BackendSlice,
  type Endpoint,
  type Frontend,
  type LocalBackends,
  NatMode,
  Protocol,
  RedirectFrontendKind,
  type Resource,
  type ServiceAssignment,
  type SlicePort,
} from "@switchyard/proto/assignment";

export type LookupInput = {
  node: string;
  cluster: string;
  /** the view's clusters, home first */
  view: string[];
  ip: string;
  port: number;
  protocol: "tcp" | "udp";
  /** the node's addresses (its Node object): a NodePort frontend takes these and loopback */
  nodeAddresses: readonly string[];
  /** what the node receives: the view's shared resources and the node's own */
  resources: Iterable<Resource>;
  /** every policy with its verdict (PolicyBook rows) */
  policies: ReadonlyArray<{
    cluster: string;
    kind: string;
    namespace: string;
    name: string;
    frontend: string;
    state: string;
    reason: string;
    message: string;
  }>;
  /** Services with this address in any cluster ("cluster/namespace/name") */
  servicesWithIp: readonly string[];
  /** the translator's notes on a Service resource it left out or trimmed */
  diagnosticsOf: (resourceName: string) => string[];
};

const PROTO = { tcp: Protocol.PROTOCOL_TCP, udp: Protocol.PROTOCOL_UDP } as const;
const MODE: Record<number, string> = {
  [NatMode.NAT_MODE_CLUSTER_IP]: "clusterIP",
  [NatMode.NAT_MODE_NODE_PORT]: "nodePort",
  [NatMode.NAT_MODE_LOAD_BALANCER]: "loadBalancer",
  [NatMode.NAT_MODE_EXTERNAL_IP]: "externalIP",
};

const isLoopback = (ip: string) => ip === "::1" || ip.startsWith("127.");
const sameIp = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

export function computeLookup(q: LookupInput): LookupResponse {
  const services = new Map<string, ServiceAssignment>();
  const slicesOf = new Map<string, BackendSlice[]>();
  const lrps: Array<[string, Extract<Resource["body"], { $case: "localRedirect" }>["value"]]> = [];
  const localBackends = new Map<string, LocalBackends>();
  const bps: Array<[string, Extract<Resource["body"], { $case: "balancing" }>["value"]]> = [];
  const bpNodes = new Set<string>();
  for (const r of q.resources) {
    const b = r.body;
    if (!b) continue;
    if (b.$case === "service") services.set(r.name, b.value);
    else if (b.$case === "backendSlice")
      slicesOf.set(b.value.service, [...(slicesOf.get(b.value.service) ?? []), b.value]);
    else if (b.$case === "localRedirect") lrps.push([r.name, b.value]);
    else if (b.$case === "localBackends") localBackends.set(b.value.policy, b.value);
    else if (b.$case === "balancing") bps.push([r.name, b.value]);
    else if (b.$case === "balancingNode") bpNodes.add(b.value.policy);
  }
  const proto = PROTO[q.protocol];
  const hit = (f: { ip: string; port: number; protocol: Protocol }) =>
    f.port === q.port && f.protocol === proto && sameIp(f.ip, q.ip);
  const matches: LookupMatch[] = [];
  const notes: string[] = [];
  /** BalancingPolicies whose nodeSelector does not take this node */
  const notHere = new Set<string>();

  // 1. LocalRedirectPolicies: this node's ready selected pods, else the fallback
  for (const [name, p] of lrps) {
    const f = p.frontends.find(hit);
    if (!f) continue;
    const lb = localBackends.get(name);
    const port = lb?.ports.find((x) => x.name === f.portName)?.port ?? 0;
    const backends = (lb?.pods ?? []).flatMap((pod) =>
      pod.addresses.map(
        (a): LookupBackend => ({
          address: a,
          port,
          node: q.node,
          ready: pod.ready,
          serving: pod.ready,
          terminating: pod.terminating,
          used: pod.ready && !pod.terminating,
          source: pod.name,
        }),
      ),
    );
    const used = backends.some((b) => b.used);
    matches.push({
      kind: "LocalRedirectPolicy",
      name,
      mode: p.frontendKind === RedirectFrontendKind.REDIRECT_FRONTEND_KIND_ADDRESS ? "address" : "service",
      inForce: false,
      backends,
      reason: used
        ? p.qosPerSecond
          ? `over ${p.qosPerSecond} redirects/s, the rest of that second goes to ${f.fallbackService || "nothing (refused)"}`
          : ""
        : `no ready selected pod on ${q.node}: connects go to ${f.fallbackService ? `the fallback ${f.fallbackService}` : "nothing (refused: no fallback)"}`,
    });
  }
  // 2. BalancingPolicies (with a nodeSelector only where this node is selected)
  for (const [name, p] of bps) {
    const f = p.frontends.find(hit);
    if (!f) continue;
    const applies = !p.selectedNodesOnly || bpNodes.has(name);
    if (!applies) notHere.add(name);
    const port = p.ports.find((x) => x.name === f.portName)?.port ?? 0;
    const backends = markUsed(p.endpoints.flatMap((e) => endpointBackends(e, port, name)));
    matches.push({
      kind: "BalancingPolicy",
      name,
      mode: p.frontendKind === RedirectFrontendKind.REDIRECT_FRONTEND_KIND_ADDRESS ? "address" : "service",
      inForce: false,
      backends: applies ? backends : [],
      reason: !applies
        ? `its nodeSelector does not take ${q.node}: the Service's entry stays`
        : backends.some((b) => b.used)
          ? ""
          : `no ready backend${f.fallbackService ? `: connects go to the Service ${f.fallbackService}` : ": connects are refused"}`,
    });
  }
  // 3. Services
  for (const [name, s] of services) {
    const f = s.frontends.find((x) => serviceFrontendHit(x, q, proto));
    if (!f) continue;
    matches.push(serviceMatch(name, s, f, q, services, slicesOf));
  }

  // the first that holds the frontend entry (a policy's fallback is inside its own entry)
  const winner = matches.find((m) => !notHere.has(m.name));
  if (winner) winner.inForce = true;
  for (const m of matches)
    if (!m.inForce && m !== winner && !m.reason) m.reason = `shadowed by ${winner?.name}`;

  const dest = `${q.ip.includes(":") ? `[${q.ip}]` : q.ip}:${q.port}/${q.protocol}`;
  for (const p of q.policies) {
    if (p.state === "Accepted" || !p.frontend.includes(q.ip)) continue;
    notes.push(
      `${p.kind} ${p.cluster}/${p.namespace}/${p.name} (${p.frontend}) is not in force: ${p.reason}${p.message ? ` — ${p.message}` : ""}`,
    );
  }
  if (matches.length === 0) {
    const outside = q.servicesWithIp.filter((s) => !q.view.includes(s.split("/")[0]!));
    for (const s of outside)
      notes.push(
        `Service ${s} has this address, but cluster ${s.split("/")[0]} is not in ${q.node}'s view (${q.view.join(", ")}); import it (clusters[].imports of ${q.cluster}) or make the Service global`,
      );
    for (const s of q.servicesWithIp.filter((x) => q.view.includes(x.split("/")[0]!))) {
      const [c, ns, n] = s.split("/");
      const why = q.diagnosticsOf(`svc/${c}/${ns}/${n}`);
      notes.push(
        `Service ${s} has this address but no frontend ${dest}${why.length ? `: ${why.join("; ")}` : " (another port or protocol)"}`,
      );
    }
  }
  return {
    cluster: q.cluster,
    view: q.view,
    matches,
    notes,
    answer: answerOf(dest, q.node, winner),
  };
}

function serviceFrontendHit(f: Frontend, q: LookupInput, proto: Protocol): boolean {
  if (f.port !== q.port || f.protocol !== proto) return false;
  if (f.mode === NatMode.NAT_MODE_NODE_PORT)
    return isLoopback(q.ip) || q.nodeAddresses.some((a) => sameIp(a, q.ip));
  return sameIp(f.ip, q.ip);
}

function endpointBackends(e: Endpoint, port: number, source: string): LookupBackend[] {
  return e.addresses.map((a) => ({
    address: a,
    port,
    node: e.nodeName,
    ready: e.ready,
    serving: e.serving,
    terminating: e.terminating,
    used: false,
    source,
  }));
}

/** ready ones; only when none is ready, the serving terminating ones (as Kubernetes does) */
function markUsed(
  list: LookupBackend[],
  filter: (b: LookupBackend) => boolean = () => true,
): LookupBackend[] {
  const ok = list.filter(filter);
  const ready = ok.filter((b) => b.ready);
  const chosen = new Set(ready.length > 0 ? ready : ok.filter((b) => b.serving && b.terminating));
  return list.map((b) => ({ ...b, used: chosen.has(b) }));
}

function serviceMatch(
  name: string,
  s: ServiceAssignment,
  f: Frontend,
  q: LookupInput,
  services: ReadonlyMap<string, ServiceAssignment>,
  slicesOf: ReadonlyMap<string, BackendSlice[]>,
): LookupMatch {
  const mode = MODE[f.mode] ?? "clusterIP";
  const external = mode !== "clusterIP";
  const localOnly = external ? s.externalTrafficLocal && s.externalTrafficStrict : s.internalTrafficLocal;
  const tiers = s.backendTiers.length > 0 ? s.backendTiers.map((t) => t.services) : [[name]];
  const backends: LookupBackend[] = [];
  let decided = false;
  let reason = "";
  for (const tier of tiers) {
    const list = tier.flatMap((svc) =>
      (slicesOf.get(svc) ?? []).flatMap((sl) => {
        const port = portOf(sl.ports, f.portName);
        return port === undefined ? [] : sl.endpoints.flatMap((e) => endpointBackends(e, port, svc));
      }),
    );
    const marked = markUsed(list, (b) => !localOnly || b.node === q.node);
    const usable = !decided && marked.some((b) => b.used);
    backends.push(...marked.map((b) => ({ ...b, used: usable && b.used })));
    if (usable) decided = true;
  }
  if (!decided) {
    const missing = tiers.flat().filter((t) => !services.has(t) && t !== name);
    if (backends.length === 0)
      reason = `no endpoints${missing.length ? ` (not in this view: ${missing.join(", ")})` : ""}: connects are refused`;
    else if (localOnly)
      reason = `no ready endpoint on ${q.node} (${external ? "externalTrafficPolicy: Local, strict" : "internalTrafficPolicy: Local"}): connects are refused`;
    else reason = `no ready endpoints (${backends.length} not ready): connects are refused`;
  } else if (tiers.length > 1 && !backends.some((b) => b.used && tiers[0]!.includes(b.source)))
    reason = `failed over: no ready endpoint in ${tiers[0]!.join(", ")}`;
  return { kind: "Service", name, mode, inForce: false, backends, reason };
}

function portOf(ports: readonly SlicePort[], name: string): number | undefined {
  return ports.find((p) => p.name === name)?.port;
}

function answerOf(dest: string, node: string, m: LookupMatch | undefined): string {
  if (!m) return `${dest} is not a frontend on ${node}: connects go to ${dest} itself, untranslated`;
  const used = m.backends.filter((b) => b.used);
  if (used.length === 0) return `${dest} on ${node} → ${m.kind} ${m.name}: ${m.reason}`;
  const list = used.map((b) => `${b.address.includes(":") ? `[${b.address}]` : b.address}:${b.port}`);
  return `${dest} on ${node} → ${m.kind} ${m.name} → ${list.join(", ")}${m.reason ? ` (${m.reason})` : ""}`;
}
