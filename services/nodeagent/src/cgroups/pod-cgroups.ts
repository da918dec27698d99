/**
 * skipRedirectFromBackend: finds a pod's cgroups by its UID under the
 * agent's cgroup tree (`--cgroup`). kubelet names a pod's cgroup after the
 * UID: `pod<uid>` with the cgroupfs driver, `…-pod<uid with _ for ->.slice`
 * with the systemd driver (kubepods-burstable-pod1234_5678.slice). The pod's
 * directory and every directory under it (its containers) are returned; a
 * cgroup's id is its directory's inode number, as bpf_get_current_cgroup_id()
 * reports it.
 *
 * Bounded, and off the hot path: run on a change of a policy's pods and at
 * resync, it visits at most `maxDirs` directories, `maxDepth` levels deep.
 */
import fs from "node:fs";
import path from "node:path";

export type PodCgroupLimits = { maxDepth: number; maxDirs: number };
export const DEFAULT_POD_CGROUP_LIMITS: PodCgroupLimits = { maxDepth: 8, maxDirs: 100_000 };

/** Pure: the UID (one of `uids`) a cgroup directory is named after, if any. */
export function podUidOfCgroupDir(name: string, byDirName: ReadonlyMap<string, string>): string | undefined {
  const direct = byDirName.get(name);
  if (direct !== undefined) return direct;
  // systemd: <anything>-pod<uid_with_underscores>.slice
  const m = /-pod([0-9a-fA-F_]+)\.slice$/.exec(name);
  return m ? byDirName.get(`pod${m[1]}`) : undefined;
}

/** Pure: the cgroupfs directory names of `uids` ("pod<uid>", and the systemd form with underscores) → uid. */
export function podDirNames(uids: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const uid of uids) {
    out.set(`pod${uid}`, uid);
    out.set(`pod${uid.replace(/-/g, "_")}`, uid);
  }
  return out;
}

export type PodCgroupScan = { found: Map<string, bigint[]>; dirs: number; truncated: boolean };

/** uid → the cgroup ids of its pod directory and everything under it. */
export function findPodCgroups(
  root: string,
  uids: readonly string[],
  limits: PodCgroupLimits = DEFAULT_POD_CGROUP_LIMITS,
): PodCgroupScan {
  const found = new Map<string, bigint[]>();
  if (uids.length === 0) return { found, dirs: 0, truncated: false };
  const names = podDirNames(uids);
  let dirs = 0;
  let truncated = false;
  // breadth first: a pod is found at its level, its subtree collected whole
  let level: Array<{ dir: string; uid: string | undefined }> = [{ dir: root, uid: undefined }];
  for (let depth = 0; depth <= limits.maxDepth && level.length > 0; depth++) {
    const next: typeof level = [];
    for (const { dir, uid } of level) {
      if (dirs >= limits.maxDirs) {
        truncated = true;
        break;
      }
      dirs++;
      if (uid !== undefined) {
        try {
          const ids = found.get(uid) ?? [];
          ids.push(fs.statSync(dir, { bigint: true }).ino);
          found.set(uid, ids);
        } catch {
          continue; // gone meanwhile
        }
      }
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        next.push({ dir: path.join(dir, e.name), uid: uid ?? podUidOfCgroupDir(e.name, names) });
      }
    }
    if (truncated) break;
    level = next;
  }
  // directories below maxDepth were not visited
  if (level.length > 0) truncated = true;
  return { found, dirs, truncated };
}
