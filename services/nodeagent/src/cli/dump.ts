/**
 * Pure: map state → readable text, like `cilium bpf lb list`.
 */
import { formatHostPort } from "@switchyard/lib/ip";
import {
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

export function formatMapState(s: MapState): string {
  const rows = [...s.frontends.values()].sort((a, b) =>
    a.key.ip < b.key.ip ? -1 : a.key.ip > b.key.ip ? 1 : a.key.port - b.key.port || a.key.proto - b.key.proto,
  );
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
    // a policy's entry took the Service's place for this key (priority LocalRedirect > Service)
    if (redirect) notes.unshift("priority localRedirect > service");
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
