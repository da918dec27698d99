/**
 * Boundary: a Kubernetes object (from the API or from YAML) → the hub's
 * model. Every source uses these parsers, so every source rejects bad input
 * the same way: the result names the object and says what to fix; one bad
 * object never disturbs the others.
 */
import { err, ok, type Result } from "@switchyard/lib/errors";
import { ipFamily } from "@switchyard/lib/ip";
import type {
  EndpointSlice,
  KubeKind,
  LabelSelector,
  LocalRedirectPolicy,
  Node,
  Pod,
  PolicyPort,
  Protocol,
  Service,
  ServiceExport,
  ServiceImport,
  ServicePort,
  ServiceType,
  SliceEndpoint,
  SlicePort,
  TrafficDistribution,
} from "../model/types.ts";
import type { ModelObject } from "../model/world.ts";

export type Parsed = { object: ModelObject; warnings: string[] };

type Raw = Record<string, unknown>;

function isObj(v: unknown): v is Raw {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

export const KINDS: readonly KubeKind[] = [
  "Service",
  "EndpointSlice",
  "Node",
  "ServiceExport",
  "ServiceImport",
  "Pod",
  "LocalRedirectPolicy",
];

/** The API group and version of the policy CRDs (deploy/crds/). */
export const POLICY_API = { group: "switchyard.io", version: "v1alpha1" } as const;

/** Annotation that opts a Service into cross-cluster merging; Cilium's name is accepted for migration. */
export const GLOBAL_ANNOTATIONS = ["switchyard.io/global", "service.cilium.io/global"] as const;

/** Annotation that keeps externalTrafficPolicy: Local strict for connects that start on the agent's node. */
export const EXTERNAL_TRAFFIC_STRICT_ANNOTATION = "switchyard.io/external-traffic-strict";

export function describeObject(o: unknown): string {
  if (!isObj(o)) return "object";
  const kind = str(o["kind"]) ?? "object";
  const md = isObj(o["metadata"]) ? o["metadata"] : {};
  const ns = str(md["namespace"]);
  const name = str(md["name"]) ?? "(no name)";
  return ns ? `${kind} ${ns}/${name}` : `${kind} ${name}`;
}

function meta(
  o: Raw,
  namespaced: boolean,
): Result<{
  namespace: string;
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}> {
  const md = o["metadata"];
  if (!isObj(md)) return err("has no metadata");
  const name = str(md["name"]);
  if (!name) return err("has no metadata.name");
  const namespace = namespaced ? (str(md["namespace"]) ?? "default") : "";
  const labels: Record<string, string> = {};
  if (isObj(md["labels"]))
    for (const [k, v] of Object.entries(md["labels"])) if (typeof v === "string") labels[k] = v;
  const annotations: Record<string, string> = {};
  if (isObj(md["annotations"]))
    for (const [k, v] of Object.entries(md["annotations"])) if (typeof v === "string") annotations[k] = v;
  return ok({ namespace, name, labels, annotations });
}

function parseProtocol(v: unknown): Protocol | "SCTP" | undefined {
  const p = v === undefined ? "TCP" : v;
  return p === "TCP" || p === "UDP" || p === "SCTP" ? p : undefined;
}

function validPort(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535;
}

export function parseService(o: Raw, cluster: string): Result<Parsed> {
  const m = meta(o, true);
  if (!m.ok) return err(`${describeObject(o)} ${m.error}`);
  const what = `Service ${m.value.namespace}/${m.value.name} in cluster ${cluster}`;
  const spec = isObj(o["spec"]) ? o["spec"] : {};
  const warnings: string[] = [];
  const type = (str(spec["type"]) ?? "ClusterIP") as ServiceType;
  if (!["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].includes(type)) {
    return err(`${what}: spec.type "${type}" is not ClusterIP, NodePort, LoadBalancer or ExternalName`);
  }
  const rawIPs =
    arr(spec["clusterIPs"]).length > 0
      ? arr(spec["clusterIPs"])
      : spec["clusterIP"] !== undefined
        ? [spec["clusterIP"]]
        : [];
  const headless = rawIPs.length === 1 && rawIPs[0] === "None";
  const clusterIPs: string[] = [];
  if (!headless) {
    for (const ip of rawIPs) {
      if (typeof ip !== "string" || !ipFamily(ip))
        return err(`${what}: spec.clusterIPs holds "${String(ip)}", which is not an IP address`);
      clusterIPs.push(ip);
    }
  }
  const parsedPorts = parseServicePorts(what, spec["ports"], warnings);
  if (!parsedPorts.ok) return parsedPorts;
  const ports = parsedPorts.value;
  const externalIPs: string[] = [];
  for (const ip of arr(spec["externalIPs"])) {
    if (typeof ip === "string" && ipFamily(ip)) externalIPs.push(ip);
    else warnings.push(`${what}: spec.externalIPs holds "${String(ip)}", not an IP address; ignored`);
  }
  const loadBalancerIPs: string[] = [];
  const status = isObj(o["status"]) ? o["status"] : {};
  const lb = isObj(status["loadBalancer"]) ? status["loadBalancer"] : {};
  for (const ing of arr(lb["ingress"])) {
    const ip = isObj(ing) ? str(ing["ip"]) : undefined;
    if (ip && ipFamily(ip)) loadBalancerIPs.push(ip);
  }
  const affinity = parseAffinity(what, spec);
  if (!affinity.ok) return affinity;
  const td = spec["trafficDistribution"];
  let trafficDistribution: TrafficDistribution = "";
  if (td === "PreferClose" || td === "PreferSameZone") trafficDistribution = "PreferSameZone";
  else if (td === "PreferSameNode") trafficDistribution = "PreferSameNode";
  else if (td !== undefined)
    warnings.push(
      `${what}: spec.trafficDistribution "${String(td)}" is not PreferClose, PreferSameZone or PreferSameNode; ignored`,
    );
  const globalValue = GLOBAL_ANNOTATIONS.map((a) => m.value.annotations[a]).find((v) => v !== undefined);
  if (globalValue !== undefined && globalValue !== "true" && globalValue !== "false")
    warnings.push(`${what}: annotation switchyard.io/global is "${globalValue}"; write "true" or "false"`);
  const strictValue = m.value.annotations[EXTERNAL_TRAFFIC_STRICT_ANNOTATION];
  if (strictValue !== undefined && strictValue !== "true" && strictValue !== "false")
    warnings.push(
      `${what}: annotation ${EXTERNAL_TRAFFIC_STRICT_ANNOTATION} is "${strictValue}"; write "true" or "false" (taken as "false")`,
    );
  else if (strictValue === "true" && spec["externalTrafficPolicy"] !== "Local")
    warnings.push(
      `${what}: annotation ${EXTERNAL_TRAFFIC_STRICT_ANNOTATION} has no effect: spec.externalTrafficPolicy is not Local`,
    );
  const svc: Service = {
    cluster,
    namespace: m.value.namespace,
    name: m.value.name,
    type,
    clusterIPs,
    headless,
    ports,
    externalIPs,
    loadBalancerIPs,
    externalTrafficLocal: spec["externalTrafficPolicy"] === "Local",
    internalTrafficLocal: spec["internalTrafficPolicy"] === "Local",
    externalTrafficStrict: strictValue === "true",
    affinityTimeoutSeconds: affinity.value,
    global: globalValue === "true",
    trafficDistribution,
  };
  return ok({ object: { kind: "Service", value: svc }, warnings });
}

function parseServicePorts(what: string, raw: unknown, warnings: string[]): Result<ServicePort[]> {
  const ports: ServicePort[] = [];
  const names = new Set<string>();
  for (const [i, p] of arr(raw).entries()) {
    if (!isObj(p)) return err(`${what}: spec.ports[${i}] is not an object`);
    const name = str(p["name"]) ?? "";
    if (!validPort(p["port"]))
      return err(`${what}: spec.ports[${i}].port ${String(p["port"])} is not a port number 1-65535`);
    const protocol = parseProtocol(p["protocol"]);
    if (!protocol)
      return err(`${what}: spec.ports[${i}].protocol "${String(p["protocol"])}" is not TCP, UDP or SCTP`);
    if (protocol === "SCTP") {
      warnings.push(
        `${what}: port ${name || p["port"]} is SCTP, which socket-level resolution does not handle; port ignored`,
      );
      continue;
    }
    const key = `${name}/${protocol}`;
    if (names.has(key))
      return err(`${what}: two ports are named "${name}" for ${protocol}; port names must be unique`);
    names.add(key);
    const nodePort = p["nodePort"];
    ports.push({ name, port: p["port"], protocol, nodePort: validPort(nodePort) ? nodePort : undefined });
  }
  return ok(ports);
}

/** sessionAffinity + sessionAffinityConfig → timeout seconds (0 = none). */
function parseAffinity(what: string, spec: Raw): Result<number> {
  if (spec["sessionAffinity"] === "ClientIP") {
    const cfg = isObj(spec["sessionAffinityConfig"]) ? spec["sessionAffinityConfig"] : {};
    const cip = isObj(cfg["clientIP"]) ? cfg["clientIP"] : {};
    const t = cip["timeoutSeconds"] ?? 10800;
    if (typeof t !== "number" || !Number.isInteger(t) || t < 1 || t > 86400) {
      return err(`${what}: sessionAffinityConfig.clientIP.timeoutSeconds ${String(t)} must be 1-86400`);
    }
    return ok(t);
  }
  if (spec["sessionAffinity"] !== undefined && spec["sessionAffinity"] !== "None")
    return err(`${what}: sessionAffinity "${String(spec["sessionAffinity"])}" is not None or ClientIP`);
  return ok(0);
}

function parseConditions(c: unknown): { ready: boolean; serving: boolean; terminating: boolean } {
  const cond = isObj(c) ? c : {};
  // Absent ready means ready (API docs); serving defaults to ready.
  const ready = cond["ready"] !== false;
  const serving = typeof cond["serving"] === "boolean" ? cond["serving"] : ready;
  const terminating = cond["terminating"] === true;
  return { ready, serving, terminating };
}

export function parseEndpointSlice(o: Raw, cluster: string): Result<Parsed> {
  const m = meta(o, true);
  if (!m.ok) return err(`${describeObject(o)} ${m.error}`);
  const what = `EndpointSlice ${m.value.namespace}/${m.value.name} in cluster ${cluster}`;
  const service = m.value.labels["kubernetes.io/service-name"];
  if (!service)
    return err(`${what} has no kubernetes.io/service-name label, so it belongs to no Service; add the label`);
  const addressType = str(o["addressType"]);
  if (addressType === "FQDN") {
    return err(`${what}: addressType FQDN is not resolvable at the socket; use IPv4 or IPv6 slices`);
  }
  if (addressType !== "IPv4" && addressType !== "IPv6")
    return err(`${what}: addressType "${String(addressType)}" is not IPv4 or IPv6`);
  const warnings: string[] = [];
  const ports: SlicePort[] = [];
  for (const [i, p] of arr(o["ports"]).entries()) {
    if (!isObj(p)) return err(`${what}: ports[${i}] is not an object`);
    if (!validPort(p["port"])) {
      warnings.push(
        `${what}: ports[${i}] (${str(p["name"]) ?? "unnamed"}) has no valid port number; port ignored`,
      );
      continue;
    }
    const protocol = parseProtocol(p["protocol"]);
    if (!protocol || protocol === "SCTP") continue;
    ports.push({ name: str(p["name"]) ?? "", port: p["port"], protocol });
  }
  const endpoints: SliceEndpoint[] = [];
  const family = addressType === "IPv4" ? 4 : 6;
  for (const [i, e] of arr(o["endpoints"]).entries()) {
    if (!isObj(e)) return err(`${what}: endpoints[${i}] is not an object`);
    const addresses = arr(e["addresses"]).filter((a): a is string => typeof a === "string");
    const bad = addresses.find((a) => ipFamily(a) !== family);
    if (bad !== undefined || addresses.length === 0) {
      warnings.push(
        `${what}: endpoints[${i}] address "${bad ?? ""}" is not an ${addressType} address; endpoint ignored`,
      );
      continue;
    }
    const hints = isObj(e["hints"]) ? e["hints"] : undefined;
    const forZones = hints
      ? arr(hints["forZones"])
          .map((z) => (isObj(z) ? str(z["name"]) : undefined))
          .filter((z): z is string => z !== undefined)
      : undefined;
    endpoints.push({
      addresses,
      nodeName: str(e["nodeName"]),
      ...parseConditions(e["conditions"]),
      zone: str(e["zone"]),
      forZones,
    });
  }
  const slice: EndpointSlice = {
    cluster,
    namespace: m.value.namespace,
    name: m.value.name,
    service,
    addressType,
    ports,
    endpoints,
  };
  return ok({ object: { kind: "EndpointSlice", value: slice }, warnings });
}

export function parseNode(o: Raw, cluster: string): Result<Parsed> {
  const m = meta(o, false);
  if (!m.ok) return err(`${describeObject(o)} ${m.error}`);
  const status = isObj(o["status"]) ? o["status"] : {};
  const addresses: string[] = [];
  for (const a of arr(status["addresses"])) {
    if (!isObj(a)) continue;
    const t = str(a["type"]);
    const ip = str(a["address"]);
    if ((t === "InternalIP" || t === "ExternalIP") && ip && ipFamily(ip)) addresses.push(ip);
  }
  const zone = m.value.labels["topology.kubernetes.io/zone"];
  // labels are kept for policies' nodeSelector
  const node: Node = { cluster, name: m.value.name, addresses, zone, labels: m.value.labels };
  return ok({ object: { kind: "Node", value: node }, warnings: [] });
}

export function parseServiceExport(o: Raw, cluster: string): Result<Parsed> {
  const m = meta(o, true);
  if (!m.ok) return err(`${describeObject(o)} ${m.error}`);
  const value: ServiceExport = { cluster, namespace: m.value.namespace, name: m.value.name };
  return ok({ object: { kind: "ServiceExport", value }, warnings: [] });
}

export function parseServiceImport(o: Raw, cluster: string): Result<Parsed> {
  const m = meta(o, true);
  if (!m.ok) return err(`${describeObject(o)} ${m.error}`);
  const what = `ServiceImport ${m.value.namespace}/${m.value.name} in cluster ${cluster}`;
  const spec = isObj(o["spec"]) ? o["spec"] : {};
  const type = spec["type"] ?? "ClusterSetIP";
  if (type !== "ClusterSetIP" && type !== "Headless")
    return err(`${what}: spec.type "${String(type)}" is not ClusterSetIP or Headless`);
  const warnings: string[] = [];
  const ips: string[] = [];
  if (type === "ClusterSetIP") {
    for (const ip of arr(spec["ips"])) {
      if (typeof ip !== "string" || !ipFamily(ip))
        return err(`${what}: spec.ips holds "${String(ip)}", which is not an IP address`);
      ips.push(ip);
    }
  }
  const ports = parseServicePorts(what, spec["ports"], warnings);
  if (!ports.ok) return ports;
  const affinity = parseAffinity(what, spec);
  if (!affinity.ok) return affinity;
  const value: ServiceImport = {
    cluster,
    namespace: m.value.namespace,
    name: m.value.name,
    ips,
    headless: type === "Headless",
    ports: ports.value.map((p) => ({ ...p, nodePort: undefined })),
    affinityTimeoutSeconds: affinity.value,
  };
  return ok({ object: { kind: "ServiceImport", value }, warnings });
}

/** Parses any supported kind; unknown kinds return undefined (not ours to judge). */
export function parseKubeObject(o: unknown, cluster: string): Result<Parsed> | undefined {
  if (!isObj(o)) return err("document is not a Kubernetes object");
  switch (o["kind"]) {
    case "Service":
      return parseService(o, cluster);
    case "EndpointSlice":
      return parseEndpointSlice(o, cluster);
    case "Node":
      return parseNode(o, cluster);
    case "ServiceExport":
      return parseServiceExport(o, cluster);
    case "ServiceImport":
      return parseServiceImport(o, cluster);
    case "Pod":
      return parsePod(o, cluster);
    case "LocalRedirectPolicy":
      return parseLocalRedirectPolicy(o, cluster);
    default:
      return undefined;
  }
}

// ---- Pods ----

/**
 * The fields of a Pod the hub reads (parsePod), in the API's own shape: an
 * informer keeps this instead of the whole object, so 100k Pods cost a few
 * hundred bytes each (measured in bench/pod-memory.ts) and not the
 * ~5-20 KB of a full Pod. Works on plain JSON and on client-node's model
 * classes (timestamps as Date).
 */
export function compactPod(o: unknown): Raw {
  if (!isObj(o)) return {};
  const md = isObj(o["metadata"]) ? o["metadata"] : {};
  const spec = isObj(o["spec"]) ? o["spec"] : {};
  const status = isObj(o["status"]) ? o["status"] : {};
  const ports: Raw[] = [];
  for (const c of arr(spec["containers"]))
    for (const p of isObj(c) ? arr(c["ports"]) : [])
      if (isObj(p) && typeof p["name"] === "string")
        ports.push({ name: p["name"], containerPort: p["containerPort"], protocol: p["protocol"] });
  const ready = arr(status["conditions"]).find((c) => isObj(c) && c["type"] === "Ready") as Raw | undefined;
  const deletion = md["deletionTimestamp"];
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: md["name"],
      namespace: md["namespace"],
      uid: md["uid"],
      resourceVersion: md["resourceVersion"],
      ...(isObj(md["labels"]) ? { labels: md["labels"] } : {}),
      ...(deletion !== undefined && deletion !== null ? { deletionTimestamp: String(deletion) } : {}),
    },
    spec: {
      nodeName: spec["nodeName"],
      ...(ports.length ? { containers: [{ name: "", ports }] } : {}),
    },
    status: {
      podIPs: arr(status["podIPs"]).map((x) => (isObj(x) ? { ip: x["ip"] } : x)),
      ...(status["podIP"] !== undefined ? { podIP: status["podIP"] } : {}),
      ...(ready ? { conditions: [{ type: "Ready", status: ready["status"] }] } : {}),
    },
  };
}

