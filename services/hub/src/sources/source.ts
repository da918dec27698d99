/**
 * A cluster source feeds one cluster's objects into the world. Sources hold
 * no policy: they parse at the boundary, report bad objects, and keep going.
 *
 * A cluster may start from its last known state (restored): those objects
 * are served until the source's first listing of their kind, which keeps
 * what it lists and removes the rest — nothing is removed before the hub
 * has seen what the cluster holds now.
 */
import type { Logger } from "@switchyard/lib/log";
import type { KubeKind, PolicyKind } from "../model/types.ts";
import { type ModelObject, mapOf, objectKey, type World } from "../model/world.ts";
import type { PolicyObserver, PolicyStatusClient } from "../status/policy-status.ts";
import type { ClusterHealthTracker } from "./health.ts";
import { KINDS, parseKubeObject } from "./kube-objects.ts";
import { policyIdentity } from "./policy-objects.ts";

export interface ClusterSource {
  readonly cluster: string;
  /** Resolves true once the first full listing is in the world, false when the cluster was not reachable (retrying). */
  start(): Promise<boolean>;
  stop(): Promise<void>;
  /** Writes policies' status in the cluster; absent for sources without an API server (directories). */
  policyStatusClient?(): PolicyStatusClient;
}

/** Kinds whose updates often change nothing the hub keeps (Pod status, a policy's own status): such an update is dropped. */
const SKIP_UNCHANGED: ReadonlySet<KubeKind> = new Set<KubeKind>([
  "Pod",
  "LocalRedirectPolicy",
  "BalancingPolicy",
]);

/** The policy kinds: their status is the hub's to write. */
function policyKindOf(kind: unknown): PolicyKind | undefined {
  return kind === "LocalRedirectPolicy" || kind === "BalancingPolicy" ? kind : undefined;
}

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

/** A refused policy's frontend as its spec gives it, as far as it can be read. */
function rawFrontend(raw: unknown): string {
  const spec = isObj(raw) && isObj(raw["spec"]) ? raw["spec"] : {};
  const fe = isObj(spec["frontend"]) ? spec["frontend"] : {};
  const svc = isObj(fe["service"]) ? fe["service"]["name"] : undefined;
  const ip = isObj(fe["address"]) ? fe["address"]["ip"] : undefined;
  return [typeof svc === "string" ? `svc ${svc}` : "", typeof ip === "string" ? ip : ""]
    .filter(Boolean)
    .join(" + ");
}

export type RejectedObject = { kind: string; namespace: string; name: string; reason: string };

const rejectKey = (kind: string, namespace: string, name: string) => `${kind}/${namespace}/${name}`;

/** kind, namespace and name of a raw object, as far as it has them (Nodes have no namespace) */
function identityOf(raw: unknown): { kind: string; namespace: string; name: string } | undefined {
  if (!isObj(raw) || typeof raw["kind"] !== "string") return undefined;
  const meta = isObj(raw["metadata"]) ? raw["metadata"] : {};
  const name = typeof meta["name"] === "string" ? meta["name"] : "";
  const ns =
    typeof meta["namespace"] === "string" ? meta["namespace"] : raw["kind"] === "Node" ? "" : "default";
  return { kind: raw["kind"], namespace: ns, name };
}

/** Writes raw Kubernetes objects into the world; shared by every source. */
export class WorldWriter {
  readonly cluster: string;
  private readonly world: World;
  private readonly log: Logger;
  private readonly tracker: ClusterHealthTracker | undefined;
  /** restored objects no listing has confirmed yet, per kind (removed when their kind is listed) */
  private readonly unconfirmed = new Map<KubeKind, Set<string>>();
  private readonly listedKinds = new Set<KubeKind>();
  private readonly policies: PolicyObserver | undefined;
  /** objects rejected since the source started (a counter, for metrics) */
  rejected = 0;
  /** the objects refused as they are now, by kind/namespace/name: gone once fixed or removed */
  readonly rejectedNow = new Map<string, RejectedObject>();
  constructor(
    world: World,
    cluster: string,
    log: Logger,
    tracker?: ClusterHealthTracker,
    policies?: PolicyObserver,
  ) {
    this.world = world;
    this.cluster = cluster;
    this.log = log;
    this.tracker = tracker;
    this.policies = policies;
  }

