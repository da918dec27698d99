import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyOpToState, cloneMapState, FakeMaps, type MapState } from "../bpf/maps.ts";
import type { DesiredFrontend } from "../desired/compute-desired.ts";
import { planMaps } from "../plan/plan-maps.ts";
import { applyPlan } from "./apply-plan.ts";
import { frontendEntry } from "./retry-ledger.ts";

const CLUSTER_IP = {
  natType: 1,
  natMode: 1,
  flags: 0,
  affinityTimeoutS: 0,
  portId: 0,
  fbSetId: 0,
  fbCount: 0,
  qosPerSecond: 0,
};

/** ClusterIP frontends on port 80: VIP → [service, backend IPs (port 8080)] */
function want(spec: Record<string, [string, string[]]>) {
  const frontends = new Map<string, DesiredFrontend>();
  for (const [vip, [service, ips]] of Object.entries(spec)) {
    const key = { ip: vip, port: 80, proto: 6, scope: 0 };
    const backends = ips.map((ip) => ({ ip, port: 8080 }));
    frontends.set(`${vip}|80|6|0`, { key, service, ...CLUSTER_IP, backends });
  }
  return { frontends, nodeIps: new Set<string>() };
}

const entry = (vip: string) => frontendEntry(`${vip}|80|6|0`);

/** frontend VIP → its backends' IPs, as the maps hold them */
function resolved(s: MapState): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const { key, value } of s.frontends.values())
    out[key.ip] = (s.backendSets.get(value.setId) ?? []).map((b) => b.ip);
  return out;
}

/** sets no frontend points at */
function orphanSets(s: MapState): number[] {
  const used = new Set([...s.frontends.values()].map((f) => f.value.setId));
  return [...s.backendSets.keys()].filter((id) => !used.has(id));
}

/** Maps holding A (one backend) and B (one backend). */
function seeded(): FakeMaps {
  const maps = new FakeMaps();
  maps.apply(
    planMaps(
      want({ "10.96.0.1": ["svc/c/ns/a", ["192.0.2.1"]], "10.96.0.2": ["svc/c/ns/b", ["192.0.2.21"]] }),
      maps.read(),
    ).ops,
  );
  return maps;
}

const next = want({
  "10.96.0.1": ["svc/c/ns/a", ["192.0.2.1", "192.0.2.2"]],
  "10.96.0.2": ["svc/c/ns/b", ["192.0.2.21", "192.0.2.22", "192.0.2.23"]],
  "10.96.0.3": ["svc/c/ns/c", ["192.0.2.31"]],
});

describe("applyPlan: one entry the maps refuse does not block the others", () => {
  it("a local redirect is flipped only when both its sets landed: a refused fallback set undoes the local one", () => {
    const maps = new FakeMaps();
    const lrp = (local: string, fallback: string) => {
      const frontends = new Map<string, DesiredFrontend>();
      frontends.set("10.96.0.9|80|6|0", {
        key: { ip: "10.96.0.9", port: 80, proto: 6, scope: 0 },
        service: "lrp/c/ns/p",
        ...CLUSTER_IP,
        natType: 2,
        natMode: 5,
        backends: [{ ip: local, port: 5353 }],
        fallback: [{ ip: fallback, port: 8080 }],
      });
      return { frontends, nodeIps: new Set<string>() };
    };
    maps.apply(planMaps(lrp("10.1.0.1", "192.0.2.1"), maps.read()).ops);
    const before = cloneMapState(maps.state);
    maps.rejects = (o) =>
      o.op === "put-backend" && o.backend.ip === "192.0.2.9" ? "sy_backends: map full" : undefined;
    const out = applyPlan(maps, planMaps(lrp("10.1.0.2", "192.0.2.9"), maps.read()).ops, maps.read());
    assert.equal(out.failed.get(frontendEntry("10.96.0.9|80|6|0")), "sy_backends: map full");
    assert.deepEqual(maps.state.frontends, before.frontends, "the frontend keeps both old sets");
    assert.deepEqual(maps.state.backendSets, before.backendSets, "the new local set was undone");
  });

  it("a full backend map refuses one frontend's new set: the others are written, it keeps its old set, its partial new set is undone", () => {
    const maps = seeded();
    const before = maps.read();
    maps.rejects = (o) =>
      o.op === "put-backend" && o.backend.ip === "192.0.2.22"
        ? "writing set 9 to map sy_backends failed: E2BIG (map full: raise its size)"
        : undefined;
    const out = applyPlan(maps, planMaps(next, before).ops, before);
    assert.deepEqual([...out.failed.keys()], [entry("10.96.0.2")]);
    assert.match(out.failed.get(entry("10.96.0.2"))!, /map full/);
    assert.deepEqual(resolved(maps.read()), {
      "10.96.0.1": ["192.0.2.1", "192.0.2.2"],
      "10.96.0.2": ["192.0.2.21"],
      "10.96.0.3": ["192.0.2.31"],
    });
    assert.deepEqual(orphanSets(maps.read()), [], "no half-written set left behind, A's old set deleted");
    // what landed, replayed on the state before, is exactly what the maps hold: no read-back needed
    const mirror = cloneMapState(before);
    for (const o of out.landed) applyOpToState(mirror, o);
    assert.deepEqual(mirror, maps.read());
  });

  it("a name the maps refuse blocks only that Service's frontends", () => {
    const maps = seeded();
    const before = maps.read();
    maps.rejects = (o) =>
      o.op === "put-name" ? "writing svc/c/ns/c to map sy_svc_names failed: ENOMEM" : undefined;
    const out = applyPlan(maps, planMaps(next, before).ops, before);
    assert.deepEqual([...out.failed.keys()], [entry("10.96.0.3")]);
    assert.match(out.failed.get(entry("10.96.0.3"))!, /sy_svc_names failed: ENOMEM/);
    const now = resolved(maps.read());
    assert.equal(now["10.96.0.3"], undefined);
    assert.deepEqual(now["10.96.0.2"], ["192.0.2.21", "192.0.2.22", "192.0.2.23"]);
    assert.deepEqual(orphanSets(maps.read()), []);
  });

  it("an entry held for its retry is skipped without counting as a failure, and keeps its old set", () => {
    const maps = seeded();
    const before = maps.read();
    const writes = maps.writes;
    const out = applyPlan(maps, planMaps(next, before).ops, before, (e) => e === entry("10.96.0.2"));
    assert.deepEqual([...out.held], [entry("10.96.0.2")]);
    assert.equal(out.failed.size, 0);
    assert.deepEqual(resolved(maps.read())["10.96.0.2"], ["192.0.2.21"]);
    assert.deepEqual(orphanSets(maps.read()), []);
    assert.ok(maps.writes > writes, "the others were written");
  });

  it("a failed delete of an old set is reported against that set and blocks nothing", () => {
    const maps = seeded();
    const before = maps.read();
    const oldSetOfA = [...before.frontends.values()].find((f) => f.key.ip === "10.96.0.1")!.value.setId;
    maps.rejects = (o) => (o.op === "delete-backend" && o.setId === oldSetOfA ? "EBUSY" : undefined);
    const out = applyPlan(maps, planMaps(next, before).ops, before);
    assert.deepEqual([...out.failed], [[`set ${oldSetOfA}`, "EBUSY"]]);
    assert.deepEqual(resolved(maps.read())["10.96.0.1"], ["192.0.2.1", "192.0.2.2"]);
  });
});
