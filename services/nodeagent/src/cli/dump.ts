/**
 * Pure: map state → readable text, like `cilium bpf lb list`.
 */
import { formatHostPort } from "@switchyard/lib/ip";
import {
  IPPROTO_TCP,
  IPPROTO_UDP,
  NatMode,
  NatType,
  nameOf,
  Scope,
  SY_FE_LOCAL_ONLY,
  SY_FE_SKIP_FROM_BACKEND,
} from "../bpf/layout.ts";
import type { MapState } from "../bpf/maps.ts";
import { serviceDisplayName } from "../events/nat-event.ts";

/** the frontends in a stable order: address, port, protocol */
function sortedFrontends(s: MapState) {
  return [...s.frontends.values()].sort((a, b) =>
    a.key.ip < b.key.ip ? -1 : a.key.ip > b.key.ip ? 1 : a.key.port - b.key.port || a.key.proto - b.key.proto,
  );
}

/**
 * `dump IP:PORT`: only the frontends a connect to that destination meets —
 * its exact entry, or a NodePort entry when the address is one of this
 * node's (or loopback). Names, backend sets and node addresses stay.
 */
export function filterMapState(
  s: MapState,
  d: { ip: string; port: number; protocol: "tcp" | "udp" },
): MapState {
  const proto = d.protocol === "udp" ? IPPROTO_UDP : IPPROTO_TCP;
  const v6 = d.ip.includes(":");
  const ownAddress = d.ip.startsWith("127.") || d.ip === "::1" || s.nodeIps.has(d.ip);
  const frontends = new Map(
    [...s.frontends].filter(([, { key }]) => {
      if (key.port !== d.port || key.proto !== proto) return false;
      if (key.scope === Scope.nodePort) return ownAddress && (key.ip === "::") === v6;
      return key.ip.toLowerCase() === d.ip.toLowerCase();
    }),
  );
  return { ...s, frontends };
}

/** `dump --json`: the same content as the text, as data (names decoded, backends resolved). */
export function mapStateJson(s: MapState) {
  const set = (setId: number, count: number) =>
    Array.from({ length: count }, (_, i) => s.backendSets.get(setId)?.[i] ?? null);
  return {
    frontends: sortedFrontends(s).map(({ key, value }) => {
      const name = s.names.get(value.svcId);
      const redirect = value.natType === NatType.localRedirect;
      return {
        ip: key.ip,
        port: key.port,
        proto: key.proto === IPPROTO_UDP ? "udp" : "tcp",
        scope: nameOf(Scope, key.scope),
        service: name ? serviceDisplayName(name) : null,
        svcId: value.svcId,
        natType: nameOf(NatType, value.natType),
        natMode: nameOf(NatMode, value.natMode),
        localOnly: (value.flags & SY_FE_LOCAL_ONLY) !== 0,
        skipFromBackend: (value.flags & SY_FE_SKIP_FROM_BACKEND) !== 0,
        affinityTimeoutS: value.affinityTimeoutS,
        qosPerSecond: value.qosPerSecond,
        backends: set(value.setId, value.count),
        ...(redirect ? { fallback: set(value.fbSetId, value.fbCount) } : {}),
      };
    }),
    nodeIps: [...s.nodeIps].sort(),
  };
}

export function formatMapState(s: MapState): string {
  const rows = sortedFrontends(s);
  const lines: string[] = [];
  for (const { key, value } of rows) {
    const name = s.names.get(value.svcId);
    const proto = key.proto === IPPROTO_UDP ? "udp" : "tcp";
    const where =
      key.scope === Scope.nodePort
        ? `<node${key.ip === "::" ? " v6" : ""}>:${key.port}`
        : formatHostPort(key.ip, key.port);
    const notes = [nameOf(NatMode, value.natMode), `svc ${value.svcId}`, `set ${value.setId}`];
    if (value.flags & SY_FE_LOCAL_ONLY) notes.push("local only");
    if (value.affinityTimeoutS) notes.push(`affinity ${value.affinityTimeoutS}s`);
    const redirect = value.natType === NatType.localRedirect;
    // a policy's entry took the Service's place for this key (priority LocalRedirect > Balancing > Service)
    if (redirect) notes.unshift("priority localRedirect > service");
    else if (value.natType === NatType.balancing) notes.unshift("priority balancing > service");
    if (redirect && value.qosPerSecond) notes.push(`qos ${value.qosPerSecond}/s`);
    if (value.flags & SY_FE_SKIP_FROM_BACKEND) notes.push("skip from backend");
    lines.push(
      `${where}/${proto}  ${name ? serviceDisplayName(name) : `svc#${value.svcId}`}  (${notes.join(", ")})`,
    );
    const list = (setId: number, count: number, arrow: string) => {
      const set = s.backendSets.get(setId) ?? [];
      for (let i = 0; i < count; i++) {
        const b = set[i];
        lines.push(
          b ? `    ${arrow} ${formatHostPort(b.ip, b.port)}` : `    ${arrow} (missing backend #${i})`,
        );
      }
    };
    if (redirect) {
      if (value.count === 0) lines.push("    (no local pod: connects take the fallback)");
      list(value.setId, value.count, "-> local");
      if (value.fbCount === 0) lines.push(`    (no fallback: connects not redirected are refused)`);
      list(value.fbSetId, value.fbCount, "-> fallback");
      continue;
    }
    if (value.count === 0) lines.push("    (no backends: connects are refused)");
    list(value.setId, value.count, "->");
  }
  if (s.nodeIps.size > 0) lines.push(`<node> = ${[...s.nodeIps].sort().join(", ")}, 127.0.0.0/8, ::1`);
  if (lines.length === 0) lines.push("(no frontends)");
  return `${lines.join("\n")}\n`;
}
