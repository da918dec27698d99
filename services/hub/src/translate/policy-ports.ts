/**
 * Pure: a policy's toPorts against its selected pods (both policy kinds).
 */
import { Protocol, type SlicePort } from "@switchyard/proto/assignment";
import type { LocalRedirectPolicy, Pod } from "../model/types.ts";

const PROTO = { TCP: Protocol.PROTOCOL_TCP, UDP: Protocol.PROTOCOL_UDP } as const;

/**
 * The toPorts as numbers, sorted by name: a toPort naming a container port
 * takes the number of the first pod (in the given order) that has it, and a
 * pod without that port at that number is left out (`kept`: the pods that
 * can serve every resolved port); a named port no pod has is left out.
 */
export function resolvePodPorts(
  toPorts: LocalRedirectPolicy["backend"]["toPorts"],
  pods: readonly Pod[],
): { ports: SlicePort[]; kept: readonly Pod[] } {
  const ports: SlicePort[] = [];
  let kept = pods;
  for (const t of toPorts) {
    if (t.targetName === undefined) {
      ports.push({ name: t.name, port: t.port, protocol: PROTO[t.protocol] });
      continue;
    }
    const target = t.targetName;
    const portOf = (pod: Pod) =>
      pod.containerPorts.find((c) => c.name === target && c.protocol === t.protocol)?.port;
    const first = kept.map(portOf).find((x) => x !== undefined);
    if (first === undefined) continue;
    ports.push({ name: t.name, port: first, protocol: PROTO[t.protocol] });
    kept = kept.filter((pod) => portOf(pod) === first);
  }
  ports.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.protocol - b.protocol));
  return { ports, kept };
}
