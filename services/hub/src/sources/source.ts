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
import type { KubeKind } from "../model/types.ts";
import { type ModelObject, mapOf, objectKey, type World } from "../model/world.ts";
import type { ClusterHealthTracker } from "./health.ts";
import { KINDS, parseKubeObject } from "./kube-objects.ts";

export interface ClusterSource {
  readonly cluster: string;
  /** Resolves true once the first full listing is in the world, false when the cluster was not reachable (retrying). */
  start(): Promise<boolean>;
  stop(): Promise<void>;
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
  rejected = 0;
  constructor(world: World, cluster: string, log: Logger, tracker?: ClusterHealthTracker) {
    this.world = world;
    this.cluster = cluster;
    this.log = log;
    this.tracker = tracker;
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
    if (!r.ok) {
      this.rejected++;
      this.log.error({ origin, reason: r.error }, "object rejected");
      return false;
    }
    for (const w of r.value.warnings) this.log.warn({ origin, reason: w }, "object partly ignored");
    this.unconfirmed.get(r.value.object.kind)?.delete(objectKey(r.value.object));
    this.world.upsert(this.cluster, r.value.object);
    return true;
  }

  remove(kind: KubeKind, namespace: string, name: string): void {
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
