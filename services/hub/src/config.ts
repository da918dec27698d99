/**
 * Hub command line and config file → validated configuration (pure).
 * Errors say which flag or field was wrong and what to write instead.
 */
import { parseDuration } from "@switchyard/lib/duration";
import { err, ok, type Result } from "@switchyard/lib/errors";
import { parseListen } from "@switchyard/lib/metrics-server";
import { parse as parseYaml } from "yaml";
import { type EventsSettings, parseEventsConfig } from "./events/events-config.ts";
import { parseStateConfig, type StateNats } from "./state/state-nats.ts";
import { DEFAULT_LIMITS, type FrontLimits, LIMIT_SPECS, parseBytes } from "./transport/limits.ts";

export type ClusterConfig =
  | { name: string; kind: "dir"; path: string }
  | { name: string; kind: "kubeconfig"; path: string }
  | { name: string; kind: "in-cluster" };

const CLUSTER_NAME_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function parseClusterFlag(v: string): Result<ClusterConfig> {
  const eq = v.indexOf("=");
  if (eq < 0) return err(`--cluster "${v}" must be NAME=dir:PATH, NAME=kubeconfig:PATH or NAME=in-cluster`);
  const name = v.slice(0, eq);
  const src = v.slice(eq + 1);
  if (!CLUSTER_NAME_RE.test(name))
    return err(`--cluster name "${name}" must be a DNS label (lowercase letters, digits, '-')`);
  if (src === "in-cluster") return ok({ name, kind: "in-cluster" });
  if (src.startsWith("dir:") && src.length > 4) return ok({ name, kind: "dir", path: src.slice(4) });
  if (src.startsWith("kubeconfig:") && src.length > 11)
    return ok({ name, kind: "kubeconfig", path: src.slice(11) });
  return err(`--cluster ${name}: source "${src}" must be dir:PATH, kubeconfig:PATH or in-cluster`);
}

/** --view HOME=IMPORT[,IMPORT...]: agents of HOME also receive the Services of the imported clusters. */
export function parseViewFlag(
  v: string,
  clusters: readonly string[],
): Result<{ home: string; imports: string[] }> {
  const eq = v.indexOf("=");
  if (eq < 0)
    return err(`--view "${v}" must be HOME=CLUSTER[,CLUSTER...] (agents of HOME also see those clusters)`);
  const home = v.slice(0, eq);
  const imports = v
    .slice(eq + 1)
    .split(",")
    .filter((s) => s !== "");
  for (const c of [home, ...imports])
    if (!clusters.includes(c)) return err(`--view ${v}: "${c}" is not a --cluster of this hub`);
  if (imports.length === 0) return err(`--view ${v}: name at least one cluster to import`);
  if (imports.includes(home)) return err(`--view ${v}: a cluster does not import itself`);
  return ok({ home, imports });
}

export { parseListen };

/** What the config file holds; reloaded while the hub runs (clusters and views take effect live). */
export type HubFileConfig = {
  clusters: ClusterConfig[];
  /** home cluster → clusters its agents also see */
  imports: Map<string, string[]>;
  listen: string | undefined;
  stateDir: string | undefined;
  metricsListen: string | undefined;
  staleGraceMs: number | undefined;
  apiTimeoutMs: number | undefined;
  debounceMs: number | undefined;
  ioThreads: number | undefined;
  /** externalTrafficPolicy: Local stays strict for connects that start on an agent's node, for every Service */
  externalTrafficStrict: boolean | undefined;
  /** the interface whose addresses are each node's entry addresses (nodeProxy), told to agents in Welcome */
  entryInterface: string | undefined;
  /** the agent port's limits given in the file (`limits:`) */
  limits: Partial<FrontLimits>;
  /** NAT events' NATS and history (`events:`, events/events-config.ts) */
  events: Partial<EventsSettings>;
  /** the shared state's NATS (`state:`, state/state-nats.ts); read at start only */
  state: Partial<StateNats>;
};

