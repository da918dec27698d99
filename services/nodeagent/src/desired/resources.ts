/**
 * The agent's store of accepted resources. A delta from the hub is validated
 * resource by resource: good ones replace what was held, bad ones are refused
 * (the last good version stays) and named in the NACK.
 */
import { ipFamily } from "@switchyard/lib/ip";
import { ViewDigest } from "@switchyard/lib/view-digest";
import {
  NatMode,
  Protocol,
  type Resource,
  type StreamAssignmentsResponse,
} from "@switchyard/proto/assignment";

export type ResourceError = { name: string; message: string };

/** One accepted change: what was held before (undefined: new) and after (undefined: removed). */
export type ResourceChange = { before: Resource | undefined; after: Resource | undefined };

export type DeltaOutcome = { errors: ResourceError[]; changed: boolean; changes: ResourceChange[] };

/** A policy's frontends (either kind): an IP, a port, TCP or UDP. */
function validatePolicyFrontends(
  frontends: ReadonlyArray<{ ip: string; port: number; protocol: Protocol }>,
  what: string,
): string | undefined {
  for (const f of frontends) {
    if (!ipFamily(f.ip)) return `${what} frontend ip "${f.ip}" is not an IP address`;
    if (!(f.port >= 1 && f.port <= 65535))
      return `${what} frontend ${f.ip} port ${f.port} is out of range 1-65535`;
    if (f.protocol !== Protocol.PROTOCOL_TCP && f.protocol !== Protocol.PROTOCOL_UDP)
      return `${what} frontend ${f.ip}:${f.port} has unsupported protocol ${f.protocol} (TCP or UDP)`;
  }
  return undefined;
}

function validateResource(r: Resource): string | undefined {
  if (!r.name) return "resource has no name";
  if (!r.version) return "resource has no version";
  const body = r.body;
  if (!body)
    return "resource has no body (expected service, backend_slice, local_redirect or local_backends)";
  if (body.$case === "service") {
    for (const f of body.value.frontends) {
      if (f.mode === NatMode.NAT_MODE_NODE_PORT) {
        if (f.ip !== "")
          return `node-port frontend ${f.port} carries an address ("${f.ip}"); node ports apply to every node address`;
      } else if (!ipFamily(f.ip)) return `frontend ip "${f.ip}" is not an IP address`;
      if (!(f.port >= 1 && f.port <= 65535)) return `frontend ${f.ip} port ${f.port} is out of range 1-65535`;
      if (f.protocol !== Protocol.PROTOCOL_TCP && f.protocol !== Protocol.PROTOCOL_UDP) {
        return `frontend ${f.ip}:${f.port} has unsupported protocol ${f.protocol} (TCP or UDP)`;
      }
    }
    return undefined;
  }
  if (body.$case === "localRedirect") return validatePolicyFrontends(body.value.frontends, "redirect");
  if (body.$case === "nodeEntry") {
    for (const p of body.value.ports) {
      const fam = ipFamily(p.address);
      if (!fam) return `entry address "${p.address}" is not an IP address`;
      if (!(p.port >= 1 && p.port <= 65535))
        return `entry ${p.address} port ${p.port} is out of range 1-65535`;
      if (p.protocol !== Protocol.PROTOCOL_TCP && p.protocol !== Protocol.PROTOCOL_UDP)
        return `entry ${p.address}:${p.port} has unsupported protocol ${p.protocol} (TCP or UDP)`;
      for (const t of p.targets) {
        if (ipFamily(t.ip) !== fam)
          return `entry ${p.address}:${p.port} target "${t.ip}" is not an IP address of the entry's family`;
        if (!(t.port >= 1 && t.port <= 65535))
          return `entry ${p.address}:${p.port} target ${t.ip} port ${t.port} is out of range 1-65535`;
      }
    }
    return undefined;
  }
  if (body.$case === "balancing") {
    const bad = validatePolicyFrontends(body.value.frontends, "balancing");
    if (bad) return bad;
    for (const p of body.value.ports)
      if (!(p.port >= 1 && p.port <= 65535))
        return `balancing port "${p.name}" ${p.port} is out of range 1-65535`;
    for (const e of body.value.endpoints)
      for (const a of e.addresses)
        if (!ipFamily(a)) return `balancing backend address "${a}" is not an IP address`;
    return undefined;
  }
  if (body.$case === "balancingNode")
    return body.value.policy ? undefined : "balancing node marker names no policy";
  if (body.$case === "localBackends") {
    if (!body.value.policy) return "local backends name no policy";
    for (const p of body.value.ports)
      if (!(p.port >= 1 && p.port <= 65535))
        return `local backend port "${p.name}" ${p.port} is out of range 1-65535`;
    for (const pod of body.value.pods)
      for (const a of pod.addresses)
        if (!ipFamily(a)) return `pod ${pod.name} address "${a}" is not an IP address`;
    return undefined;
  }
  if (!body.value.service) return "backend slice names no service";
  for (const p of body.value.ports) {
    if (!(p.port >= 1 && p.port <= 65535)) return `slice port "${p.name}" ${p.port} is out of range 1-65535`;
  }
  for (const e of body.value.endpoints) {
    for (const a of e.addresses) if (!ipFamily(a)) return `endpoint address "${a}" is not an IP address`;
  }
  return undefined;
}

export class ResourceStore {
  readonly resources = new Map<string, Resource>();
  private readonly digest = new ViewDigest();

  /** The view version of exactly what is held (Hello.held_view_version). */
  get viewVersion(): string {
    return this.digest.version;
  }

  /** Forgets everything held (a held view from disk that did not check out). */
  clear(): void {
    for (const r of this.resources.values()) this.digest.remove(r.name, r.version);
    this.resources.clear();
  }

  versions(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of this.resources) out[k] = v.version;
    return out;
  }

  /** Applies one hub delta; returns per-resource errors (empty = ACK). */
  applyDelta(msg: StreamAssignmentsResponse): DeltaOutcome {
    const errors: ResourceError[] = [];
    const changes: ResourceChange[] = [];
    for (const r of msg.resources) {
      const problem = validateResource(r);
      if (problem) {
        errors.push({ name: r.name || "(unnamed)", message: problem });
        continue;
      }
      const old = this.resources.get(r.name);
      if (old?.version !== r.version) changes.push({ before: old, after: r });
      if (old) this.digest.remove(old.name, old.version);
      this.digest.add(r.name, r.version);
      this.resources.set(r.name, r);
    }
    for (const name of msg.removedResources) {
      const old = this.resources.get(name);
      if (!old) continue;
      this.digest.remove(old.name, old.version);
      this.resources.delete(name);
      changes.push({ before: old, after: undefined });
    }
    return { errors, changed: changes.length > 0, changes };
  }
}