  /** The source reaches its cluster (up) or not (down, with the reason). */
  health(up: boolean, reason?: string): void {
    this.tracker?.report(this.cluster, up, reason);
  }

  /**
   * Starts from a last known state: `objects` (from the shared state) go
   * into the world, and every object the world holds for the cluster is
   * kept until a listing of its kind says whether it still exists. Called
   * before the source starts.
   */
  restore(objects: readonly ModelObject[] = []): void {
    for (const o of objects) this.world.upsert(this.cluster, o);
    const c = this.world.cluster(this.cluster);
    for (const kind of KINDS) this.unconfirmed.set(kind, new Set(mapOf(c, kind).keys()));
    this.world.setSync(this.cluster, "restored");
  }

  /** Returns false when the object was rejected (the previous version of it stays). */
  upsert(raw: unknown, origin?: string): boolean {
    const r = parseKubeObject(raw, this.cluster);
    if (r === undefined) return true;
    const kind = isObj(raw) ? policyKindOf(raw["kind"]) : undefined;
    const id = kind ? policyIdentity(raw) : undefined;
    const policy = id && kind ? { ...id, kind } : undefined;
    if (policy)
      this.policies?.observed(
        this.cluster,
        policy.namespace,
        policy.name,
        (raw as Raw)["status"],
        policy.kind,
      );
    if (!r.ok) {
      const who = identityOf(raw);
      if (who)
        this.rejectedNow.set(rejectKey(who.kind, who.namespace, who.name), { ...who, reason: r.error });
      // a refused policy comes back unchanged after each write of its status: said once
      const known =
        policy && this.policies?.rejected(this.cluster, policy, r.error, rawFrontend(raw)) === false;
      if (known) return false;
      this.rejected++;
      this.log.error({ origin, reason: r.error }, "object rejected");
      return false;
    }
    for (const w of r.value.warnings) this.log.warn({ origin, reason: w }, "object partly ignored");
    const o = r.value.object;
    const k = objectKey(o);
    if (this.rejectedNow.size > 0) {
      const who = identityOf(raw);
      if (who) this.rejectedNow.delete(rejectKey(who.kind, who.namespace, who.name));
    }
    this.unconfirmed.get(o.kind)?.delete(k);
    if (o.kind === "LocalRedirectPolicy" || o.kind === "BalancingPolicy")
      this.policies?.parsed(this.cluster, o.value.namespace, o.value.name, o.kind);
    if (SKIP_UNCHANGED.has(o.kind)) {
      const cur = mapOf(this.world.cluster(this.cluster), o.kind).get(k);
      if (cur !== undefined && JSON.stringify(cur) === JSON.stringify(o.value)) return true;
    }
    this.world.upsert(this.cluster, o);
    return true;
  }

  remove(kind: KubeKind, namespace: string, name: string): void {
    this.rejectedNow.delete(rejectKey(kind, namespace, name));
    const pk = policyKindOf(kind);
    if (pk) this.policies?.removed(this.cluster, namespace, name, pk);
    this.world.remove(this.cluster, kind, namespace, name);
  }

  /**
   * The source has listed every object of a kind (a CRD that is not
   * installed counts, with none): restored objects of that kind it did not
   * list are gone. Once every kind is listed the cluster is synced.
   */
  listed(kind: KubeKind): void {
    if (this.listedKinds.has(kind)) return;
    this.listedKinds.add(kind);
    const gone = this.unconfirmed.get(kind);
    this.unconfirmed.delete(kind);
    if (gone?.size) {
      this.log.info({ kind, removed: gone.size }, "restored objects no longer in the cluster removed");
      for (const key of gone) {
        const slash = key.indexOf("/");
        if (slash < 0) this.world.remove(this.cluster, kind, "", key);
        else this.world.remove(this.cluster, kind, key.slice(0, slash), key.slice(slash + 1));
      }
    }
    if (this.listedKinds.size < KINDS.length) return;
    this.world.setSync(this.cluster, "synced");
    this.tracker?.synced(this.cluster);
  }
}
