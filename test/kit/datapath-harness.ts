/**
 * The agent's data plane without a hub: the real BPF object loaded through
 * the real libbpf adapter into a sandbox cgroup, fed with assignment
 * resources directly. Kernel tests drive clients in the sandbox against it.
 */
import path from "node:path";
import { silentLogger } from "@switchyard/lib/log";
import {
  NatMode,
  Protocol,
  type Resource,
  type ServiceAssignment,
  StreamAssignmentsResponse,
  TrafficDistribution,
} from "@switchyard/proto/assignment";
import { AgentCore } from "../../services/nodeagent/src/agent.ts";
import {
  type DatapathOptions,
  type EventReader,
  LibbpfDatapath,
  uninstallPins,
} from "../../services/nodeagent/src/bpf/datapath.ts";
import { findPodCgroups } from "../../services/nodeagent/src/cgroups/pod-cgroups.ts";
import type { ResourceError } from "../../services/nodeagent/src/desired/resources.ts";
import type { NatEvent } from "../../services/nodeagent/src/events/nat-event.ts";
import { REPO } from "./proc.ts";
import { Sandbox } from "./sandbox.ts";
import type { ProbeResult } from "./stack.ts";

export const BPF_OBJECT = path.join(REPO, "bpf/build/switchyard.bpf.o");

export type UdpProbeResult =
  | { ok: true; reply: string; from: string; peer: string | null }
  | { ok: false; code: string };

export type FrontendSpec = {
  ip: string;
  port: number;
  protocol?: "TCP" | "UDP";
  mode?: NatMode;
  portName?: string;
};
export type EndpointSpec = {
  ip: string;
  node?: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
};

export function serviceResource(
  name: string,
  frontends: FrontendSpec[],
  extra: Partial<
    Pick<ServiceAssignment, "externalTrafficLocal" | "internalTrafficLocal" | "affinityTimeoutSeconds">
  > = {},
): Resource {
  return {
    name: `svc/test/ns/${name}`,
    version: JSON.stringify([frontends, extra]),
    body: {
      $case: "service",
      value: {
        cluster: "test",
        namespace: "ns",
        name,
        frontends: frontends.map((f) => ({
          ip: f.ip,
          port: f.port,
          protocol: f.protocol === "UDP" ? Protocol.PROTOCOL_UDP : Protocol.PROTOCOL_TCP,
          mode: f.mode ?? NatMode.NAT_MODE_CLUSTER_IP,
          portName: f.portName ?? "p",
        })),
        externalTrafficLocal: extra.externalTrafficLocal ?? false,
        internalTrafficLocal: extra.internalTrafficLocal ?? false,
        affinityTimeoutSeconds: extra.affinityTimeoutSeconds ?? 0,
        backendTiers: [],
        trafficDistribution: TrafficDistribution.TRAFFIC_DISTRIBUTION_UNSPECIFIED,
        externalTrafficStrict: false,
      },
    },
  };
}

export function sliceResource(
  service: string,
  port: number,
  endpoints: EndpointSpec[],
  protocol: "TCP" | "UDP" = "TCP",
  portName = "p",
): Resource {
  const body = {
    service: `svc/test/ns/${service}`,
    ports: [
      { name: portName, port, protocol: protocol === "UDP" ? Protocol.PROTOCOL_UDP : Protocol.PROTOCOL_TCP },
    ],
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      nodeName: e.node ?? "node-1",
      ready: e.ready ?? true,
      serving: e.serving ?? e.ready ?? true,
      terminating: e.terminating ?? false,
      zone: "",
      forZones: [],
    })),
  };
  return {
    name: `eps/test/ns/${service}-${protocol.toLowerCase()}`,
    version: JSON.stringify(body),
    body: { $case: "backendSlice", value: body },
  };
}

export class DatapathHarness {
  readonly sandbox: Sandbox;
  readonly dp: LibbpfDatapath;
  readonly core: AgentCore;
  readonly pinDir: string;
  readonly events: NatEvent[] = [];
  private readonly reader: EventReader;
  private nonce = 0;
  private current = new Map<string, Resource>();