export function parsePod(o: Raw, cluster: string): Result<Parsed> {
  const m = meta(o, true);
  if (!m.ok) return err(`${describeObject(o)} ${m.error}`);
  const what = `Pod ${m.value.namespace}/${m.value.name} in cluster ${cluster}`;
  const md = o["metadata"] as Raw;
  const spec = isObj(o["spec"]) ? o["spec"] : {};
  const status = isObj(o["status"]) ? o["status"] : {};
  const warnings: string[] = [];
  const ips: string[] = [];
  const rawIPs = arr(status["podIPs"]).map((x) => (isObj(x) ? x["ip"] : x));
  if (rawIPs.length === 0 && status["podIP"] !== undefined) rawIPs.push(status["podIP"]);
  for (const ip of rawIPs) {
    if (typeof ip === "string" && ipFamily(ip)) {
      if (!ips.includes(ip)) ips.push(ip);
    } else warnings.push(`${what}: status.podIPs holds "${String(ip)}", not an IP address; ignored`);
  }
  const containerPorts: Pod["containerPorts"] = [];
  for (const c of arr(spec["containers"])) {
    for (const p of isObj(c) ? arr(c["ports"]) : []) {
      if (!isObj(p) || typeof p["name"] !== "string" || p["name"] === "") continue;
      const protocol = parseProtocol(p["protocol"]);
      if (!validPort(p["containerPort"]) || !protocol || protocol === "SCTP") continue;
      containerPorts.push({ name: p["name"], port: p["containerPort"], protocol });
    }
  }
  const ready = arr(status["conditions"]).some(
    (c) => isObj(c) && c["type"] === "Ready" && c["status"] === "True",
  );
  const deletion = md["deletionTimestamp"];
  const pod: Pod = {
    cluster,
    namespace: m.value.namespace,
    name: m.value.name,
    uid: str(md["uid"]) ?? "",
    labels: m.value.labels,
    nodeName: str(spec["nodeName"]) || undefined,
    ips,
    ready,
    terminating: deletion !== undefined && deletion !== null,
    containerPorts,
  };
  return ok({ object: { kind: "Pod", value: pod }, warnings });
}

