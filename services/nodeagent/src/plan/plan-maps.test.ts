import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeMaps, type MapOp, type MapState } from "../bpf/maps.ts";
import type { DesiredFrontend } from "../desired/compute-desired.ts";
import { MapStateIndex, planMaps } from "./plan-maps.ts";

function fe(
  service: string,
  ip: string,
  port: number,
  backends: Array<[string, number]>,
): [string, DesiredFrontend] {
  return [
    `${ip}|${port}|6|0`,
    {
      key: { ip, port, proto: 6, scope: 0 },
      service,
      natType: 1,
      natMode: 1,
      flags: 0,
      affinityTimeoutS: 0,
      portId: 0,
      backends: backends.map(([i, p]) => ({ ip: i, port: p })),
    },
  ];
}

function sync(maps: FakeMaps, desired: Array<[string, DesiredFrontend]>): MapOp[] {
  const plan = planMaps({ frontends: new Map(desired), nodeIps: new Set() }, maps.read());
  maps.apply(plan.ops);
  return plan.ops;
}

describe("planMaps", () => {
  it("a local redirect gets its fallback set beside its local set, both written before the flip; a changed fallback alone is replaced make-before-break", () => {
    const maps = new FakeMaps();
    const lrp = (fallback: Array<[string, number]>): [string, DesiredFrontend] => {
      const [ks, f] = fe("lrp/c/ns/p", "10.0.0.1", 53, [["10.1.0.5", 5353]]);
      return [
        ks,
        {
          ...f,
          natType: 2,
          natMode: 5,
          fallback: fallback.map(([ip, port]) => ({ ip, port })),
          qosPerSecond: 5,
        },
      ];
    };
    const first = sync(maps, [lrp([["192.0.2.1", 8080]])]);
    assert.deepEqual(
      first.map((o) => o.op),
      ["put-name", "put-backend", "put-backend", "put-frontend"],
    );
    const v = [...maps.state.frontends.values()][0]!.value;
    assert.ok(v.setId !== 0 && v.fbSetId !== 0 && v.setId !== v.fbSetId);
    assert.deepEqual([v.count, v.fbCount, v.qosPerSecond], [1, 1, 5]);
    assert.deepEqual(sync(maps, [lrp([["192.0.2.1", 8080]])]), [], "nothing to write when in step");
    const next = sync(maps, [lrp([["192.0.2.2", 8080]])]);
    assert.deepEqual(
      next.map((o) => o.op),
      ["put-backend", "put-frontend", "delete-backend"],
    );
    const flipped = [...maps.state.frontends.values()][0]!.value;
    assert.equal(flipped.setId, v.setId, "the local set is kept");
    assert.notEqual(flipped.fbSetId, v.fbSetId);
    assert.deepEqual(next[2], {
      op: "delete-backend",
      setId: v.fbSetId,
      index: 0,
      backend: { ip: "192.0.2.1", port: 8080 },
    });
  });

  it("writes names, then backends, then frontends (a frontend never points at an unwritten set)", () => {
    const maps = new FakeMaps();
    const ops = sync(maps, [
      fe("svc/c/ns/a", "10.0.0.1", 80, [
        ["192.0.2.1", 8080],
        ["192.0.2.2", 8080],
      ]),
    ]);
    assert.deepEqual(
      ops.map((o) => o.op),
      ["put-name", "put-backend", "put-backend", "put-frontend"],
    );
  });

  it("writes nothing when the maps already hold the desired state (restart against unchanged assignments)", () => {
    const maps = new FakeMaps();
    const desired = [
      fe("svc/c/ns/a", "10.0.0.1", 80, [["192.0.2.1", 8080]]),
      fe("svc/c/ns/b", "10.0.0.2", 53, []),
    ];
    sync(maps, desired);
    assert.deepEqual(sync(maps, desired), []);
  });

  it("replaces a backend set make-before-break: new set, flip, then delete the old set", () => {
    const maps = new FakeMaps();
    sync(maps, [fe("svc/c/ns/a", "10.0.0.1", 80, [["192.0.2.1", 8080]])]);
    const oldSet = [...maps.state.frontends.values()][0]!.value.setId;
    const ops = sync(maps, [fe("svc/c/ns/a", "10.0.0.1", 80, [["192.0.2.9", 8080]])]);
    assert.deepEqual(
      ops.map((o) => o.op),
      ["put-backend", "put-frontend", "delete-backend"],
    );
    const flip = ops[1] as Extract<MapOp, { op: "put-frontend" }>;
    assert.notEqual(flip.value.setId, oldSet, "the new set is written beside the live one");
    assert.deepEqual(ops[2], {
      op: "delete-backend",
      setId: oldSet,
      index: 0,
      backend: { ip: "192.0.2.1", port: 8080 },
    });
  });

  it("keeps a service's id across plans, and frees names only after frontends are gone", () => {
    const maps = new FakeMaps();
    sync(maps, [
      fe("svc/c/ns/a", "10.0.0.1", 80, [["192.0.2.1", 8080]]),
      fe("svc/c/ns/b", "10.0.0.2", 80, [["192.0.2.3", 80]]),
    ]);
    const idA = [...maps.state.names].find(([, n]) => n === "svc/c/ns/a")![0];
    const ops = sync(maps, [fe("svc/c/ns/a", "10.0.0.1", 80, [["192.0.2.1", 8080]])]);
    assert.deepEqual(
      ops.map((o) => o.op),
      ["delete-frontend", "delete-backend", "delete-name"],
    );
    assert.equal([...maps.state.names].find(([, n]) => n === "svc/c/ns/a")![0], idA);
  });

  it("removes backend sets no frontend references (left by a crash between steps)", () => {
    const maps = new FakeMaps();
    maps.apply([{ op: "put-backend", setId: 77, index: 0, backend: { ip: "192.0.2.1", port: 1 } }]);
    const ops = sync(maps, []);
    assert.deepEqual(ops, [
      { op: "delete-backend", setId: 77, index: 0, backend: { ip: "192.0.2.1", port: 1 } },
    ]);
  });

  it("recovers after a write fails half-way: the next plan from what the maps hold completes the job", () => {
    const maps = new FakeMaps();
    const desired = [
      fe("svc/c/ns/a", "10.0.0.1", 80, [
        ["192.0.2.1", 8080],
        ["192.0.2.2", 8080],
      ]),
    ];
    maps.failAfter = 2;
    assert.throws(() => sync(maps, desired), /injected failure/);
    assert.equal(maps.state.frontends.size, 0, "no frontend was published before its backends");
    sync(maps, desired);
    assert.deepEqual(sync(maps, desired), []);
    const f = [...maps.state.frontends.values()][0]!;
    assert.deepEqual(maps.state.backendSets.get(f.value.setId), [
      { ip: "192.0.2.1", port: 8080 },
      { ip: "192.0.2.2", port: 8080 },
    ]);
  });

  it("plans one changed Service without reading the others' entries: new ids come from the index, not a scan", () => {
    const maps = new FakeMaps();
    const desired = Array.from({ length: 50 }, (_, i) =>
      fe(`svc/c/ns/s${i}`, `10.0.1.${i}`, 80, [[`192.0.2.${i}`, 8080]]),
    );
    sync(maps, desired);
    const actual = maps.read();
    const index = MapStateIndex.of(actual);
    // the Service s7 gets a second backend; s50 is new
    const changed = [
      fe("svc/c/ns/s7", "10.0.1.7", 80, [
        ["192.0.2.7", 8080],
        ["192.0.2.99", 8080],
      ]),
      fe("svc/c/ns/s50", "10.0.1.50", 80, [["192.0.2.50", 8080]]),
    ];
    // every whole-map walk throws: only lookups by key are allowed
    const noWalk = <M extends Map<unknown, unknown>>(m: M): M =>
      new Proxy(m, {
        get(target, prop) {
          if (
            prop === Symbol.iterator ||
            prop === "keys" ||
            prop === "values" ||
            prop === "entries" ||
            prop === "forEach"
          )
            throw new Error(`a scoped plan walked a whole map (${String(prop)})`);
          const v = Reflect.get(target, prop, target);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
    const guarded: MapState = {
      names: noWalk(actual.names),
      frontends: noWalk(actual.frontends),
      backendSets: noWalk(actual.backendSets),
      nodeIps: actual.nodeIps,
    };
    const all = new Map([...desired, ...changed]);
    const plan = planMaps({ frontends: all, nodeIps: new Set() }, guarded, {
      keys: new Set(changed.map(([k]) => k)),
      ownsFrontends: (s) => [...all.values()].some((f) => f.service === s),
      index,
    });
    maps.apply(plan.ops);
    for (const o of plan.ops) index.note(actual, o);
    // the result is what a full plan would have reached: nothing left to do
    assert.deepEqual(planMaps({ frontends: all, nodeIps: new Set() }, maps.read()).ops, []);
    const newSets = plan.ops.flatMap((o) => (o.op === "put-backend" ? [o.setId] : []));
    assert.ok(
      newSets.every((id) => id > 50),
      `new sets beside the 50 live ones: ${newSets.join(",")}`,
    );
    assert.equal(index.svcIdOf("svc/c/ns/s50"), plan.svcIds.get("svc/c/ns/s50"));
  });
});
