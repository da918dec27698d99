/**
 * BalancingPolicy resources as the hub sends them (`bp/<cluster>/ns/<name>`,
 * the backends already addressed by mode), for the agent's kernel tests and
 * benchmarks.
 */
import {
  BalancingAssignment,
  BalancingMode,
  Protocol,
  RedirectFrontendKind,
  type Resource,
} from "@switchyard/proto/assignment";

export type BalancingFrontendSpec = { ip: string; port: number; protocol?: "TCP" | "UDP"; portName?: string };

const proto = (p: "TCP" | "UDP" | undefined) => (p === "UDP" ? Protocol.PROTOCOL_UDP : Protocol.PROTOCOL_TCP);

const MODES = {
  podEndpoint: BalancingMode.BALANCING_MODE_POD_ENDPOINT,
  hostPort: BalancingMode.BALANCING_MODE_HOST_PORT,
  nodeProxy: BalancingMode.BALANCING_MODE_NODE_PROXY,
  addressEndpoint: BalancingMode.BALANCING_MODE_ADDRESS_ENDPOINT,
} as const;

/**
 * One BalancingPolicy: its frontends (a Service frontend names the Service
 * `svc/<cluster>/<namespace>/<service>` as fallback), the port of each port name, and
 * its backends' addresses (all ready).
 */
export function bpResource(
  name: string,
  frontend: { service: string } | { address: true },
  frontends: BalancingFrontendSpec[],
  toPorts: Array<{ name: string; port: number; protocol?: "TCP" | "UDP" }>,
  backends: string[],
  opts: { mode?: keyof typeof MODES; cluster?: string; namespace?: string } = {},
): Resource {
  const cluster = opts.cluster ?? "test";
  const namespace = opts.namespace ?? "ns";
  const fallback = "service" in frontend ? `svc/${cluster}/${namespace}/${frontend.service}` : "";
  const value = BalancingAssignment.fromPartial({
    cluster,
    namespace,
    name,
    frontends: frontends.map((f) => ({
      ip: f.ip,
      port: f.port,
      protocol: proto(f.protocol),
      portName: f.portName ?? "p",
      fallbackService: fallback,
      fallbackPortName: fallback ? (f.portName ?? "p") : "",
    })),
    frontendKind:
      "service" in frontend
        ? RedirectFrontendKind.REDIRECT_FRONTEND_KIND_SERVICE
        : RedirectFrontendKind.REDIRECT_FRONTEND_KIND_ADDRESS,
    mode: MODES[opts.mode ?? "addressEndpoint"],
    ports: toPorts.map((p) => ({ name: p.name, port: p.port, protocol: proto(p.protocol) })),
    endpoints: backends.map((ip) => ({ addresses: [ip], nodeName: "", ready: true, serving: true })),
  });
  return {
    name: `bp/${cluster}/${namespace}/${name}`,
    version: JSON.stringify(BalancingAssignment.toJSON(value)),
    body: { $case: "balancing", value },
  };
}