/**
 * --front / front: once the choice of the agent port's HTTP/2 stack, now
 * always node:http2. `http2` is accepted and changes nothing, so a file or
 * unit written for the choice still starts; anything else (`own`) is an
 * error. Returns the error, or undefined.
 */
export function checkRemovedFront(v: unknown, where: string, key: string): string | undefined {
  if (v === "http2") return undefined;
  return `${where} is ${JSON.stringify(v)}: the own HTTP/2 front was removed; the hub serves node:http2 only — remove \`${key}\``;
}

/** One limit's value from the config file (a number or a string) or a flag (a string), checked against its range. */
function parseLimit(spec: (typeof LIMIT_SPECS)[number], v: unknown, where: string): Result<number> {
  const range =
    spec.kind === "duration"
      ? `from ${spec.min}ms to ${spec.max / 1000}s`
      : spec.kind === "bytes"
        ? `from ${spec.min >> 10}KiB to ${spec.max >> 20}MiB`
        : `from ${spec.min} to ${spec.max}`;
  const what =
    spec.kind === "duration"
      ? "a duration like 500ms, 10s or 5m"
      : spec.kind === "bytes"
        ? "a size in bytes, or like 512KiB or 16MiB"
        : "a whole number";
  let n: number | undefined;
  if (spec.kind === "duration") {
    const d = typeof v === "string" ? parseDuration(v) : undefined;
    n = d?.ok ? d.value : undefined;
  } else if (typeof v === "number") n = v;
  else if (typeof v === "string")
    n = spec.kind === "bytes" ? parseBytes(v) : /^\d+$/.test(v) ? Number(v) : undefined;
  if (n === undefined || !Number.isInteger(n) || n < spec.min || n > spec.max)
    return err(`${where} must be ${what} ${range} (${spec.help}), not ${JSON.stringify(v)}`);
  return ok(n);
}

/** The agent port's limits: each flag over the config file's `limits:` over the default (transport/limits.ts). */
export function resolveLimits(
  fromFile: Partial<FrontLimits>,
  flags: Record<string, unknown>,
): Result<FrontLimits> {
  const out: FrontLimits = { ...DEFAULT_LIMITS, ...fromFile };
  for (const spec of LIMIT_SPECS) {
    const v = flags[spec.flag];
    if (v === undefined) continue;
    const r = parseLimit(spec, v, `--${spec.flag}`);
    if (!r.ok) return r;
    out[spec.key] = r.value;
  }
  return ok(out);
}

function parseFileLimits(raw: unknown, file: string): Result<Partial<FrontLimits>> {
  if (raw === undefined) return ok({});
  const known = LIMIT_SPECS.map((x) => x.file);
  if (!isObj(raw)) return err(`${file}: limits must be a mapping of ${known.join(", ")}`);
  const out: Partial<FrontLimits> = {};
  for (const [k, v] of Object.entries(raw)) {
    const spec = LIMIT_SPECS.find((x) => x.file === k);
    if (!spec) return err(`${file}: limits: unknown field "${k}" (known: ${known.join(", ")})`);
    const r = parseLimit(spec, v, `${file}: limits.${k}`);
    if (!r.ok) return r;
    out[spec.key] = r.value;
  }
  return ok(out);
}

