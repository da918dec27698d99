/**
 * Pure: which clusters a view waits for before its agents are sent anything.
 *
 * A hub never tells agents to remove a cluster's Services because it has
 * not (yet) seen that cluster: a view whose cluster is neither listed once
 * nor restored from its last known state is held back — its agents get
 * their Welcome and no delta, so they keep what they hold.
 *
 * A cluster that stays unseen for the stale grace (counted from when the hub
 * started watching it) is withdrawn by the health tracker: views whose home
 * is another cluster are then served without it, as they would be after
 * its grace had it been seen. Its own home view stays held: the hub knows
 * nothing of that cluster, and its agents' pinned state is the best there is
 * (its nodes still reach their own pods).
 */
import type { ClusterState } from "../model/world.ts";

/**
 * The clusters of a view (home first) the view waits for; empty = serve it.
 * A cluster unknown to the world (not configured) is not waited for.
 */
export function computeViewHold(
  viewClusters: readonly string[],
  states: ReadonlyMap<string, Pick<ClusterState, "sync" | "health">>,
): string[] {
  const waiting: string[] = [];
  viewClusters.forEach((name, i) => {
    const c = states.get(name);
    if (c?.sync !== "pending") return;
    const home = i === 0;
    if (home || !c.health.withdrawn) waiting.push(name);
  });
  return waiting;
}
