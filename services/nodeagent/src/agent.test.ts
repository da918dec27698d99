/**
 * The agent applies deltas incrementally (only the Services a delta touches
 * are recomputed, only their frontends planned). Whatever the sequence of
 * deltas, the maps must end up exactly as a fresh agent builds them from the
 * same resources in one go, with no set or name left behind.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import {
  NatMode,
  Protocol,
  type Resource,
  StreamAssignmentsResponse,
  TrafficDistribution,
} from "@switchyard/proto/assignment";
import { AgentCore } from "./agent.ts";
import { FakeMaps, type MapState } from "./bpf/maps.ts";

const NODE = "node-1";

function service(
  name: string,
  vip: string,
  opts: { tiers?: string[][] | undefined; nodePort?: number | undefined; v?: number } = {},
): Resource {
  return {
    name,
    version: String(opts.v ?? 1),
    body: {
      $case: "service",
      value: {
        cluster: "c",
        namespace: "ns",
        name: name.split("/")[3]!,
        frontends: [
          {
            ip: vip,
            port: 80,
            protocol: Protocol.PROTOCOL_TCP,
            mode: NatMode.NAT_MODE_CLUSTER_IP,
            portName: "http",
          },
          ...(opts.nodePort
            ? [
                {
                  ip: "",
                  port: opts.nodePort,
                  protocol: Protocol.PROTOCOL_TCP,
                  mode: NatMode.NAT_MODE_NODE_PORT,
                  portName: "http",
                },
              ]
            : []),
        ],
        externalTrafficLocal: false,
        internalTrafficLocal: false,
        affinityTimeoutSeconds: 0,
        backendTiers: (opts.tiers ?? []).map((services) => ({ services })),
        trafficDistribution: TrafficDistribution.TRAFFIC_DISTRIBUTION_UNSPECIFIED,
      },
    },
  };
}

function slice(name: string, svc: string, ips: string[], v: number): Resource {
  return {
    name,
    version: String(v),
    body: {
      $case: "backendSlice",
      value: {
        service: svc,
        ports: [{ name: "http", port: 8080, protocol: Protocol.PROTOCOL_TCP }],
        endpoints: ips.map((ip) => ({
          addresses: [ip],
          nodeName: "node-2",
          ready: true,
          serving: true,
          terminating: false,
          zone: "",
          forZones: [],
        })),
      },
    },
  };
}

const delta = (resources: Resource[], removed: string[] = []): StreamAssignmentsResponse =>
  StreamAssignmentsResponse.fromPartial({
    nonce: "n",
    systemVersion: "v",
    resources,
    removedResources: removed,
  });

/** The maps without their ids: frontend → service name, mode, backends; plus what is unreferenced. */
function canonical(s: MapState): { frontends: string[]; orphanSets: number[]; orphanNames: string[] } {
  const usedSets = new Set<number>();
  const usedNames = new Set<number>();
  const frontends = [...s.frontends.entries()]
    .map(([ks, f]) => {
      usedSets.add(f.value.setId);
      usedNames.add(f.value.svcId);
      const backends = (s.backendSets.get(f.value.setId) ?? []).map((b) => `${b?.ip}:${b?.port}`).join(",");
      return `${ks} ${s.names.get(f.value.svcId)} mode=${f.value.natMode} n=${f.value.count} -> ${backends}`;
    })
    .sort();
  return {
    frontends,
    orphanSets: [...s.backendSets.keys()].filter((id) => !usedSets.has(id)),
    orphanNames: [...s.names.entries()].filter(([id]) => !usedNames.has(id)).map(([, n]) => n),
  };
}

function fresh(resources: Iterable<Resource>): MapState {
  const maps = new FakeMaps();
  const core = new AgentCore(maps, NODE, ["192.0.2.1"], silentLogger());
  core.onDelta(delta([...resources]));
  return maps.read();
}

/** A small deterministic PRNG (tests must not depend on chance). */
function prng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x / 0x7fffffff;
  };
}

