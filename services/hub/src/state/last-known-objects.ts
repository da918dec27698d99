/**
 * A cluster's model objects as the JSON of its last known state record
 * (state/last-known.ts): encoded in a fixed order from a per-object cache,
 * and parsed back as external input — every object checked, the first bad
 * one refuses the record with where and what.
 */
import { err, ok, type Result } from "@switchyard/lib/errors";
import { ipFamily } from "@switchyard/lib/ip";
import type {
  BalancingPolicy,
  EndpointSlice,
  LabelSelector,
  LocalRedirectPolicy,
  Node,
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
import { type ModelObject, objectKey } from "../model/world.ts";

/**
 * Each model object's JSON (`{"kind":…,"value":…}`), kept while the object
 * lives: the World replaces an object when it changes, so a save under churn
 * encodes only what changed — not 20,000 objects on the hub's main thread
 * every few seconds (bench:protocol's tail showed those stalls). Owned here,
 * used only by `encodeLastKnownObjects`.
 */
const objectJson = new WeakMap<object, string>();

function jsonOf(o: ModelObject): string {
  let j = objectJson.get(o.value);
  if (j === undefined) {
    j = JSON.stringify({ kind: o.kind, value: o.value });
    objectJson.set(o.value, j);
  }
  return j;
}

/** A cluster's objects as JSON, in a fixed order (equal states give equal bytes, on every replica). */
export function encodeLastKnownObjects(objects: readonly ModelObject[]): Buffer {
  const sorted = objects
    .map((o) => ({ o, k: `${o.kind}/${objectKey(o)}` }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  // byte for byte JSON.stringify({ objects: sorted }), from each object's cached JSON
  return Buffer.from(`{"objects":[${sorted.map((x) => jsonOf(x.o)).join(",")}]}`);
}

// ---- parsing what was stored (external input) ----

class Invalid extends Error {}
type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

function fail(at: string, what: string): never {
  throw new Invalid(`${at}: ${what}`);
}
function obj(v: unknown, at: string): Raw {
  return isObj(v) ? v : fail(at, "is not an object");
}
function str(o: Raw, k: string, at: string, nonEmpty = false): string {
  const v = o[k];
  if (typeof v !== "string" || (nonEmpty && v === "")) fail(`${at}.${k}`, "is not a non-empty string");
  return v;
}
function optStr(o: Raw, k: string, at: string): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  return typeof v === "string" ? v : fail(`${at}.${k}`, "is not a string");
}
function bool(o: Raw, k: string, at: string): boolean {
  const v = o[k];
  return typeof v === "boolean" ? v : fail(`${at}.${k}`, "is not a boolean");
}
function int(o: Raw, k: string, at: string, min: number, max: number): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    fail(`${at}.${k}`, `is not a whole number from ${min} to ${max}`);
  return v;
}
function list<T>(o: Raw, k: string, at: string, each: (v: unknown, at: string) => T): T[] {
  const v = o[k];
  if (!Array.isArray(v)) fail(`${at}.${k}`, "is not a list");
  return v.map((x, i) => each(x, `${at}.${k}[${i}]`));
}
function strings(o: Raw, k: string, at: string): string[] {
  return list(o, k, at, (x, a) => (typeof x === "string" ? x : fail(a, "is not a string")));
}
function ips(o: Raw, k: string, at: string): string[] {
  return list(o, k, at, (x, a) =>
    typeof x === "string" && ipFamily(x) ? x : fail(a, "is not an IP address"),
  );
}
function oneOf<T extends string>(o: Raw, k: string, at: string, values: readonly T[]): T {
  const v = o[k];
  return values.includes(v as T) ? (v as T) : fail(`${at}.${k}`, `is not one of ${values.join(", ")}`);
}

const PROTOCOLS: readonly Protocol[] = ["TCP", "UDP"];
const SERVICE_TYPES: readonly ServiceType[] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
const DISTRIBUTIONS: readonly TrafficDistribution[] = ["", "PreferSameZone", "PreferSameNode"];

function servicePort(v: unknown, at: string): ServicePort {
  const o = obj(v, at);
  const nodePort = o["nodePort"] === undefined ? undefined : int(o, "nodePort", at, 1, 65535);
  return {
    name: str(o, "name", at),
    port: int(o, "port", at, 1, 65535),
    protocol: oneOf(o, "protocol", at, PROTOCOLS),
    nodePort,
  };
}

function named(o: Raw, at: string, cluster: string, namespaced: boolean) {
  const c = str(o, "cluster", at);
  if (c !== cluster) fail(`${at}.cluster`, `is "${c}", not this record's cluster`);
  return { namespace: namespaced ? str(o, "namespace", at, true) : "", name: str(o, "name", at, true) };
}

function service(o: Raw, at: string, cluster: string): Service {
  const { namespace, name } = named(o, at, cluster, true);
  return {
    cluster,
    namespace,
    name,
    type: oneOf(o, "type", at, SERVICE_TYPES),
    clusterIPs: ips(o, "clusterIPs", at),
    headless: bool(o, "headless", at),
    ports: list(o, "ports", at, servicePort),
    externalIPs: ips(o, "externalIPs", at),
    loadBalancerIPs: ips(o, "loadBalancerIPs", at),
    externalTrafficLocal: bool(o, "externalTrafficLocal", at),
    internalTrafficLocal: bool(o, "internalTrafficLocal", at),
    externalTrafficStrict: bool(o, "externalTrafficStrict", at),
    affinityTimeoutSeconds: int(o, "affinityTimeoutSeconds", at, 0, 86_400),
    global: bool(o, "global", at),
    trafficDistribution: oneOf(o, "trafficDistribution", at, DISTRIBUTIONS),
  };
}

function slicePort(v: unknown, at: string): SlicePort {
  const o = obj(v, at);
  return {
    name: str(o, "name", at),
    port: int(o, "port", at, 1, 65535),
    protocol: oneOf(o, "protocol", at, PROTOCOLS),
  };
}

function sliceEndpoint(v: unknown, at: string): SliceEndpoint {
  const o = obj(v, at);
  return {
    addresses: ips(o, "addresses", at),
    nodeName: optStr(o, "nodeName", at),
    ready: bool(o, "ready", at),
    serving: bool(o, "serving", at),
    terminating: bool(o, "terminating", at),
    zone: optStr(o, "zone", at),
    forZones: o["forZones"] === undefined ? undefined : strings(o, "forZones", at),
  };
}

function endpointSlice(o: Raw, at: string, cluster: string): EndpointSlice {
  const { namespace, name } = named(o, at, cluster, true);
  return {
    cluster,
    namespace,
    name,
    service: str(o, "service", at),
    addressType: oneOf(o, "addressType", at, ["IPv4", "IPv6"] as const),
    ports: list(o, "ports", at, slicePort),
    endpoints: list(o, "endpoints", at, sliceEndpoint),
  };
}

function labels(v: unknown, at: string): Record<string, string> {
  const o = obj(v, at);
  for (const [k, x] of Object.entries(o)) if (typeof x !== "string") fail(`${at}["${k}"]`, "is not a string");
  return o as Record<string, string>;
}

function node(o: Raw, at: string, cluster: string): Node {
  const { name } = named(o, at, cluster, false);
  return {
    cluster,
    name,
    addresses: ips(o, "addresses", at),
    zone: optStr(o, "zone", at),
    ...(o["labels"] === undefined ? {} : { labels: labels(o["labels"], `${at}.labels`) }),
    ...(o["entryAddresses"] === undefined ? {} : { entryAddresses: ips(o, "entryAddresses", at) }),
  };
}

const OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist"] as const;

function selector(v: unknown, at: string): LabelSelector {
  const o = obj(v, at);
  return {
    matchLabels: labels(o["matchLabels"], `${at}.matchLabels`),
    matchExpressions: list(o, "matchExpressions", at, (x, a) => {
      const e = obj(x, a);
      return {
        key: str(e, "key", a, true),
        operator: oneOf(e, "operator", a, OPERATORS),
        values: strings(e, "values", a),
      };
    }),
  };
}

function policyPort(v: unknown, at: string) {
  const o = obj(v, at);
  return {
    name: str(o, "name", at, true),
    port: int(o, "port", at, 1, 65535),
    protocol: oneOf(o, "protocol", at, PROTOCOLS),
  };
}

function policyFrontend(o: Raw, at: string): LocalRedirectPolicy["frontend"] {
  const fe = obj(o["frontend"], `${at}.frontend`);
  const fat = `${at}.frontend`;
  const frontend: LocalRedirectPolicy["frontend"] =
    fe["kind"] === "service"
      ? {
          kind: "service",
          service: str(fe, "service", fat, true),
          ports: list(fe, "ports", fat, (x, a) => {
            const p = obj(x, a);
            return "port" in p ? { port: int(p, "port", a, 1, 65535) } : { name: str(p, "name", a, true) };
          }),
        }
      : fe["kind"] === "address"
        ? {
            kind: "address",
            ip: ips({ ip: [fe["ip"]] }, "ip", fat)[0]!,
            ports: list(fe, "ports", fat, policyPort),
            fallbackService: optStr(fe, "fallbackService", fat),
          }
        : fail(`${fat}.kind`, "is not service or address");
  return frontend;
}

function toPorts(be: Raw, at: string): LocalRedirectPolicy["backend"]["toPorts"] {
  return list(be, "toPorts", at, (x, a) => {
    const p = obj(x, a);
    return {
      name: str(p, "name", a, true),
      port: int(p, "port", a, 0, 65535),
      targetName: optStr(p, "targetName", a),
      protocol: oneOf(p, "protocol", a, PROTOCOLS),
    };
  });
}

function policyMeta(o: Raw, at: string, cluster: string) {
  const { namespace, name } = named(o, at, cluster, true);
  return {
    cluster,
    namespace,
    name,
    uid: str(o, "uid", at),
    generation: int(o, "generation", at, 0, Number.MAX_SAFE_INTEGER),
    createdAt: str(o, "createdAt", at),
  };
}

function nodeSelectorOf(o: Raw, at: string): LabelSelector | undefined {
  return o["nodeSelector"] === undefined ? undefined : selector(o["nodeSelector"], `${at}.nodeSelector`);
}

function localRedirect(o: Raw, at: string, cluster: string): LocalRedirectPolicy {
  const be = obj(o["backend"], `${at}.backend`);
  return {
    ...policyMeta(o, at, cluster),
    frontend: policyFrontend(o, at),
    backend: {
      selector: selector(be["selector"], `${at}.backend.selector`),
      toPorts: toPorts(be, `${at}.backend`),
    },
    skipRedirectFromBackend: bool(o, "skipRedirectFromBackend", at),
    qosPerSecond: int(o, "qosPerSecond", at, 0, 0xffff_ffff),
    nodeSelector: nodeSelectorOf(o, at),
  };
}

const MODES = ["podEndpoint", "hostPort", "nodeProxy"] as const;

function balancing(o: Raw, at: string, cluster: string): BalancingPolicy {
  const be = obj(o["backend"], `${at}.backend`);
  const bat = `${at}.backend`;
  const backend: BalancingPolicy["backend"] =
    be["kind"] === "serviceEndpoint"
      ? {
          kind: "serviceEndpoint",
          selector: selector(be["selector"], `${bat}.selector`),
          redirectMode: oneOf(be, "redirectMode", bat, MODES),
          toPorts: toPorts(be, bat),
        }
      : be["kind"] === "addressEndpoint"
        ? { kind: "addressEndpoint", addresses: ips(be, "addresses", bat), toPorts: toPorts(be, bat) }
        : fail(`${bat}.kind`, "is not serviceEndpoint or addressEndpoint");
  return {
    ...policyMeta(o, at, cluster),
    frontend: policyFrontend(o, at),
    backend,
    nodeSelector: nodeSelectorOf(o, at),
  };
}

function serviceExport(o: Raw, at: string, cluster: string): ServiceExport {
  return { cluster, ...named(o, at, cluster, true) };
}

function serviceImport(o: Raw, at: string, cluster: string): ServiceImport {
  const { namespace, name } = named(o, at, cluster, true);
  return {
    cluster,
    namespace,
    name,
    ips: ips(o, "ips", at),
    headless: bool(o, "headless", at),
    ports: list(o, "ports", at, servicePort),
    affinityTimeoutSeconds: int(o, "affinityTimeoutSeconds", at, 0, 86_400),
  };
}

function modelObject(v: unknown, at: string, cluster: string): ModelObject {
  const o = obj(v, at);
  const value = obj(o["value"], `${at}.value`);
  const vat = `${at} (${String(o["kind"])} ${String(value["namespace"] ?? "")}/${String(value["name"])})`;
  switch (o["kind"]) {
    case "Service":
      return { kind: "Service", value: service(value, vat, cluster) };
    case "EndpointSlice":
      return { kind: "EndpointSlice", value: endpointSlice(value, vat, cluster) };
    case "Node":
      return { kind: "Node", value: node(value, vat, cluster) };
    case "ServiceExport":
      return { kind: "ServiceExport", value: serviceExport(value, vat, cluster) };
    case "ServiceImport":
      return { kind: "ServiceImport", value: serviceImport(value, vat, cluster) };
    case "LocalRedirectPolicy":
      return { kind: "LocalRedirectPolicy", value: localRedirect(value, vat, cluster) };
    case "BalancingPolicy":
      return { kind: "BalancingPolicy", value: balancing(value, vat, cluster) };
    default:
      return fail(`${at}.kind`, `"${String(o["kind"])}" is not a kind the hub keeps`);
  }
}

/** The objects of a record's JSON, every one checked (one bad object refuses the record). */
export function parseLastKnownObjects(cluster: string, json: string): Result<ModelObject[]> {
  try {
    let doc: unknown;
    try {
      doc = JSON.parse(json);
    } catch (e) {
      return err(`not JSON: ${(e as Error).message}`);
    }
    const objects = list(obj(doc, "record"), "objects", "record", (v, at) => modelObject(v, at, cluster));
    const seen = new Set<string>();
    for (const o of objects) {
      const k = `${o.kind}/${objectKey(o)}`;
      if (seen.has(k)) return err(`${o.kind} ${objectKey(o)} is in the record twice`);
      seen.add(k);
    }
    return ok(objects);
  } catch (e) {
    if (e instanceof Invalid) return err(e.message);
    throw e;
  }
}
