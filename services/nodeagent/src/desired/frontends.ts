/**
 * Pure: what every desired-state module shares — the desired frontend
 * entry, and the small helpers both the Services' and the policies'
 * frontends are built with.
 */
import { ipFamily } from "@switchyard/lib/ip";
import { Protocol } from "@switchyard/proto/assignment";
import { IPPROTO_TCP, IPPROTO_UDP, Scope } from "../bpf/layout.ts";
import type { Backend, FrontendKeyModel } from "../bpf/maps.ts";
import { frontendKeyString } from "../bpf/maps.ts";

export type DesiredFrontend = {
  key: FrontendKeyModel;
  service: string;
  natType: number;
  natMode: number;
  flags: number;
  affinityTimeoutS: number;
  portId: number;
  backends: Backend[];
  /** local redirect: where a connect goes that is not redirected (empty or absent: refused) */
  fallback?: Backend[];
  /** local redirect: redirects per second (absent or 0: no limit) */
  qosPerSecond?: number;
};

export function protoNumber(p: Protocol): number {
  return p === Protocol.PROTOCOL_UDP ? IPPROTO_UDP : IPPROTO_TCP;
}

export function compareBackends(a: Backend, b: Backend): number {
  return a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port;
}

/** A policy's frontends with their family and key, each key once (the first): what both policy kinds start from. */
export function policyFrontendKeys<F extends { ip: string; port: number; protocol: Protocol }>(
  frontends: readonly F[],
): Array<{ f: F; family: 4 | 6; key: FrontendKeyModel; ks: string }> {
  const out: Array<{ f: F; family: 4 | 6; key: FrontendKeyModel; ks: string }> = [];
  const seen = new Set<string>();
  for (const f of frontends) {
    const key: FrontendKeyModel = {
      ip: f.ip,
      port: f.port,
      proto: protoNumber(f.protocol),
      scope: Scope.exact,
    };
    const ks = frontendKeyString(key);
    if (seen.has(ks)) continue;
    seen.add(ks);
    out.push({ f, family: ipFamily(f.ip) === 6 ? 6 : 4, key, ks });
  }
  return out;
}
