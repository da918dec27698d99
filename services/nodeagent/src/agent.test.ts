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
        externalTrafficStrict: false,
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

const delta = (
  resources: Resource[],
  removed: string[] = [],
  viewComplete = true,
): StreamAssignmentsResponse =>
  StreamAssignmentsResponse.fromPartial({
    nonce: "n",
    systemVersion: "v",
    resources,
    removedResources: removed,
    viewComplete,
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

/** A view of n Services with one slice each, and maps that hold it (as a previous run left them). */
function pinnedView(n: number): { view: Resource[]; maps: FakeMaps } {
  const view: Resource[] = [];
  for (let i = 0; i < n; i++) {
    const name = `svc/c/ns/s${i}`;
    view.push(
      service(name, `10.96.${i >> 8}.${i & 255}`),
      slice(`eps/c/ns/s${i}-a`, name, [`10.64.0.${(i % 200) + 1}`], 1),
    );
  }
  const maps = new FakeMaps();
  const first = new AgentCore(maps, NODE, ["192.0.2.1"], silentLogger());
  first.onDelta(delta(view));
  return { view, maps };
}

describe("AgentCore: prune only after a complete sync", () => {
  it("a restarted agent with no hub (or a silent one) keeps its pinned maps through any number of resyncs", () => {
    const { maps } = pinnedView(20);
    const before = maps.read();
    const writes = maps.writes;
    const restarted = new AgentCore(maps, NODE, ["192.0.2.1"], silentLogger());
    assert.equal(restarted.syncState.state, "pinned");
    for (let i = 0; i < 3; i++) assert.equal(restarted.resync(), 0);
    assert.equal(maps.writes, writes, "nothing written");
    assert.deepEqual(maps.read(), before);
  });

  it("a restarted agent receiving the view in chunks writes nothing until the last one, then nothing at all when nothing changed", () => {
    const { view, maps } = pinnedView(30);
    const before = maps.read();
    const writes = maps.writes;
    const restarted = new AgentCore(maps, NODE, ["192.0.2.1"], silentLogger());
    // Services first, their slices later (as a cold walk may cut them)
    const services = view.filter((r) => r.body?.$case === "service");
    const slices = view.filter((r) => r.body?.$case === "backendSlice");
    assert.deepEqual(restarted.onDelta(delta(services.slice(0, 20), [], false)), []);
    assert.equal(maps.writes, writes, "a first chunk is not the whole view: nothing pruned or emptied");
    assert.deepEqual(
      restarted.onDelta(delta([...services.slice(20), ...slices.slice(0, 10)], [], false)),
      [],
    );
    assert.equal(maps.writes, writes);
    assert.equal(restarted.syncState.state, "pinned");
    assert.deepEqual(restarted.onDelta(delta(slices.slice(10), [], true)), []);
    assert.equal(restarted.syncState.state, "synced");
    assert.equal(maps.writes, writes, "the complete view equals the maps: zero writes");
    assert.deepEqual(canonical(maps.read()), canonical(before));
  });

  it("prunes what the complete view does not hold, once it is complete", () => {
    const { view, maps } = pinnedView(5);
    const restarted = new AgentCore(maps, NODE, ["192.0.2.1"], silentLogger());
    const kept = view.filter((r) => !r.name.includes("/s4"));
    restarted.onDelta(delta(kept.slice(0, 3), [], false));
    assert.equal(canonical(maps.read()).frontends.length, 5, "s4 stays while the view is partial");
    restarted.onDelta(delta(kept.slice(3), [], true));
    const after = canonical(maps.read());
    assert.equal(after.frontends.length, 4);
    assert.ok(!after.frontends.some((f) => f.includes("svc/c/ns/s4")), "s4 pruned after the complete view");
    assert.deepEqual(after.orphanSets, []);
    assert.deepEqual(after.orphanNames, []);
  });

  it("applies a Service and its slices together when they arrive in different messages of one change", () => {
    const maps = new FakeMaps();
    const core = new AgentCore(maps, NODE, [], silentLogger());
    core.onDelta(delta([service("svc/c/ns/a", "10.96.0.1")]));
    const writes = maps.writes;
    const b = service("svc/c/ns/b", "10.96.0.2");
    core.onDelta(delta([b], [], false));
    assert.equal(maps.writes, writes, "the Service alone is not written (it would refuse connects)");
    core.onDelta(delta([slice("eps/c/ns/b-1", "svc/c/ns/b", ["10.64.0.2"], 1)], [], true));
    assert.ok(canonical(maps.read()).frontends.some((f) => /svc\/c\/ns\/b .* -> 10\.64\.0\.2:8080$/.test(f)));
  });

  it("resumes from a held view: the hub saying it is in sync plans everything once and writes nothing", () => {
    const { view, maps } = pinnedView(10);
    const first = new AgentCore(new FakeMaps(), NODE, ["192.0.2.1"], silentLogger());
    first.onDelta(delta(view));
    const writes = maps.writes;
    const restarted = new AgentCore(maps, NODE, ["192.0.2.1"], silentLogger());
    assert.equal(restarted.loadHeldView(view, first.store.viewVersion), undefined);
    assert.equal(restarted.store.viewVersion, first.store.viewVersion, "the Hello carries the held version");
    assert.equal(restarted.syncState.heldViewFromDisk, true);
    assert.equal(restarted.resync(), 0, "no hub yet: nothing compared, nothing written");
    assert.equal(restarted.onViewInSync(), undefined);
    assert.equal(restarted.syncState.state, "synced");
    assert.equal(maps.writes, writes);
  });

  it("refuses a held view whose resources do not make its version, and holds nothing", () => {
    const { view } = pinnedView(3);
    const core = new AgentCore(new FakeMaps(), NODE, [], silentLogger());
    assert.match(core.loadHeldView(view, "0123456789abcdef") ?? "", /header says 0123456789abcdef/);
    assert.equal(core.store.resources.size, 0);
    assert.equal(core.store.viewVersion, "0000000000000000");
  });
});

describe("AgentCore: new maps of a staged upgrade", () => {
  it("plans the held view into maps that held nothing at once, stays unsynced (no resync, no prune) until a hub's complete view, which writes only the difference", () => {
    const { view, maps: previous } = pinnedView(10);
    const held = new AgentCore(new FakeMaps(), NODE, ["192.0.2.1"], silentLogger());
    held.onDelta(delta(view));
    const maps = new FakeMaps();
    const core = new AgentCore(maps, NODE, ["192.0.2.1"], silentLogger());
    assert.equal(core.loadHeldView(view, held.store.viewVersion), undefined);
    assert.equal(core.viewInMaps, false, "nothing planned yet");
    assert.equal(core.planHeldViewIntoNewMaps(), undefined);
    assert.deepEqual(canonical(maps.read()), canonical(previous.read()), "the new maps hold the held view");
    assert.equal(core.viewInMaps, true, "ready to swap");
    assert.equal(core.syncState.state, "pinned", "no hub has said the view is current");
    const writes = maps.writes;
    assert.equal(core.resync(), 0);
    const removed = view.filter((r) => r.name.includes("/s9")).map((r) => r.name);
    core.onDelta(delta([], removed, true));
    assert.equal(core.syncState.state, "synced");
    assert.ok(maps.writes > writes, "the hub's view is planned");
    assert.ok(!canonical(maps.read()).frontends.some((f) => f.includes("svc/c/ns/s9 ")), "s9 pruned");
    assert.equal(canonical(maps.read()).frontends.length, 9);
  });

  it("refuses to plan the held view into maps that held entries at start (those wait for a hub's complete view)", () => {
    const { view, maps } = pinnedView(3);
    const held = new AgentCore(new FakeMaps(), NODE, [], silentLogger());
    held.onDelta(delta(view));
    const core = new AgentCore(maps, NODE, [], silentLogger());
    core.loadHeldView(view, held.store.viewVersion);
    assert.throws(() => core.planHeldViewIntoNewMaps(), /held entries at start/);
    assert.equal(core.viewInMaps, false);
  });

  it("says it holds a complete view only between complete views, never with a part of a change stored", () => {
    const { view, maps } = pinnedView(3);
    const core = new AgentCore(maps, NODE, ["192.0.2.1"], silentLogger());
    assert.equal(core.holdsCompleteView, false, "pins alone are not a view");
    core.onDelta(delta(view, [], true));
    assert.equal(core.holdsCompleteView, true);
    core.onDelta(delta([service("svc/c/ns/late", "10.96.9.9")], [], false));
    assert.equal(core.holdsCompleteView, false, "a Service whose slices are still on their way");
    core.onDelta(delta([slice("eps/c/ns/late-1", "svc/c/ns/late", ["10.64.9.9"], 1)], [], true));
    assert.equal(core.holdsCompleteView, true);
  });
});