// ---- LocalRedirectPolicy (docs/policies.md) ----

const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const MAX_QOS = 0xffff_ffff;

/** A label selector at `at` (e.g. "spec.backend.selector"); an error says which part is wrong. */
export function parseLabelSelector(v: unknown, at: string): Result<LabelSelector> {
  if (!isObj(v)) return err(`${at} is not an object with matchLabels and/or matchExpressions`);
  const matchLabels: Record<string, string> = {};
  if (v["matchLabels"] !== undefined) {
    if (!isObj(v["matchLabels"])) return err(`${at}.matchLabels is not a map of label to value`);
    for (const [k, val] of Object.entries(v["matchLabels"])) {
      if (k === "") return err(`${at}.matchLabels has an empty label name`);
      if (typeof val !== "string") return err(`${at}.matchLabels["${k}"] is not a string; quote it`);
      matchLabels[k] = val;
    }
  }
  const matchExpressions: LabelSelector["matchExpressions"] = [];
  if (v["matchExpressions"] !== undefined && !Array.isArray(v["matchExpressions"]))
    return err(`${at}.matchExpressions is not a list`);
  for (const [i, e] of arr(v["matchExpressions"]).entries()) {
    const eat = `${at}.matchExpressions[${i}]`;
    if (!isObj(e)) return err(`${eat} is not an object`);
    const key = str(e["key"]);
    if (!key) return err(`${eat} has no key`);
    const op = e["operator"];
    if (op !== "In" && op !== "NotIn" && op !== "Exists" && op !== "DoesNotExist")
      return err(`${eat}.operator "${String(op)}" is not In, NotIn, Exists or DoesNotExist`);
    const values = arr(e["values"]);
    if (!values.every((x) => typeof x === "string"))
      return err(`${eat}.values holds a value that is not a string`);
    if ((op === "In" || op === "NotIn") && values.length === 0)
      return err(`${eat}: operator ${op} needs at least one value`);
    if ((op === "Exists" || op === "DoesNotExist") && values.length > 0)
      return err(`${eat}: operator ${op} takes no values`);
    matchExpressions.push({ key, operator: op, values: values as string[] });
  }
  return ok({ matchLabels, matchExpressions });
}

