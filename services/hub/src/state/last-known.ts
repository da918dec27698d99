/**
 * Each cluster's last known state in the hub's shared state (a file, or
 * JetStream KV shared by replicas; state/hub-state.ts), so a restarted hub
 * or a fresh replica that cannot reach a cluster serves what was last seen
 * of it instead of nothing.
 *
 * A record is the World's objects of one cluster (Services, EndpointSlices,
 * Nodes, ServiceExports/Imports, LocalRedirectPolicies as the translator
 * reads them; not Pods, see objectsOf), gzipped JSON,
 * with the time the cluster was last seen healthy:
 *
 * - `lastknown/<cluster>`: {format, cluster, lastSeenAt, savedAt, digest,
 *   parts, bytes} — written last;
 * - `lastknown-part/<cluster>/<digest16>/<i>`: the gzip bytes in base64,
 *   256 KiB a key (a JetStream message is 1 MB at most by default).
 *
 * Loading is parsing external input: a record that is corrupt, incomplete
 * (a replica replaced it meanwhile), of another format or of another
 * cluster is refused with the reason, and the hub starts without it.
 */
import { createHash } from "node:crypto";
import { promisify } from "node:util";
import zlib from "node:zlib";
import { err, ok, type Result } from "@switchyard/lib/errors";
import { ipFamily } from "@switchyard/lib/ip";
import type { Logger } from "@switchyard/lib/log";
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
import { type ModelObject, objectKey, objectsOf, type World } from "../model/world.ts";
import type { HubState } from "./hub-state.ts";

export const LAST_KNOWN_FORMAT = 1;
const PART_CHARS = 256 * 1024;
const MAX_PARTS = 4096;
const MAX_JSON_BYTES = 512 * 1024 * 1024;
const gzip = promisify(zlib.gzip);

export type LastKnown = { lastSeenAt: number; objects: ModelObject[] };

export type LastKnownMeta = {
  format: number;
  cluster: string;
  lastSeenAt: string;
  savedAt: string;
  digest: string;
  parts: number;
  bytes: number;
};

export function metaKey(cluster: string): string {
  return `lastknown/${cluster}`;
}

/** the parts of a cluster's records; with a digest, of that record */
function partPrefix(cluster: string, digest?: string): string {
  return `lastknown-part/${cluster}/${digest === undefined ? "" : `${digest.slice(0, 16)}/`}`;
}

export function partKey(cluster: string, digest: string, i: number): string {
  return `${partPrefix(cluster, digest)}${i}`;
}

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

function parseMeta(cluster: string, v: unknown): Result<LastKnownMeta & { lastSeen: number }> {
  if (!isObj(v)) return err("its header is not an object");
  if (v["format"] !== LAST_KNOWN_FORMAT)
    return err(
      `format ${JSON.stringify(v["format"])} is not format ${LAST_KNOWN_FORMAT} (written by another version of the hub)`,
    );
  if (v["cluster"] !== cluster) return err(`it is the record of cluster ${JSON.stringify(v["cluster"])}`);
  const lastSeen = typeof v["lastSeenAt"] === "string" ? Date.parse(v["lastSeenAt"]) : Number.NaN;
  if (!Number.isFinite(lastSeen)) return err("lastSeenAt is not a time");
  const digest = v["digest"];
  if (typeof digest !== "string" || !/^[0-9a-f]{64}$/.test(digest))
    return err("digest is not a sha256 in hex");
  const parts = v["parts"];
  if (typeof parts !== "number" || !Number.isInteger(parts) || parts < 1 || parts > MAX_PARTS)
    return err(`parts is not a whole number from 1 to ${MAX_PARTS}`);
  return ok({ ...(v as LastKnownMeta), lastSeen });
}

/**
 * A stored record → the cluster's objects and when it was last seen
 * (a time in the future, from a replica whose clock runs ahead, counts as now).
 */
export function parseLastKnown(
  cluster: string,
  meta: unknown,
  part: (key: string) => unknown,
  now: number,
): Result<LastKnown> {
  const m = parseMeta(cluster, meta);
  if (!m.ok) return m;
  const chunks: Buffer[] = [];
  for (let i = 0; i < m.value.parts; i++) {
    const p = part(partKey(cluster, m.value.digest, i));
    if (typeof p !== "string")
      return err(`part ${i + 1} of ${m.value.parts} is missing (replaced while it was read?)`);
    chunks.push(Buffer.from(p, "base64"));
  }
  const gz = Buffer.concat(chunks);
  if (createHash("sha256").update(gz).digest("hex") !== m.value.digest)
    return err("its content does not match its digest (corrupt or half written)");
  let json: string;
  try {
    json = zlib.gunzipSync(gz, { maxOutputLength: MAX_JSON_BYTES }).toString("utf8");
  } catch (e) {
    return err(`cannot be decompressed: ${(e as Error).message}`);
  }
  const objects = parseLastKnownObjects(cluster, json);
  if (!objects.ok) return objects;
  return ok({ lastSeenAt: Math.min(m.value.lastSeen, now), objects: objects.value });
}

// ---- the store and the writer ----

/** Reads and writes last known states in the hub's shared state. */
export class LastKnownStore {
  private readonly state: HubState;
  constructor(state: HubState) {
    this.state = state;
  }

  /** undefined: no record; an error: a record that cannot be used (say why, start without it). */
  load(cluster: string, now = Date.now()): Result<LastKnown> | undefined {
    const meta = this.state.get(metaKey(cluster));
    if (meta === undefined) return undefined;
    return parseLastKnown(cluster, meta, (k) => this.state.get(k), now);
  }

