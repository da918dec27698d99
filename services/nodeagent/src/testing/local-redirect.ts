/**
 * LocalRedirectPolicy resources as the hub sends them (`lrp/…` and one
 * node's `lrpb/…/<node>`), for the agent's unit and kernel tests.
 */
import {
  LocalBackends,
  LocalRedirectAssignment,
  Protocol,
  RedirectFrontendKind,
  type Resource,
} from "@switchyard/proto/assignment";

export type RedirectFrontendSpec = {
  ip: string;
  port: number;
  protocol?: "TCP" | "UDP";
  portName?: string;
  /** address frontends: the Service ("svc/…") and its port name that take what is not redirected */
  fallbackService?: string;
  fallbackPortName?: string;
};

export type LocalPodSpec = {
  name: string;
  ips: string[];
  ready?: boolean;
  terminating?: boolean;
  uid?: string;
};

const proto = (p: "TCP" | "UDP" | undefined) => (p === "UDP" ? Protocol.PROTOCOL_UDP : Protocol.PROTOCOL_TCP);

export function lrpResource(
  name: string,
  kind: "service" | "address",
  frontends: RedirectFrontendSpec[],
  opts: { qosPerSecond?: number; skipRedirectFromBackend?: boolean; cluster?: string } = {},
): Resource {
  const cluster = opts.cluster ?? "test";
  const value = LocalRedirectAssignment.fromPartial({
    cluster,
    namespace: "ns",
    name,
    frontends: frontends.map((f) => ({
      ip: f.ip,
      port: f.port,
      protocol: proto(f.protocol),
      portName: f.portName ?? "p",
      fallbackService: f.fallbackService ?? "",
      fallbackPortName: f.fallbackPortName ?? "",
    })),
    qosPerSecond: opts.qosPerSecond ?? 0,
    skipRedirectFromBackend: opts.skipRedirectFromBackend ?? false,
    frontendKind:
      kind === "service"
        ? RedirectFrontendKind.REDIRECT_FRONTEND_KIND_SERVICE
        : RedirectFrontendKind.REDIRECT_FRONTEND_KIND_ADDRESS,
  });
  return {
    name: `lrp/${cluster}/ns/${name}`,
    version: JSON.stringify(LocalRedirectAssignment.toJSON(value)),
    body: { $case: "localRedirect", value },
  };
}

/** One node's selected pods of policy `name`, with its toPorts (name → port). */
export function lrpbResource(
  name: string,
  node: string,
  toPorts: Array<{ name: string; port: number; protocol?: "TCP" | "UDP" }>,
  pods: LocalPodSpec[],
  cluster = "test",
): Resource {
  const value = LocalBackends.fromPartial({
    policy: `lrp/${cluster}/ns/${name}`,
    ports: toPorts.map((p) => ({ name: p.name, port: p.port, protocol: proto(p.protocol) })),
    pods: pods.map((p) => ({
      name: p.name,
      addresses: p.ips,
      ready: p.ready ?? true,
      terminating: p.terminating ?? false,
      uid: p.uid ?? "",
    })),
  });
  return {
    name: `lrpb/${cluster}/ns/${name}/${node}`,
    version: JSON.stringify(LocalBackends.toJSON(value)),
    body: { $case: "localBackends", value },
  };
}
