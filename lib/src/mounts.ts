/**
 * Where the kernel filesystems are mounted, read from /proc/mounts (never
 * hard-coded: cgroup v2 sits at /sys/fs/cgroup on unified hosts and at
 * /sys/fs/cgroup/unified on hybrid ones).
 */
import fs from "node:fs";
import { SwitchyardError } from "./errors.ts";

export function mountsOfType(type: string, mounts = fs.readFileSync("/proc/mounts", "utf8")): string[] {
  const out: string[] = [];
  for (const line of mounts.split("\n")) {
    const [, mnt, t] = line.split(" ");
    if (t === type && mnt) out.push(mnt);
  }
  return out;
}

export function findCgroup2Root(mounts?: string): string {
  const m = mountsOfType("cgroup2", mounts)[0];
  if (!m)
    throw new SwitchyardError(
      "unavailable",
      "no cgroup v2 filesystem is mounted (looked in /proc/mounts); mount one or pass --cgroup",
    );
  return m;
}
