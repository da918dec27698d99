/**
 * A cluster source feeds one cluster's objects into the world. Sources hold
 * no policy: they parse at the boundary, report bad objects, and keep going.
 */
import type { Logger } from "@switchyard/lib/log";
import type { KubeKind } from "../model/types.ts";
import type { World } from "../model/world.ts";
import type { ClusterHealthTracker } from "./health.ts";
import { parseKubeObject } from "./kube-objects.ts";

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
    this.world.upsert(this.cluster, r.value.object);
    return true;
  }

  remove(kind: KubeKind, namespace: string, name: string): void {
    this.world.remove(this.cluster, kind, namespace, name);
  }
}
