/**
 * skipRedirectFromBackend in the maps: `sy_lrp_skip` holds (policy id,
 * cgroup id) for each selected local pod of a policy that skips redirects
 * from its own backends, the pod found by its UID in the cgroup tree.
 * `computeSkipEntries` is pure; `syncSkipCgroups` writes the difference with
 * what the map holds (what no such pod accounts for any more is deleted).
 * Programs only test an entry's presence, so nothing waits for them. A
 * failed write is logged and tried again by the next full plan (resync).
 */
import type { Logger } from "@switchyard/lib/log";
import { parseSkipKey, type SkipCgroupMap, skipKey } from "../bpf/maps.ts";

/** Pure: the entries the map should hold, as `skipKey` strings. */
export function computeSkipEntries(
  pods: ReadonlyMap<string, readonly string[]>,
  cgroupsOf: ReadonlyMap<string, readonly bigint[]>,
  svcIdOf: (policy: string) => number | undefined,
): Set<string> {
  const want = new Set<string>();
  for (const [policy, uids] of pods) {
    const svcId = svcIdOf(policy);
    if (svcId === undefined) continue;
    for (const uid of uids) for (const id of cgroupsOf.get(uid) ?? []) want.add(skipKey(svcId, id));
  }
  return want;
}

/** Makes the map hold `want`; returns how many entries were written or deleted. */
export function syncSkipCgroups(
  skips: SkipCgroupMap,
  want: ReadonlySet<string>,
  log: Logger,
  serviceName: (svcId: number) => string | undefined,
): number {
  let have: Set<string>;
  try {
    have = skips.readSkips();
  } catch (e) {
    log.warn({ err: e }, "reading the skip-from-backend cgroups failed; tried again at resync");
    return 0;
  }
  let written = 0;
  for (const k of want) {
    if (have.has(k)) continue;
    const { svcId, cgroupId } = parseSkipKey(k);
    try {
      skips.putSkip(svcId, cgroupId);
      written++;
    } catch (e) {
      log.warn(
        { policy: serviceName(svcId), cgroupId: String(cgroupId), err: e },
        "skip-from-backend cgroup not written; tried again at resync",
      );
    }
  }
  for (const k of have) {
    if (want.has(k)) continue;
    const { svcId, cgroupId } = parseSkipKey(k);
    try {
      skips.deleteSkip(svcId, cgroupId);
      written++;
    } catch (e) {
      log.warn({ cgroupId: String(cgroupId), err: e }, "skip-from-backend cgroup not deleted");
    }
  }
  if (written > 0) log.info({ entries: want.size, writes: written }, "skip-from-backend cgroups updated");
  return written;
}