function selectorIsEmpty(s: LabelSelector): boolean {
  return Object.keys(s.matchLabels).length === 0 && s.matchExpressions.length === 0;
}

/** The identity of a policy object, even of one that does not parse (for its status). */
export function policyIdentity(
  o: unknown,
): { namespace: string; name: string; uid: string; generation: number } | undefined {
  if (!isObj(o) || !isObj(o["metadata"])) return undefined;
  const md = o["metadata"];
  const name = str(md["name"]);
  if (!name) return undefined;
  const g = md["generation"];
  return {
    namespace: str(md["namespace"]) ?? "default",
    name,
    uid: str(md["uid"]) ?? "",
    generation: typeof g === "number" && Number.isInteger(g) && g >= 0 ? g : 0,
  };
}

/**
 * A LocalRedirectPolicy, every rule of docs/policies.md checked (the hub
 * checks them itself: a directory cluster has no API server to run the
 * CRD's schema). An error names the policy and says what to fix.
 */
export function parseLocalRedirectPolicy(o: Raw, cluster: string): Result<Parsed> {
  const m = meta(o, true);
  if (!m.ok) return err(`${describeObject(o)} ${m.error}`);
  const what = `LocalRedirectPolicy ${m.value.namespace}/${m.value.name} in cluster ${cluster}`;
  const bad = (msg: string) => err(`${what}: ${msg}`);
  const md = o["metadata"] as Raw;
  if (o["apiVersion"] !== undefined && o["apiVersion"] !== `${POLICY_API.group}/${POLICY_API.version}`)
    return bad(`apiVersion "${String(o["apiVersion"])}" is not ${POLICY_API.group}/${POLICY_API.version}`);
  const spec = o["spec"];
  if (!isObj(spec)) return bad("has no spec; give spec.frontend and spec.backend");
  const fe = spec["frontend"];
  if (!isObj(fe)) return bad("has no spec.frontend; give frontend.service or frontend.address");
  const hasService = fe["service"] !== undefined && fe["service"] !== null;
  const hasAddress = fe["address"] !== undefined && fe["address"] !== null;
  if (hasService && hasAddress) return bad("frontend has both service and address; give exactly one");
  if (!hasService && !hasAddress) return bad("frontend has neither service nor address; give exactly one");
  let frontend: LocalRedirectPolicy["frontend"];
  /** the frontend's port names that need a toPorts entry, with their protocol when known */
  const needNames: Array<{ name: string; protocol: Protocol | undefined }> = [];
  if (hasService) {
    const s = fe["service"];
    if (!isObj(s)) return bad("frontend.service is not an object with name and ports");
    const name = str(s["name"]);
    if (!name || !DNS_LABEL.test(name))
      return bad(
        `frontend.service.name "${String(s["name"] ?? "")}" is not a Service name of this namespace`,
      );
    if (s["ports"] !== undefined && !Array.isArray(s["ports"]))
      return bad("frontend.service.ports is not a list of port names or numbers");
    const ports: Array<{ name: string } | { port: number }> = [];
    const seen = new Set<string>();
    for (const [i, p] of arr(s["ports"]).entries()) {
      let key: string;
      if (typeof p === "number") {
        if (!validPort(p)) return bad(`frontend.service.ports[${i}] ${p} is not a port number 1-65535`);
        ports.push({ port: p });
        key = String(p);
      } else if (typeof p === "string" && p !== "") {
        ports.push({ name: p });
        needNames.push({ name: p, protocol: undefined });
        key = p;
      } else return bad(`frontend.service.ports[${i}] is not a port name or number`);
      if (seen.has(key)) return bad(`frontend.service.ports names ${key} twice`);
      seen.add(key);
    }
    frontend = { kind: "service", service: name, ports };
  } else {
    const a = fe["address"];
    if (!isObj(a)) return bad("frontend.address is not an object with ip and ports");
    const ip = str(a["ip"]);
    if (!ip || !ipFamily(ip))
      return bad(`frontend.address.ip "${String(a["ip"] ?? "")}" is not an IP address`);
    const ports = parsePolicyPorts(a["ports"], "frontend.address.ports");
    if (!ports.ok) return bad(ports.error);
    if (ports.value.length === 0) return bad("frontend.address.ports is empty; give at least one port");
    for (const p of ports.value) needNames.push({ name: p.name, protocol: p.protocol });
    const fb = a["fallbackService"];
    if (fb !== undefined && fb !== null && fb !== "" && (typeof fb !== "string" || !DNS_LABEL.test(fb)))
      return bad(`frontend.address.fallbackService "${String(fb)}" is not a Service name of this namespace`);
    frontend = {
      kind: "address",
      ip,
      ports: ports.value,
      fallbackService: typeof fb === "string" && fb !== "" ? fb : undefined,
    };
  }
  const be = spec["backend"];
  if (!isObj(be)) return bad("has no spec.backend; give backend.selector and backend.toPorts");
  if (be["selector"] === undefined)
    return bad("backend has no selector; give the pods' labels in backend.selector");
  const selector = parseLabelSelector(be["selector"], "backend.selector");
  if (!selector.ok) return bad(selector.error);
  if (selectorIsEmpty(selector.value))
    return bad("backend.selector is empty and would select every pod; give matchLabels or matchExpressions");
  if (!Array.isArray(be["toPorts"]) || be["toPorts"].length === 0)
    return bad("backend.toPorts is empty; give one entry per frontend port, paired by name");
  const toPorts: LocalRedirectPolicy["backend"]["toPorts"] = [];
  const toNames = new Map<string, Protocol>();
  for (const [i, p] of be["toPorts"].entries()) {
    const at = `backend.toPorts[${i}]`;
    if (!isObj(p)) return bad(`${at} is not an object with name, port and protocol`);
    const name = str(p["name"]);
    if (!name) return bad(`${at} has no name; name it after the frontend port it pairs with`);
    if (toNames.has(name)) return bad(`backend.toPorts names "${name}" twice; names must be unique`);
    const protocol = parseProtocol(p["protocol"]);
    if (!protocol || protocol === "SCTP")
      return bad(`${at}.protocol "${String(p["protocol"])}" is not TCP or UDP`);
    const port = p["port"];
    if (typeof port === "string" && /^[0-9]+$/.test(port)) {
      const n = Number(port);
      if (!validPort(n)) return bad(`${at}.port ${port} is not a port number 1-65535`);
      toPorts.push({ name, port: n, targetName: undefined, protocol });
    } else if (typeof port === "string") {
      if (port.length > 15 || !PORT_NAME.test(port))
        return bad(`${at}.port "${port}" is neither a port number nor a container port name`);
      toPorts.push({ name, port: 0, targetName: port, protocol });
    } else if (validPort(port)) toPorts.push({ name, port, targetName: undefined, protocol });
    else return bad(`${at}.port ${String(port)} is not a port number 1-65535 or a container port name`);
    toNames.set(name, protocol);
  }
  for (const n of needNames) {
    const proto = toNames.get(n.name);
    if (proto === undefined)
      return bad(`frontend port "${n.name}" has no backend.toPorts entry named "${n.name}"; add one`);
    if (n.protocol !== undefined && n.protocol !== proto)
      return bad(`frontend port "${n.name}" is ${n.protocol} but its backend.toPorts entry is ${proto}`);
  }
  const skip = spec["skipRedirectFromBackend"];
  if (skip !== undefined && typeof skip !== "boolean")
    return bad(`skipRedirectFromBackend "${String(skip)}" is not true or false`);
  let qosPerSecond = 0;
  if (spec["qos"] !== undefined && spec["qos"] !== null) {
    const q = spec["qos"];
    if (!isObj(q)) return bad("qos is not an object with redirectsPerSecond");
    const r = q["redirectsPerSecond"] ?? 0;
    if (typeof r !== "number" || !Number.isInteger(r) || r < 0 || r > MAX_QOS)
      return bad(`qos.redirectsPerSecond ${String(r)} is not a whole number from 0 (no limit) to ${MAX_QOS}`);
    qosPerSecond = r;
  }
  let nodeSelector: LabelSelector | undefined;
  if (spec["nodeSelector"] !== undefined && spec["nodeSelector"] !== null) {
    const ns = parseLabelSelector(spec["nodeSelector"], "nodeSelector");
    if (!ns.ok) return bad(ns.error);
    nodeSelector = ns.value;
  }
  const g = md["generation"];
  const created = md["creationTimestamp"];
  const value: LocalRedirectPolicy = {
    cluster,
    namespace: m.value.namespace,
    name: m.value.name,
    uid: str(md["uid"]) ?? "",
    generation: typeof g === "number" && Number.isInteger(g) && g >= 0 ? g : 0,
    // a Date from client-node's model classes, a string from JSON and YAML
    createdAt: created instanceof Date ? created.toISOString() : (str(created) ?? ""),
    frontend,
    backend: { selector: selector.value, toPorts },
    skipRedirectFromBackend: skip === true,
    qosPerSecond,
    nodeSelector,
  };
  return ok({ object: { kind: "LocalRedirectPolicy", value }, warnings: [] });
}

