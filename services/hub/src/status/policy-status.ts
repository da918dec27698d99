/**
 * What the hub says about each policy, and writing it back.
 *
 * `PolicyBook` gathers, per cluster, every policy of both kinds
 * (LocalRedirectPolicy, BalancingPolicy): the ones in
 * the world (valid specs) with the translator's verdict (a `PolicyJudge`,
 * translate/local-redirect.ts `clusterPolicyVerdicts`: Accepted, Conflict
 * naming the winner, ServiceNotFound — asked again only when a cluster's
 * policies or Services changed), and the ones parsing refused
 * (InvalidSpec, recorded by the WorldWriter; an older valid generation of
 * the same policy stays in force). `switchyard-hub policies` lists its rows.
 *
 * `PolicyStatusWriter` patches each policy's `status` in its cluster when
 * what the hub says differs from what the cluster holds (debounced; never
 * for directory clusters, which have no API server; not before the
 * cluster is listed, so a restart does not rewrite what is already there).
 */
import type { Logger } from "@switchyard/lib/log";
import type { BalancingPolicy, LocalRedirectPolicy, PolicyKind, PolicyVerdict } from "../model/types.ts";
import type { ClusterState, World } from "../model/world.ts";
import { selectorMatches } from "../translate/label-selector.ts";

export type PolicyReason = PolicyVerdict["reason"];

/** The `status` of a policy object as the hub writes it (deploy/crds/). */
export type PolicyStatus = {
  observedGeneration: number;
  frontend: string;
  nodes?: number;
  conditions: Array<{
    type: "Accepted";
    status: "True" | "False";
    reason: PolicyReason;
    message: string;
    observedGeneration: number;
    lastTransitionTime: string;
  }>;
};

/** Writes a policy's status in one cluster (a Kubernetes client: sources/kube.ts; tests: a fake). */
export interface PolicyStatusClient {
  /** Rejects with an error carrying `statusCode` (404: the policy is gone). `kind`: LocalRedirectPolicy when absent. */
  patchStatus(namespace: string, name: string, status: PolicyStatus, kind?: PolicyKind): Promise<void>;
}

/**
 * What sources tell the book about policy objects (sources/source.ts
 * WorldWriter). `kind` is LocalRedirectPolicy when absent.
 */
export interface PolicyObserver {
  /** a policy object arrived; `status` is what the cluster holds in its status */
  observed(cluster: string, namespace: string, name: string, status: unknown, kind?: PolicyKind): void;
  /** it did not parse: this generation is refused (InvalidSpec); false when this refusal was known already */
  rejected(
    cluster: string,
    policy: { namespace: string; name: string; uid: string; generation: number; kind?: PolicyKind },
    message: string,
    frontend: string,
  ): boolean;
  /** it parsed (a refusal of an earlier generation is over) */
  parsed(cluster: string, namespace: string, name: string, kind?: PolicyKind): void;
  removed(cluster: string, namespace: string, name: string, kind?: PolicyKind): void;
}

/** The translator's verdicts on every policy of a cluster (pure; keyed by `policyKey`: "Kind/namespace/name"). */
export type PolicyJudge = (cluster: ClusterState) => ReadonlyMap<string, PolicyVerdict>;

