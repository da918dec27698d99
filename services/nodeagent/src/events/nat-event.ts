/**
 * Pure: a raw ring-buffer record → the NAT event people read, with the
 * agent's ids named, and the NATS subject it is published on.
 *
 * Field names follow the original system's event (CgroupId, IsIpv4, SvcId,
 * IsSuccess, NatType, NatMode, Protocol, OriginalDest*, Nat*, Pid,
 * FailureCode), in camelCase, plus the service's name, cluster, node, hook
 * and time.
 */
import { formatIp16 } from "@switchyard/lib/ip";
import { FailureCode, Fallback, Hook, IPPROTO_UDP, NatType, nameOf, type RawEvent } from "../bpf/layout.ts";

export type NatEvent = {
  time: string;
  cluster: string;
  node: string;
  service: string;
  svcId: number;
  cgroupId: string;
  pid: number;
  isIpv4: boolean;
  isSuccess: boolean;
  natType: string;
  natMode: string;
  protocol: "tcp" | "udp";
  hook: string;
  originalDestIp: string;
  originalDestPort: number;
  natIp: string;
  natPort: number;
  failureCode: string;
  /** a local redirect that went to its fallback: why ("noLocal", "qos", "fromBackend"); absent otherwise */
  fallback?: string;
  /**
   * unconnected UDP (hook sendmsg4/6): the datagrams of this flow (socket →
   * frontend → backend) the event stands for — 1 for the flow's first; after
   * that a flow emits at most one event a second, counting the datagrams
   * since its previous one. Absent for connects (one event each).
   */
  datagrams?: number;
  /**
   * set by the publisher: 1, 2, 3, … per agent run, in emission order. A
   * repeat is a re-send after a confirmation the connection lost (dedupe on
   * node + seq); a gap is an event the agent counted as dropped.
   */
  seq?: number;
};

const MODE_NAMES: Record<number, string> = {
  1: "ServiceClusterIP",
  2: "ServiceNodePort",
  3: "ServiceLoadBalancer",
  4: "ServiceExternalIP",
  5: "LocalRedirectService",
  6: "LocalRedirectAddress",
};

export type EventContext = {
  cluster: string;
  node: string;
  /** agent-local service id → resource name ("svc/<cluster>/<ns>/<name>") */
  serviceName(svcId: number): string | undefined;
  /** wall clock (ms) and monotonic clock (ns) read at the same moment */
  nowWallMs: number;
  nowMonoNs: bigint;
};

/** "svc/<cluster>/<ns>/<name>" → "<cluster>/<ns>/<name>"; a policy keeps its kind ("lrp/…") */
export function serviceDisplayName(resourceName: string): string {
  return resourceName.startsWith("svc/") ? resourceName.slice(4) : resourceName;
}

export function computeNatEvent(raw: RawEvent, ctx: EventContext): NatEvent {
  const ageMs = Number(ctx.nowMonoNs - raw.tsNs) / 1e6;
  const name = ctx.serviceName(raw.svcId);
  return {
    time: new Date(ctx.nowWallMs - Math.max(0, ageMs)).toISOString(),
    cluster: ctx.cluster,
    node: ctx.node,
    service: name ? serviceDisplayName(name) : `unknown(${raw.svcId})`,
    svcId: raw.svcId,
    cgroupId: raw.cgroupId.toString(),
    pid: raw.pid,
    isIpv4: raw.family === 4,
    isSuccess: raw.success,
    natType: nameOf(NatType, raw.natType),
    natMode: MODE_NAMES[raw.natMode] ?? `unknown(${raw.natMode})`,
    protocol: raw.proto === IPPROTO_UDP ? "udp" : "tcp",
    hook: nameOf(Hook, raw.hook),
    originalDestIp: formatIp16(raw.origAddr),
    originalDestPort: raw.origPort,
    natIp: raw.success ? formatIp16(raw.natAddr) : "",
    natPort: raw.natPort,
    failureCode: nameOf(FailureCode, raw.failureCode),
    ...(raw.fallback !== Fallback.none ? { fallback: nameOf(Fallback, raw.fallback) } : {}),
    ...(raw.hook === Hook.sendmsg4 || raw.hook === Hook.sendmsg6 ? { datagrams: raw.count } : {}),
  };
}

/** NATS subject tokens may not hold '.', '*', '>' or spaces; Kubernetes names only hold '.' of those. */
export function subjectToken(s: string): string {
  const t = s.replace(/\./g, "_").replace(/[\s*>]/g, "-");
  return t === "" ? "_" : t;
}

/** switchyard.nat.<cluster>.<node>.<namespace>.<service> — subscribers filter with wildcards. */
export function computeEventSubject(prefix: string, ev: NatEvent): string {
  // "<cluster>/<ns>/<name>", or "mcs/<cluster>/<ns>/<name>" for a clusterset IP
  const parts = ev.service.split("/");
  const ns = parts.length >= 3 ? parts[parts.length - 2]! : "_";
  const svc = parts.length >= 3 ? parts[parts.length - 1]! : ev.service;
  return [prefix, subjectToken(ev.cluster), subjectToken(ev.node), subjectToken(ns), subjectToken(svc)].join(
    ".",
  );
}