  private constructor(sandbox: Sandbox, dp: LibbpfDatapath, core: AgentCore, pinDir: string) {
    this.sandbox = sandbox;
    this.dp = dp;
    this.core = core;
    this.pinDir = pinDir;
    dp.maps.writeSettings({ eventsOn: true, sampleOneIn: 1 });
    this.reader = dp.readEvents((rec) => core.handleEventRecord(rec, undefined, "test"));
    core.onEventHook = (e) => this.events.push(e);
    core.onBackendsRemoved = (dead) => dp.destroyUdpSockets(dead);
    // skipRedirectFromBackend: pod cgroups (pod<uid>) are looked for under the sandbox's cgroup
    core.findPodCgroups = (uids) => findPodCgroups(sandbox.cgroup, uids).found;
  }

  static create(
    prefix: string,
    opts: {
      nodeAddresses?: string[];
      maxFrontends?: number;
      maxBackends?: number;
      udpWalker?: DatapathOptions["udpWalker"];
    } = {},
  ): DatapathHarness {
    const sandbox = Sandbox.create(prefix);
    const pinDir = `/sys/fs/bpf/${sandbox.name}`;
    try {
      const dp = LibbpfDatapath.open({
        objectPath: BPF_OBJECT,
        pinDir,
        cgroupPath: sandbox.cgroup,
        log: silentLogger(),
        ...(opts.maxFrontends ? { maxFrontends: opts.maxFrontends } : {}),
        ...(opts.maxBackends ? { maxBackends: opts.maxBackends } : {}),
        ...(opts.udpWalker ? { udpWalker: opts.udpWalker } : {}),
      });
      // a first start attaches only when told (the agent: once a complete view is in the maps); tests attach at once
      dp.attachNow();
      const core = new AgentCore(dp.maps, "node-1", opts.nodeAddresses ?? [], silentLogger());
      core.cluster = "test";
      return new DatapathHarness(sandbox, dp, core, pinDir);
    } catch (e) {
      try {
        uninstallPins(pinDir);
      } catch {}
      sandbox.cleanup();
      throw e;
    }
  }

  /** Replaces the whole assignment (like a hub delta); returns the NACK errors (empty = ACK). */
  assign(resources: Resource[]): ResourceError[] {
    const next = new Map(resources.map((r) => [r.name, r]));
    const removed = [...this.current.keys()].filter((n) => !next.has(n));
    const changed = resources.filter((r) => this.current.get(r.name)?.version !== r.version);
    this.current = next;
    return this.core.onDelta(
      StreamAssignmentsResponse.fromPartial({
        nonce: String(++this.nonce),
        resources: changed,
        removedResources: removed,
        viewComplete: true,
      }),
    );
  }

  /** Connected UDP sockets destroyed because their backend was removed, once every walk asked for has run. */
  async destroyedUdpSockets(): Promise<number> {
    const reaper = this.dp.udpReaper;
    if (!reaper) throw new Error("this kernel has no bpf_sock_destroy (Linux < 6.5)");
    // a backend leaves the maps when its old set is deleted, a grace period after the flip
    await this.core.whenRetired();
    await reaper.idle();
    return reaper.totals.destroyed;
  }

  async startBackend(name: string, ip: string, port: number): Promise<void> {
    await this.sandbox.startEchoServer(name, ip, port);
  }

  private runClient(script: string, args: string[], inCgroup: boolean): Promise<unknown> {
    return this.sandbox.runKitClient(script, args, inCgroup);
  }

  tcp(ip: string, port: number, inCgroup = true): Promise<ProbeResult> {
    return this.runClient("tcp-probe.ts", [ip, String(port)], inCgroup) as Promise<ProbeResult>;
  }

  udp(ip: string, port: number, mode: "connected" | "unconnected"): Promise<UdpProbeResult> {
    return this.runClient("udp-probe.ts", [ip, String(port), mode], true) as Promise<UdpProbeResult>;
  }

  /** Many connects from one client process; returns how often each backend answered. */
  async tcpMany(
    ip: string,
    port: number,
    count: number,
  ): Promise<{
    ok: number;
    failed: number;
    replies: Record<string, number>;
    errors: Record<string, number>;
  }> {
    return this.runClient("connect-loop.ts", [ip, String(port), String(count)], true) as Promise<{
      ok: number;
      failed: number;
      replies: Record<string, number>;
      errors: Record<string, number>;
    }>;
  }

  cleanup(): void {
    this.reader.close();
    this.core.stop();
    this.dp.close();
    try {
      uninstallPins(this.pinDir);
    } catch {}
    this.sandbox.cleanup();
  }
}
