/**
 * Hub command line → validated configuration (pure). Errors say which flag
 * was wrong and what to write instead.
 */
import { err, ok, type Result } from "@switchyard/lib/errors";

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

export function parseListen(v: string): Result<{ host: string; port: number }> {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(v);
  if (!m) return err(`--listen "${v}" must be HOST:PORT (e.g. 127.0.0.1:7443 or [::]:7443)`);
  const port = Number(m[2]);
  if (port > 65535) return err(`--listen port ${port} is out of range`);
  return ok({ host: m[1]!, port });
}
