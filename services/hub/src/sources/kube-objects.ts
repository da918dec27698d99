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
  Node,
  Pod,
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
import {
  arr,
  describeObject,
  isObj,
  meta,
  parseProtocol,
  type Raw,
  str,
  validPort,
} from "./object-fields.ts";
import { parseBalancingPolicy, parseLocalRedirectPolicy } from "./policy-objects.ts";

export type Parsed = { object: ModelObject; warnings: string[] };

export const KINDS: readonly KubeKind[] = [
  "Service",
  "EndpointSlice",
  "Node",
  "ServiceExport",
  "ServiceImport",
  "Pod",
  "LocalRedirectPolicy",
  "BalancingPolicy",
];

/** Annotation that opts a Service into cross-cluster merging; Cilium's name is accepted for migration. */
export const GLOBAL_ANNOTATIONS = ["switchyard.io/global", "service.cilium.io/global"] as const;

/** Node annotation: the node's entry addresses (comma-separated v4 and/or v6) for BalancingPolicy nodeProxy backends. */
export const ENTRY_ADDRESSES_ANNOTATION = "switchyard.io/entry-addresses";

/** Annotation that keeps externalTrafficPolicy: Local strict for connects that start on the agent's node. */
export const EXTERNAL_TRAFFIC_STRICT_ANNOTATION = "switchyard.io/external-traffic-strict";

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
  const warnings: string[] = [];
  const entry = m.value.annotations[ENTRY_ADDRESSES_ANNOTATION];
  const entryAddresses: string[] = [];
  if (entry !== undefined)
    for (const a of entry.split(",").map((x) => x.trim())) {
      if (a !== "" && ipFamily(a)) {
        if (!entryAddresses.includes(a)) entryAddresses.push(a);
      } else
        warnings.push(
          `Node ${m.value.name} in cluster ${cluster}: annotation ${ENTRY_ADDRESSES_ANNOTATION} holds "${a}", not an IP address; ignored (give comma-separated IPv4 and/or IPv6 addresses)`,
        );
    }
  // labels are kept for policies' nodeSelector
  const node: Node = {
    cluster,
    name: m.value.name,
    addresses,
    zone,
    labels: m.value.labels,
    ...(entryAddresses.length > 0 ? { entryAddresses } : {}),
  };
  return ok({ object: { kind: "Node", value: node }, warnings });
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
    case "BalancingPolicy":
      return parseBalancingPolicy(o, cluster);
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