/** I/O threads for the agents' connections: a whole number, 0 (the main thread) to 64 */
export function checkIoThreads(n: unknown): string | undefined {
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 64)
    return `must be a whole number from 0 (connections on the main thread) to 64, not ${JSON.stringify(n)}`;
  return undefined;
}

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The hub's config file:
 *
 *     listen: 127.0.0.1:7443
 *     metricsListen: 127.0.0.1:9464
 *     staleGrace: 60s
 *     apiTimeout: 10s      # an API server that does not answer a probe within this is unreachable
 *     ioThreads: 2         # threads serving the agents' connections (0: the main thread)
 *     externalTrafficStrict: false  # true: eTP=Local external frontends use only the agent's node's endpoints
 *     entryInterface: vxlan0  # nodes' entry addresses (nodeProxy) from this interface, reported by their agents
 *     state:               # the hubs' shared state in NATS JetStream KV (state/state-nats.ts)
 *       nats: [tls://nats.example:4222]
 *       creds: /etc/switchyard/hub-state.creds
 *     events:              # NAT events' NATS and their history (events/events-config.ts)
 *       nats: [tls://nats.example:4222]
 *       historyMaxAge: 1h
 *       historyMaxBytes: 1GiB
 *     limits:              # the agent port's limits (transport/limits.ts; each also a serve flag)
 *       maxConnectionsPerSource: 2000
 *       idleTimeout: 60s
 *     clusters:
 *       - name: east
 *         kubeconfig: /etc/switchyard/east.kubeconfig   # or inCluster: true, or directory: PATH
 *         imports: [west]
 *       - name: west
 *         directory: /srv/west
 */
export function parseHubConfig(text: string, file = "config"): Result<HubFileConfig> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    return err(`${file}: not valid YAML: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) doc = {};
  if (!isObj(doc)) return err(`${file}: must be a mapping with a "clusters" list`);
  const known = [
    "clusters",
    "listen",
    "stateDir",
    "metricsListen",
    "staleGrace",
    "apiTimeout",
    "debounceMs",
    "ioThreads",
    "externalTrafficStrict",
    "entryInterface",
    "front",
    "limits",
    "events",
    "state",
  ];
  for (const k of Object.keys(doc))
    if (!known.includes(k)) return err(`${file}: unknown field "${k}" (known: ${known.join(", ")})`);
  const str = (k: string): Result<string | undefined> => {
    const v = doc[k];
    if (v === undefined) return ok(undefined);
    return typeof v === "string" && v !== "" ? ok(v) : err(`${file}: ${k} must be a non-empty string`);
  };
  const clusters: ClusterConfig[] = [];
  const imports = new Map<string, string[]>();
  const rawClusters = doc["clusters"] ?? [];
  if (!Array.isArray(rawClusters)) return err(`${file}: clusters must be a list`);
  for (const [i, c] of rawClusters.entries()) {
    const at = `${file}: clusters[${i}]`;
    if (!isObj(c))
      return err(`${at} must be a mapping with name and one of kubeconfig, inCluster, directory`);
    for (const k of Object.keys(c))
      if (!["name", "kubeconfig", "inCluster", "directory", "imports"].includes(k))
        return err(`${at}: unknown field "${k}" (name, kubeconfig, inCluster, directory, imports)`);
    const name = c["name"];
    if (typeof name !== "string" || !CLUSTER_NAME_RE.test(name))
      return err(`${at}: name "${String(name)}" must be a DNS label (lowercase letters, digits, '-')`);
    if (clusters.some((x) => x.name === name)) return err(`${at}: cluster ${name} is listed twice`);
    const sources = ["kubeconfig", "inCluster", "directory"].filter(
      (k) => c[k] !== undefined && c[k] !== false,
    );
    if (sources.length !== 1)
      return err(`${at} (${name}): give exactly one of kubeconfig: PATH, inCluster: true, directory: PATH`);
    if (c["inCluster"] !== undefined && c["inCluster"] !== true && c["inCluster"] !== false)
      return err(`${at} (${name}): inCluster must be true or false`);
    for (const k of ["kubeconfig", "directory"])
      if (c[k] !== undefined && (typeof c[k] !== "string" || c[k] === ""))
        return err(`${at} (${name}): ${k} must be a path`);
    if (c["inCluster"] === true) clusters.push({ name, kind: "in-cluster" });
    else if (typeof c["kubeconfig"] === "string")
      clusters.push({ name, kind: "kubeconfig", path: c["kubeconfig"] });
    else clusters.push({ name, kind: "dir", path: c["directory"] as string });
    if (c["imports"] !== undefined) {
      const im = c["imports"];
      if (!Array.isArray(im) || !im.every((x) => typeof x === "string"))
        return err(`${at} (${name}): imports must be a list of cluster names`);
      imports.set(name, im as string[]);
    }
  }
  for (const [home, list] of imports) {
    for (const c of list) {
      if (c === home) return err(`${file}: cluster ${home} imports itself`);
      if (!clusters.some((x) => x.name === c))
        return err(`${file}: cluster ${home} imports "${c}", which is not a cluster of this file`);
    }
  }
  const listen = str("listen");
  if (!listen.ok) return listen;
  if (listen.value !== undefined) {
    const l = parseListen(listen.value);
    if (!l.ok) return err(`${file}: listen: ${l.error}`);
  }
  const metricsListen = str("metricsListen");
  if (!metricsListen.ok) return metricsListen;
  if (metricsListen.value !== undefined) {
    const l = parseListen(metricsListen.value);
    if (!l.ok) return err(`${file}: metricsListen: ${l.error}`);
  }
  const stateDir = str("stateDir");
  if (!stateDir.ok) return stateDir;
  let staleGraceMs: number | undefined;
  const grace = str("staleGrace");
  if (!grace.ok) return grace;
  if (grace.value !== undefined) {
    const d = parseDuration(grace.value);
    if (!d.ok) return err(`${file}: staleGrace: ${d.error}`);
    staleGraceMs = d.value;
  }
  let apiTimeoutMs: number | undefined;
  const apiTimeout = str("apiTimeout");
  if (!apiTimeout.ok) return apiTimeout;
  if (apiTimeout.value !== undefined) {
    const d = parseDuration(apiTimeout.value);
    if (!d.ok || d.value < 100)
      return err(`${file}: apiTimeout: give a duration of at least 100ms (got "${apiTimeout.value}")`);
    apiTimeoutMs = d.value;
  }
  const debounce = doc["debounceMs"];
  if (debounce !== undefined && (typeof debounce !== "number" || !(debounce >= 0)))
    return err(`${file}: debounceMs must be a number of milliseconds`);
  const ioThreads = doc["ioThreads"];
  const ioError = ioThreads === undefined ? undefined : checkIoThreads(ioThreads);
  if (ioError) return err(`${file}: ioThreads ${ioError}`);
  const strict = doc["externalTrafficStrict"];
  if (strict !== undefined && typeof strict !== "boolean")
    return err(
      `${file}: externalTrafficStrict must be true or false (true: connects from an agent's node to external frontends of externalTrafficPolicy: Local Services use only that node's endpoints), not ${JSON.stringify(strict)}`,
    );
  const entryInterface = doc["entryInterface"];
  if (
    entryInterface !== undefined &&
    (typeof entryInterface !== "string" || !/^[A-Za-z0-9_.:@-]{1,15}$/.test(entryInterface))
  )
    return err(
      `${file}: entryInterface must be a network interface name (1-15 letters, digits, '_', '.', ':', '@', '-', e.g. vxlan0), not ${JSON.stringify(entryInterface)}`,
    );
  if (doc["front"] !== undefined) {
    const e = checkRemovedFront(doc["front"], `${file}: front`, "front");
    if (e) return err(e);
  }
  const limits = parseFileLimits(doc["limits"], file);
  if (!limits.ok) return limits;
  const events = parseEventsConfig(doc["events"], file);
  if (!events.ok) return events;
  const state = parseStateConfig(doc["state"], file);
  if (!state.ok) return state;
  return ok({
    state: state.value,
    events: events.value,
    limits: limits.value,
    clusters,
    imports,
    listen: listen.value,
    stateDir: stateDir.value,
    metricsListen: metricsListen.value,
    staleGraceMs,
    apiTimeoutMs,
    debounceMs: debounce as number | undefined,
    ioThreads: ioThreads as number | undefined,
    externalTrafficStrict: strict,
    entryInterface: entryInterface as string | undefined,
  });
}

/** Same source? (a changed source restarts the cluster's watch) */
export function sameSource(a: ClusterConfig, b: ClusterConfig): boolean {
  return a.kind === b.kind && ("path" in a ? a.path : "") === ("path" in b ? b.path : "");
}
