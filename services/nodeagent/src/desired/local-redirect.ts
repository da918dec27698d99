/**
 * Pure: one LocalRedirectPolicy (`lrp/…`, LocalRedirectAssignment) and this
 * node's selected pods (`lrpb/…/<node>`, LocalBackends) → the frontends it
 * takes on this node, each with its local set and its fallback set (the
 * Service entry it replaces, or the fallback Service's frontend).
 */
import { ipFamily } from "@switchyard/lib/ip";
import {
  type LocalBackends,
  type LocalRedirectAssignment,
  NatMode,
  Protocol,
  RedirectFrontendKind,
  type Resource,
} from "@switchyard/proto/assignment";
import { NatMode as BpfNatMode, NatType, Scope, SY_FE_SKIP_FROM_BACKEND } from "../bpf/layout.ts";
import type { Backend } from "../bpf/maps.ts";
import { frontendKeyString } from "../bpf/maps.ts";
import { compareBackends, type DesiredFrontend, policyFrontendKeys } from "./frontends.ts";

/** The node an `lrpb/<cluster>/<ns>/<name>/<node>` resource is for (its last segment). */
function localBackendsNode(r: Resource): string {
  return r.name.slice(r.name.lastIndexOf("/") + 1);
}

/** The policy a node's local backends belong to, when they are this node's (others' are ignored). */
export function localBackendsOf(r: Resource | undefined, node: string): LocalBackends | undefined {
  if (r?.body?.$case !== "localBackends" || localBackendsNode(r) !== node) return undefined;
  return r.body.value;
}

/** A policy frontend's dependency on Service entries, for its fallback: by Service name or by frontend key. */
export type FallbackDep = { service?: string; key?: string };

/**
 * One policy's frontends on this node. `serviceEntry(ks)` is the Service's
 * entry a Service frontend replaces; `serviceFrontend(svc, ks)` a named
 * Service's computed frontend.
 */
export function computePolicyFrontends(
  name: string,
  lrp: LocalRedirectAssignment,
  local: LocalBackends | undefined,
  serviceEntry: (ks: string) => DesiredFrontend | undefined,
  fallbackService: (service: string) => Resource | undefined,
  serviceFrontend: (service: string, ks: string) => DesiredFrontend | undefined,
): { frontends: Array<[string, DesiredFrontend]>; deps: FallbackDep[] } {
  const out: Array<[string, DesiredFrontend]> = [];
  const deps: FallbackDep[] = [];
  const byService = lrp.frontendKind === RedirectFrontendKind.REDIRECT_FRONTEND_KIND_SERVICE;
  for (const { f, family, key, ks } of policyFrontendKeys(lrp.frontends)) {
    const toPort =
      local?.ports.find((p) => p.name === f.portName && p.protocol === f.protocol) ??
      local?.ports.find((p) => p.name === f.portName && p.protocol === Protocol.PROTOCOL_UNSPECIFIED);
    const backends: Backend[] = [];
    if (toPort) {
      const seenBackends = new Set<string>();
      for (const pod of local?.pods ?? []) {
        // only ready pods that are not going away: the fallback takes over during a rollout
        if (!pod.ready || pod.terminating) continue;
        for (const ip of pod.addresses) {
          if (ipFamily(ip) !== family || seenBackends.has(ip)) continue;
          seenBackends.add(ip);
          backends.push({ ip, port: toPort.port });
        }
      }
      backends.sort(compareBackends);
    }
    let fallback: Backend[] = [];
    if (byService) {
      // the Service entry this frontend replaces: connects go there as if no policy existed
      deps.push({ key: ks });
      fallback = serviceEntry(ks)?.backends ?? [];
    } else if (f.fallbackService) {
      deps.push({ service: f.fallbackService });
      const svc = fallbackService(f.fallbackService);
      const sf =
        svc?.body?.$case === "service"
          ? svc.body.value.frontends.find(
              (x) =>
                x.mode === NatMode.NAT_MODE_CLUSTER_IP &&
                x.portName === f.fallbackPortName &&
                x.protocol === f.protocol &&
                (ipFamily(x.ip) === 6 ? 6 : 4) === family,
            )
          : undefined;
      if (sf) {
        const fks = frontendKeyString({ ip: sf.ip, port: sf.port, proto: key.proto, scope: Scope.exact });
        fallback = serviceFrontend(f.fallbackService, fks)?.backends ?? [];
      }
    }
    out.push([
      ks,
      {
        key,
        service: name,
        natType: NatType.localRedirect,
        natMode: byService ? BpfNatMode.localRedirectService : BpfNatMode.localRedirectAddress,
        flags: lrp.skipRedirectFromBackend ? SY_FE_SKIP_FROM_BACKEND : 0,
        affinityTimeoutS: 0,
        portId: 0,
        backends,
        fallback,
        qosPerSecond: lrp.qosPerSecond,
      },
    ]);
  }
  return { frontends: out, deps };
}
