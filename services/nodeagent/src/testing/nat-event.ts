/** A NAT event as an agent emits it for a TCP connect to a ClusterIP, for tests; override what a case needs. */
import type { NatEvent } from "../events/nat-event.ts";

export function sampleNatEvent(over: Partial<NatEvent> = {}): NatEvent {
  return {
    time: "2026-01-01T00:00:00.000Z",
    cluster: "east",
    node: "n1",
    service: "east/demo/web",
    svcId: 7,
    cgroupId: "42",
    pid: 1234,
    isIpv4: true,
    isSuccess: true,
    natType: "service",
    natMode: "ServiceClusterIP",
    protocol: "tcp",
    hook: "connect4",
    originalDestIp: "10.96.0.10",
    originalDestPort: 80,
    natIp: "198.18.0.11",
    natPort: 8080,
    failureCode: "none",
    ...over,
  };
}