describe("AgentCore: incremental deltas", () => {
  it("ends with the same maps as a fresh agent after 300 random deltas (slices move, Services come and go, claim the same VIP, fail over by tiers)", () => {
    const rnd = prng(42);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
    const maps = new FakeMaps();
    const core = new AgentCore(maps, NODE, ["192.0.2.1"], silentLogger());
    const dropped: string[] = [];
    core.onBackendsRemoved = (dead) => dropped.push(...dead.map((b) => `${b.ip}:${b.port}`));
    const names = Array.from({ length: 8 }, (_, i) => `svc/c/ns/s${i}`);
    // s6 and s7 claim s0's and s1's VIPs: conflicts settled by name
    const vip = (i: number) => (i >= 6 ? `10.96.0.${i - 6}` : `10.96.0.${i}`);
    let v = 1;
    for (let step = 0; step < 300; step++) {
      const r = rnd();
      const i = Math.floor(rnd() * names.length);
      const name = names[i]!;
      if (r < 0.45) {
        // a slice of a Service changes (or appears), with 0–3 endpoints from a small pool
        const ips = Array.from(
          { length: Math.floor(rnd() * 4) },
          () => `10.64.0.${1 + Math.floor(rnd() * 12)}`,
        );
        core.onDelta(delta([slice(`eps/c/ns/s${i}-${Math.floor(rnd() * 2)}`, name, [...new Set(ips)], v++)]));
      } else if (r < 0.65) {
        const tiers = i === 5 ? [[name], [pick(names)]] : undefined;
        core.onDelta(
          delta([service(name, vip(i), { v: v++, nodePort: i === 2 ? 30080 : undefined, tiers })]),
        );
      } else if (r < 0.8) {
        core.onDelta(delta([], [name]));
      } else if (r < 0.9) {
        core.onDelta(delta([], [`eps/c/ns/s${i}-${Math.floor(rnd() * 2)}`]));
      } else {
        // a slice moves to another Service
        core.onDelta(
          delta([slice(`eps/c/ns/s${i}-0`, pick(names), [`10.64.0.${1 + Math.floor(rnd() * 12)}`], v++)]),
        );
      }
      const got = canonical(maps.read());
      const want = canonical(fresh(core.store.resources.values()));
      assert.deepEqual(got.frontends, want.frontends, `step ${step}`);
      assert.deepEqual(got.orphanSets, [], `step ${step}: backend sets left behind`);
      assert.deepEqual(got.orphanNames, [], `step ${step}: names left behind`);
    }
    assert.ok(dropped.length > 0, "backends that left every set were reported");
    // a full resync finds nothing to repair
    assert.equal(core.resync(), 0);
  });

  it("recomputes a Service whose backend tier names another Service when that Service's slice changes", () => {
    const maps = new FakeMaps();
    const core = new AgentCore(maps, NODE, [], silentLogger());
    const global = service("svc/c/ns/g", "10.96.1.1", { tiers: [["svc/c/ns/g"], ["svc/d/ns/g"]] });
    core.onDelta(delta([global]));
    assert.match(canonical(maps.read()).frontends[0]!, /n=0 -> $/, "no backend anywhere yet");
    // only the other cluster's slice arrives: the global Service must notice through its tiers
    core.onDelta(delta([slice("eps/d/ns/g-1", "svc/d/ns/g", ["10.65.0.1"], 1)]));
    assert.match(canonical(maps.read()).frontends[0]!, /svc\/c\/ns\/g .* -> 10\.65\.0\.1:8080$/);
    core.onDelta(delta([slice("eps/c/ns/g-1", "svc/c/ns/g", ["10.64.0.9"], 2)]));
    assert.match(
      canonical(maps.read()).frontends[0]!,
      /-> 10\.64\.0\.9:8080$/,
      "the own cluster's tier wins",
    );
    core.onDelta(delta([], ["eps/c/ns/g-1"]));
    assert.match(canonical(maps.read()).frontends[0]!, /-> 10\.65\.0\.1:8080$/, "and fails over again");
  });
});