/** An address frontend's ports: name (unique), port, protocol; one port+protocol once. */
function parsePolicyPorts(v: unknown, at: string): Result<PolicyPort[]> {
  if (!Array.isArray(v)) return err(`${at} is not a list of {name, port, protocol}`);
  const out: PolicyPort[] = [];
  const names = new Set<string>();
  const numbers = new Set<string>();
  for (const [i, p] of v.entries()) {
    if (!isObj(p)) return err(`${at}[${i}] is not an object with name, port and protocol`);
    const name = str(p["name"]);
    if (!name) return err(`${at}[${i}] has no name; name it (backend.toPorts pairs with it by name)`);
    if (names.has(name)) return err(`${at} names "${name}" twice; names must be unique`);
    if (!validPort(p["port"]))
      return err(`${at}[${i}].port ${String(p["port"])} is not a port number 1-65535`);
    const protocol = parseProtocol(p["protocol"]);
    if (!protocol || protocol === "SCTP")
      return err(`${at}[${i}].protocol "${String(p["protocol"])}" is not TCP or UDP`);
    const key = `${p["port"]}/${protocol}`;
    if (numbers.has(key)) return err(`${at} holds ${key} twice`);
    names.add(name);
    numbers.add(key);
    out.push({ name, port: p["port"], protocol });
  }
  return ok(out);
}