/** A policy's key in the book and in a judge's verdicts. */
export function policyKey(kind: PolicyKind, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

/**
 * The kinds whose change can change a verdict (Pods and EndpointSlices never
 * do: they change what a winner sends, not who wins; a Node's addresses are
 * in a BalancingPolicy's message, which nodes can be served).
 */
const JUDGED_ON: ReadonlySet<string> = new Set(["LocalRedirectPolicy", "BalancingPolicy", "Service", "Node"]);

export type PolicyState = "Accepted" | "NotAccepted" | "Pending";

/** One line of `switchyard-hub policies`. */
export type PolicyRow = {
  cluster: string;
  kind: PolicyKind;
  namespace: string;
  name: string;
  /** metadata.uid: a policy deleted and made again under its name is another one ("" where a source has none) */
  uid: string;
  generation: number;
  frontend: string;
  /** Pending: valid, not judged yet */
  state: PolicyState;
  reason: PolicyReason | "";
  message: string;
  winner: string;
  nodes: number | undefined;
};

type Rejection = {
  kind: PolicyKind;
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  message: string;
  frontend: string;
};

/** "svc kube-dns [dns,53]" / "169.254.20.10:53/UDP,53/TCP": a policy's frontend from its spec. */
export function describeFrontend(p: LocalRedirectPolicy | BalancingPolicy): string {
  const f = p.frontend;
  if (f.kind === "service") {
    const ports = f.ports.map((x) => ("name" in x ? x.name : String(x.port)));
    return `svc ${f.service}${ports.length ? ` [${ports.join(",")}]` : ""}`;
  }
  const ip = f.ip.includes(":") ? `[${f.ip}]` : f.ip;
  return `${ip}:${f.ports.map((x) => `${x.port}/${x.protocol}`).join(",")}`;
}

const KIND = "LocalRedirectPolicy" as const;

/** Every policy of a cluster, of both kinds, by `policyKey`. */
function policiesOf(c: ClusterState): Array<[string, PolicyKind, LocalRedirectPolicy | BalancingPolicy]> {
  const out: Array<[string, PolicyKind, LocalRedirectPolicy | BalancingPolicy]> = [];
  for (const p of c.localRedirects.values())
    out.push([policyKey("LocalRedirectPolicy", p.namespace, p.name), "LocalRedirectPolicy", p]);
  for (const p of c.balancing.values())
    out.push([policyKey("BalancingPolicy", p.namespace, p.name), "BalancingPolicy", p]);
  return out;
}

/** A cluster's policy of a kind, by namespace/name. */
export function policyOf(
  c: ClusterState,
  kind: PolicyKind,
  namespace: string,
  name: string,
): LocalRedirectPolicy | BalancingPolicy | undefined {
  return (kind === "BalancingPolicy" ? c.balancing : c.localRedirects).get(`${namespace}/${name}`);
}

export class PolicyBook implements PolicyObserver {
  private readonly world: World;
  private readonly judge: PolicyJudge | undefined;
  /** per cluster: the verdicts, and the cluster's generation they were judged at */
  private readonly verdicts = new Map<string, ReadonlyMap<string, PolicyVerdict>>();
  /** clusters whose verdicts must be asked again */
  private readonly stale = new Set<string>();
  private readonly rejections = new Map<string, Map<string, Rejection>>();
  /** the status each policy holds in its cluster, as last seen */
  private readonly statuses = new Map<string, Map<string, unknown>>();
  private readonly listeners = new Set<() => void>();

  /** Without a judge every valid policy is Pending (only InvalidSpec is said). */
  constructor(world: World, judge?: PolicyJudge) {
    this.world = world;
    this.judge = judge;
    world.onChange((cluster, change) => {
      if (change === undefined && !world.clusters.has(cluster)) {
        // the cluster left: what was said of its policies goes with it
        this.rejections.delete(cluster);
        this.statuses.delete(cluster);
        this.verdicts.delete(cluster);
      }
      // a Node only matters where BalancingPolicies are (their messages name nodes that cannot be served)
      const judged =
        change !== undefined &&
        JUDGED_ON.has(change.kind) &&
        (change.kind !== "Node" || (world.clusters.get(cluster)?.balancing.size ?? 0) > 0);
      if (change === undefined || judged) {
        this.stale.add(cluster);
        this.changed();
      } else if (change.kind === "Cluster") this.changed();
    });
  }

  /** The verdicts of a cluster, judged again if something they depend on changed. */
  private verdictsOf(c: ClusterState): ReadonlyMap<string, PolicyVerdict> | undefined {
    if (!this.judge) return undefined;
    if (this.stale.delete(c.name) || !this.verdicts.has(c.name))
      this.verdicts.set(c.name, c.localRedirects.size || c.balancing.size ? this.judge(c) : new Map());
    return this.verdicts.get(c.name);
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  observed(cluster: string, namespace: string, name: string, status: unknown, kind: PolicyKind = KIND): void {
    of(this.statuses, cluster).set(policyKey(kind, namespace, name), status);
  }

  rejected(
    cluster: string,
    p: { namespace: string; name: string; uid: string; generation: number; kind?: PolicyKind },
    message: string,
    frontend: string,
  ): boolean {
    const m = of(this.rejections, cluster);
    const kind = p.kind ?? KIND;
    const k = policyKey(kind, p.namespace, p.name);
    const old = m.get(k);
    if (old && old.uid === p.uid && old.generation === p.generation && old.message === message) return false;
    m.set(k, {
      kind,
      namespace: p.namespace,
      name: p.name,
      uid: p.uid,
      generation: p.generation,
      message,
      frontend,
    });
    this.changed();
    return true;
  }

  parsed(cluster: string, namespace: string, name: string, kind: PolicyKind = KIND): void {
    if (this.rejections.get(cluster)?.delete(policyKey(kind, namespace, name))) this.changed();
  }

  removed(cluster: string, namespace: string, name: string, kind: PolicyKind = KIND): void {
    const k = policyKey(kind, namespace, name);
    this.statuses.get(cluster)?.delete(k);
    if (this.rejections.get(cluster)?.delete(k)) this.changed();
  }

  /** What the cluster holds in the policy's status (undefined: nothing seen). */
  statusOf(cluster: string, namespace: string, name: string, kind: PolicyKind = KIND): unknown {
    return this.statuses.get(cluster)?.get(policyKey(kind, namespace, name));
  }

  /** Every policy of every cluster the world holds, sorted by cluster, namespace, name. */
  rows(): PolicyRow[] {
    const rows: PolicyRow[] = [];
    for (const k of this.verdicts.keys()) if (!this.world.clusters.has(k)) this.verdicts.delete(k);
    for (const [cluster, c] of this.world.clusters) {
      const rejected = this.rejections.get(cluster) ?? new Map<string, Rejection>();
      const verdicts = this.verdictsOf(c);
      for (const [k, kind, p] of policiesOf(c)) {
        if (rejected.has(k)) continue;
        const v = verdicts?.get(k);
        rows.push({
          cluster,
          kind,
          namespace: p.namespace,
          name: p.name,
          uid: p.uid,
          generation: p.generation,
          frontend: v?.frontends.length ? v.frontends.join(",") : describeFrontend(p),
          state: v ? (v.reason === "Accepted" ? "Accepted" : "NotAccepted") : "Pending",
          reason: v?.reason ?? "",
          message: v?.message ?? "not judged yet",
          winner: v?.winner ?? "",
          nodes: undefined,
        });
      }
      for (const r of rejected.values()) {
        const inForce = policyOf(c, r.kind, r.namespace, r.name);
        rows.push({
          cluster,
          kind: r.kind,
          namespace: r.namespace,
          name: r.name,
          uid: r.uid,
          generation: r.generation,
          frontend: r.frontend,
          state: "NotAccepted",
          reason: "InvalidSpec",
          message: inForce
            ? `${r.message}; generation ${inForce.generation} stays in force until this is fixed`
            : r.message,
          winner: "",
          nodes: undefined,
        });
      }
    }
    return rows.sort(
      (a, b) =>
        cmp(a.cluster, b.cluster) ||
        cmp(a.namespace, b.namespace) ||
        cmp(a.name, b.name) ||
        cmp(a.kind, b.kind),
    );
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }
}

function of<V>(m: Map<string, Map<string, V>>, cluster: string): Map<string, V> {
  let x = m.get(cluster);
  if (!x) {
    x = new Map();
    m.set(cluster, x);
  }
  return x;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The status a row asks for (lastTransitionTime aside); undefined: nothing to say yet. */
export function computePolicyStatus(row: PolicyRow, now: string): PolicyStatus | undefined {
  if (row.state === "Pending" || row.reason === "") return undefined;
  return {
    observedGeneration: row.generation,
    frontend: row.frontend,
    ...(row.nodes === undefined ? {} : { nodes: row.nodes }),
    conditions: [
      {
        type: "Accepted",
        status: row.state === "Accepted" ? "True" : "False",
        reason: row.reason,
        message: row.message,
        observedGeneration: row.generation,
        lastTransitionTime: now,
      },
    ],
  };
}

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

/** A status (ours, or what the cluster holds) without its transition time: equal = nothing to write. */
function fingerprint(status: unknown): string {
  if (!isObj(status)) return "";
  const conds = Array.isArray(status["conditions"]) ? status["conditions"] : [];
  const acc = conds.find((c) => isObj(c) && c["type"] === "Accepted") as Raw | undefined;
  return JSON.stringify([
    status["observedGeneration"] ?? null,
    status["frontend"] ?? null,
    status["nodes"] ?? null,
    acc ? [acc["status"], acc["reason"], acc["message"], acc["observedGeneration"] ?? null] : null,
  ]);
}

function acceptedOf(status: unknown): { status: unknown; time: unknown } | undefined {
  if (!isObj(status) || !Array.isArray(status["conditions"])) return undefined;
  const acc = status["conditions"].find((c) => isObj(c) && c["type"] === "Accepted") as Raw | undefined;
  return acc ? { status: acc["status"], time: acc["lastTransitionTime"] } : undefined;
}

function statusCode(e: unknown): number | undefined {
  const o = e as { statusCode?: unknown; code?: unknown };
  const c = o?.statusCode ?? o?.code;
  return typeof c === "number" ? c : undefined;
}

export type PolicyStatusWriterOptions = {
  /** changes are gathered this long before writing (default 1 s) */
  debounceMs?: number;
  /** a failed write is tried again after this (default 5 s) */
  retryMs?: number;
  /** patches in flight at once (default 8) */
  concurrency?: number;
  /**
   * The nodes whose agents hold the cluster's current view (ACKed it whole): an Accepted
   * policy's `status.nodes` counts those its nodeSelector takes. Without it `nodes` is not written.
   */
  nodesOf?: (cluster: string) => readonly string[];
  /** how often `nodes` is counted again when nothing else changed (default 60 s: agents ACK all the time) */
  nodesRefreshMs?: number;
  now?: () => Date;
};

export class PolicyStatusWriter {
  private readonly book: PolicyBook;
  private readonly world: World;
  private readonly clientOf: (cluster: string) => PolicyStatusClient | undefined;
  private readonly log: Logger;
  private readonly debounceMs: number;
  private readonly retryMs: number;
  private readonly concurrency: number;
  private readonly now: () => Date;
  private readonly nodesOf: ((cluster: string) => readonly string[]) | undefined;
  private readonly refresh: NodeJS.Timeout | undefined;
  /** per "cluster/ns/name/uid": the fingerprint last written and its status */
  private readonly written = new Map<string, { fp: string; status: PolicyStatus }>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private readonly unsubscribe: Array<() => void>;
  private closed = false;
  /** patches sent (for tests and metrics) */
  patches = 0;

  constructor(
    book: PolicyBook,
    world: World,
    clientOf: (cluster: string) => PolicyStatusClient | undefined,
    log: Logger,
    opts: PolicyStatusWriterOptions = {},
  ) {
    this.book = book;
    this.world = world;
    this.clientOf = clientOf;
    this.log = log;
    this.debounceMs = opts.debounceMs ?? 1_000;
    this.retryMs = opts.retryMs ?? 5_000;
    this.concurrency = opts.concurrency ?? 8;
    this.now = opts.now ?? (() => new Date());
    this.nodesOf = opts.nodesOf;
    this.unsubscribe = [book.onChange(() => this.schedule(this.debounceMs))];
    if (this.nodesOf) {
      this.refresh = setInterval(() => void this.flush(), opts.nodesRefreshMs ?? 60_000);
      this.refresh.unref();
    }
  }

  private schedule(ms: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, ms);
    this.timer.unref();
  }

  /** The agents' views moved (e.g. a view converged): `nodes` is counted again soon. */
  recount(): void {
    if (this.nodesOf) this.schedule(this.debounceMs);
  }

  /** Writes every status that differs from what its cluster holds; resolves when done. */
  flush(): Promise<void> {
    this.running = this.running.then(() => this.write());
    return this.running;
  }

  private async write(): Promise<void> {
    const now = this.now().toISOString();
    const todo: Array<() => Promise<boolean>> = [];
    const live = new Set<string>();
    const nodes = new Map<string, readonly string[]>();
    for (const row of this.book.rows()) {
      const c = this.world.clusters.get(row.cluster);
      // not before the listing (the cluster's statuses are not known yet), not while it cannot be reached
      if (c?.sync !== "synced" || c.health.stale) continue;
      const client = this.clientOf(row.cluster);
      if (!client) continue;
      const k = `${row.cluster}/${row.kind}/${row.namespace}/${row.name}/${row.uid}`;
      live.add(k);
      if (this.nodesOf && row.state === "Accepted") {
        if (!nodes.has(row.cluster)) nodes.set(row.cluster, this.nodesOf(row.cluster));
        const sel = policyOf(c, row.kind, row.namespace, row.name)?.nodeSelector;
        row.nodes = sel
          ? nodes.get(row.cluster)!.filter((n) => selectorMatches(sel, c.nodes.get(n)?.labels ?? {})).length
          : nodes.get(row.cluster)!.length;
      }
      const want = computePolicyStatus(row, now);
      if (!want) continue;
      const fp = fingerprint(want);
      const held = this.written.get(k);
      const seen = this.book.statusOf(row.cluster, row.namespace, row.name, row.kind);
      if (fp === (held?.fp ?? fingerprint(seen))) continue;
      // the condition's time moves only when its status does
      const before = held ? acceptedOf(held.status) : acceptedOf(seen);
      const cond = want.conditions[0]!;
      if (before && before.status === cond.status && typeof before.time === "string")
        cond.lastTransitionTime = before.time;
      todo.push(async () => {
        try {
          await client.patchStatus(row.namespace, row.name, want, row.kind);
          this.patches++;
          this.written.set(k, { fp, status: want });
          this.log.info(
            {
              cluster: row.cluster,
              kind: row.kind,
              policy: `${row.namespace}/${row.name}`,
              reason: cond.reason,
            },
            "policy status written",
          );
          return true;
        } catch (e) {
          if (statusCode(e) === 404) return true; // deleted meanwhile: its removal comes next
          this.log.warn(
            { cluster: row.cluster, policy: `${row.namespace}/${row.name}`, err: (e as Error).message },
            "cannot write the policy's status; trying again",
          );
          return false;
        }
      });
    }
    for (const k of [...this.written.keys()]) if (!live.has(k)) this.written.delete(k);
    let failed = false;
    for (let i = 0; i < todo.length; i += this.concurrency) {
      const done = await Promise.all(todo.slice(i, i + this.concurrency).map((f) => f()));
      if (done.includes(false)) failed = true;
    }
    if (failed) this.schedule(this.retryMs);
  }

  /** Stops writing (what is in flight finishes). */
  async close(): Promise<void> {
    this.closed = true;
    for (const u of this.unsubscribe) u();
    clearTimeout(this.timer);
    clearInterval(this.refresh);
    await this.running;
  }
}
