/**
 * What `run` checks before it loads anything, so that a missing privilege,
 * a wrong --cgroup or an unreadable CA file is said as such (with the flag
 * to fix) instead of surfacing as an errno from libbpf or grpc-js, and
 * before anything is pinned or attached.
 *
 * The compute* functions are pure (tested with tables); the check*
 * functions read /proc, statfs and files.
 */
import { X509Certificate } from "node:crypto";
import fs from "node:fs";
import { err, ok, type Result } from "@switchyard/lib/errors";
import { mountsOfType } from "@switchyard/lib/mounts";
import koffi from "koffi";

/** capability numbers (linux/capability.h) */
const CAP = { NET_ADMIN: 12, SYS_ADMIN: 21, PERFMON: 38, BPF: 39 } as const;
/** statfs f_type of a cgroup v2 filesystem (linux/magic.h) */
export const CGROUP2_SUPER_MAGIC = 0x63677270n;

/**
 * What this process lacks to load and attach the programs, from its
 * effective capability set (CapEff in /proc/self/status, hex); undefined
 * when it has what it needs: CAP_BPF (or CAP_SYS_ADMIN, which older kernels
 * ask for), CAP_PERFMON (or CAP_SYS_ADMIN: without either the verifier refuses
 * the programs' pointer arithmetic) and CAP_NET_ADMIN (cgroup socket programs).
 */
export function computeMissingPrivileges(capEffHex: string, uid: number): string | undefined {
  const eff = BigInt(`0x${capEffHex.trim() || "0"}`);
  const has = (n: number) => (eff & (1n << BigInt(n))) !== 0n;
  const missing: string[] = [];
  if (!has(CAP.BPF) && !has(CAP.SYS_ADMIN)) missing.push("CAP_BPF");
  if (!has(CAP.PERFMON) && !has(CAP.SYS_ADMIN)) missing.push("CAP_PERFMON");
  if (!has(CAP.NET_ADMIN)) missing.push("CAP_NET_ADMIN");
  if (missing.length === 0) return undefined;
  const who = uid === 0 ? "runs as root but lacks" : `runs as uid ${uid}, not root, and lacks`;
  return `run loads eBPF programs, and this process ${who} ${missing.length > 1 ? `${missing.slice(0, -1).join(", ")} and ${missing.at(-1)}` : missing[0]}; run it as root, or give it CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (kernels before 5.8: CAP_SYS_ADMIN) (systemd: AmbientCapabilities=; Kubernetes: securityContext.capabilities.add)`;
}

/** The effective capability set of this process, as /proc/self/status says it. */
export function checkPrivileges(status = fs.readFileSync("/proc/self/status", "utf8")): Result<void> {
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? "0";
  const problem = computeMissingPrivileges(capEff, process.getuid?.() ?? 0);
  return problem ? err(problem) : ok(undefined);
}

/** The filesystem type (statfs f_type) of a path, or an errno name. */
function statfsType(p: string): Result<bigint> {
  const libc = koffi.load("libc.so.6");
  const statfs = libc.func("int statfs(const char *path, _Out_ uint8_t *buf)");
  // struct statfs is 120 bytes on 64-bit Linux; f_type (a long) comes first
  const buf = Buffer.alloc(256);
  if ((statfs(p, buf) as number) !== 0) return err(`statfs failed (errno ${koffi.errno()})`);
  return ok(buf.readBigInt64LE(0));
}

/** Why a --cgroup path cannot take the programs, or undefined when it is a cgroup v2 directory. */
export function computeCgroupProblem(
  flagValue: string,
  st: { isDirectory: boolean } | undefined,
  fsType: bigint | undefined,
  cgroup2Mounts: string[],
): string | undefined {
  const where = cgroup2Mounts.length
    ? `; cgroup v2 is mounted at ${cgroup2Mounts.join(", ")} on this host`
    : "; no cgroup v2 filesystem is mounted on this host (mount one: mount -t cgroup2 none /sys/fs/cgroup)";
  if (!st) return `--cgroup ${flagValue} does not exist${where}`;
  if (!st.isDirectory) return `--cgroup ${flagValue} is not a directory${where}`;
  if (fsType !== undefined && fsType !== CGROUP2_SUPER_MAGIC)
    return `--cgroup ${flagValue} is not a cgroup v2 directory (its filesystem type is 0x${fsType.toString(16)}, cgroup2's is 0x${CGROUP2_SUPER_MAGIC.toString(16)})${where}`;
  return undefined;
}

export function checkCgroup(p: string): Result<void> {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(p);
  } catch {}
  const type = st?.isDirectory() ? statfsType(p) : undefined;
  const problem = computeCgroupProblem(
    p,
    st && { isDirectory: st.isDirectory() },
    type?.ok ? type.value : undefined,
    mountsOfType("cgroup2"),
  );
  return problem ? err(problem) : ok(undefined);
}

/** The CA bundle at `file` (named by `flag` in errors): readable and holding a certificate. */
export function checkCaFile(flag: string, file: string): Result<void> {
  let pem: string;
  try {
    pem = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (e as Error).message;
    return err(`${flag} ${file}: cannot read it (${why}); give the hub's CA certificate (PEM)`);
  }
  try {
    new X509Certificate(pem);
  } catch {
    return err(
      `${flag} ${file} holds no PEM certificate; give the hub's CA certificate (-----BEGIN CERTIFICATE-----)`,
    );
  }
  return ok(undefined);
}

/** Whether a HOST:PORT names this machine's loopback (a token sent there in clear stays on the host). */
export function isLoopbackAddress(hostPort: string): boolean {
  const host = (/^\[([^\]]+)\]:\d+$/.exec(hostPort)?.[1] ?? hostPort.replace(/:\d+$/, "")).toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