  /** The header of the stored record (to tell whether its content is current). */
  meta(cluster: string): LastKnownMeta | undefined {
    const m = this.state.get<unknown>(metaKey(cluster));
    const p = parseMeta(cluster, m);
    return p.ok ? p.value : undefined;
  }

  /** Writes the objects (parts first, then the header), then drops the parts of earlier records. */
  async save(cluster: string, objects: readonly ModelObject[], lastSeenAt: number, now = Date.now()) {
    const gz = await gzip(encodeLastKnownObjects(objects));
    const digest = createHash("sha256").update(gz).digest("hex");
    const b64 = gz.toString("base64");
    const parts: string[] = [];
    for (let i = 0; i < b64.length; i += PART_CHARS) parts.push(b64.slice(i, i + PART_CHARS));
    if (parts.length > MAX_PARTS)
      throw new Error(
        `cluster ${cluster}: its state is ${gz.length} bytes packed, over the ${MAX_PARTS} parts a record may have`,
      );
    const cur = this.meta(cluster);
    if (cur?.digest !== digest)
      await Promise.all(parts.map((p, i) => this.state.put(partKey(cluster, digest, i), p)));
    await this.writeMeta(cluster, { digest, parts: parts.length, bytes: gz.length }, lastSeenAt, now);
    if (cur?.digest === digest) return;
    const keep = partPrefix(cluster, digest);
    const old = this.state.list(partPrefix(cluster)).filter(([k]) => !k.startsWith(keep));
    await Promise.all(old.map(([k]) => this.state.delete(k)));
  }

  /** Moves the record's last-seen time (the content is current). */
  async touch(cluster: string, lastSeenAt: number, now = Date.now()): Promise<boolean> {
    const cur = this.meta(cluster);
    if (!cur) return false;
    await this.writeMeta(cluster, cur, lastSeenAt, now);
    return true;
  }

  async delete(cluster: string): Promise<void> {
    await this.state.delete(metaKey(cluster));
    await Promise.all(this.state.list(partPrefix(cluster)).map(([k]) => this.state.delete(k)));
  }

  private writeMeta(
    cluster: string,
    c: Pick<LastKnownMeta, "digest" | "parts" | "bytes">,
    lastSeenAt: number,
    now: number,
  ): Promise<void> {
    const meta: LastKnownMeta = {
      format: LAST_KNOWN_FORMAT,
      cluster,
      lastSeenAt: new Date(lastSeenAt).toISOString(),
      savedAt: new Date(now).toISOString(),
      digest: c.digest,
      parts: c.parts,
      bytes: c.bytes,
    };
    return this.state.put(metaKey(cluster), meta);
  }
}

/**
 * Keeps every synced cluster's record current: its objects at most once per
 * `debounceMs` after they change, its last-seen time every `heartbeatMs`
 * while it is healthy (a header write), and once more on close. A cluster
 * that is only restored (not listed since) is not written: its record is
 * what it was. A stale cluster's record keeps the time it went stale.
 */
export class LastKnownWriter {
  private readonly world: World;
  private readonly store: LastKnownStore;
  private readonly log: Logger;
  private readonly debounceMs: number;
  private readonly now: () => number;
  private readonly dirty = new Set<string>();
  /** per cluster: the last-seen time last written */
  private readonly written = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly heartbeat: NodeJS.Timeout;
  private running: Promise<void> = Promise.resolve();
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(
    world: World,
    store: LastKnownStore,
    log: Logger,
    opts: { debounceMs?: number; heartbeatMs?: number; now?: () => number } = {},
  ) {
    this.world = world;
    this.store = store;
    this.log = log;
    this.debounceMs = opts.debounceMs ?? 5_000;
    this.now = opts.now ?? Date.now;
    this.unsubscribe = world.onChange((cluster, change) => {
      // Pods are not stored (objectsOf): their churn does not rewrite the record
      if (change?.kind === "Pod") return;
      this.dirty.add(cluster);
      this.schedule();
    });
    this.heartbeat = setInterval(() => this.flush(), opts.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.debounceMs);
    this.timer.unref();
  }

  /** Writes what changed (and every healthy cluster's last-seen time); resolves when written. */
  flush(): Promise<void> {
    this.running = this.running.then(() => this.write());
    return this.running;
  }

  private async write(): Promise<void> {
    const dirty = new Set(this.dirty);
    this.dirty.clear();
    for (const c of this.world.clusters.values()) {
      if (c.sync !== "synced") continue;
      const lastSeenAt = c.health.stale ? (c.health.staleSince ?? this.now()) : this.now();
      const name = c.name;
      try {
        if (dirty.has(name) || !(await this.touchIfMoved(name, lastSeenAt))) {
          await this.store.save(name, objectsOf(c), lastSeenAt, this.now());
          this.log.debug(
            { cluster: name, lastSeenAt: new Date(lastSeenAt).toISOString() },
            "last known state saved",
          );
        }
        this.written.set(name, lastSeenAt);
      } catch (e) {
        // the next change or heartbeat tries again
        this.dirty.add(name);
        this.log.warn(
          { cluster: name, err: (e as Error).message },
          "cannot save the cluster's last known state",
        );
      }
    }
  }

  /** true when the stored record is current (its time moved if needed); false when it must be written whole. */
  private async touchIfMoved(cluster: string, lastSeenAt: number): Promise<boolean> {
    if (!this.written.has(cluster)) return false;
    if (this.written.get(cluster) === lastSeenAt) return true;
    return this.store.touch(cluster, lastSeenAt, this.now());
  }

  /** A last write (healthy clusters were seen until now), then no more. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    await this.flush();
  }
}
