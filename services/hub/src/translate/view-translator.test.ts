import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { World } from "../model/world.ts";
import { WorldWriter } from "../sources/source.ts";
import { ViewTranslator } from "./compute-resources.ts";

function svc(name: string, ip: string) {
  return {
    kind: "Service",
    metadata: { name, namespace: "ns" },
    spec: { clusterIP: ip, ports: [{ name: "p", port: 80 }] },
  };
}

function setup() {
  const world = new World();
  const east = new WorldWriter(world, "east", silentLogger());
  const west = new WorldWriter(world, "west", silentLogger());
  east.upsert(svc("api", "10.96.0.1"));
  west.upsert(svc("zeta", "10.96.0.1"));
  west.upsert(svc("only-west", "10.96.0.2"));
  return { world, east, west, states: () => [world.cluster("east"), world.cluster("west")] };
}

const frontendsOf = (t: ViewTranslator, name: string) => {
  const r = t.resources.get(name);
  return r?.body?.$case === "service" ? r.body.value.frontends.map((f) => f.ip) : undefined;
};

describe("views across clusters", () => {
  it("gives a colliding ClusterIP to the home cluster's Service and names both owners", () => {
    for (const home of ["east", "west"]) {
      const { states } = setup();
      const t = new ViewTranslator(home);
      t.rebuild(states());
      const winner = home === "east" ? "svc/east/ns/api" : "svc/west/ns/zeta";
      const loser = home === "east" ? "svc/west/ns/zeta" : "svc/east/ns/api";
      assert.deepEqual(frontendsOf(t, winner), ["10.96.0.1"]);
      assert.deepEqual(frontendsOf(t, loser), []);
      assert.match(
        t.snapshot().diagnosticsOf(loser).join(),
        new RegExp(`10\\.96\\.0\\.1:80 is already served by ${winner}`),
      );
      assert.deepEqual(frontendsOf(t, "svc/west/ns/only-west"), ["10.96.0.2"], "imported Services resolve");
    }
  });

  it("hands the frontend over when its owner goes, incrementally", () => {
    const { world, states } = setup();
    const t = new ViewTranslator("east");
    t.rebuild(states());
    world.remove("east", "Service", "ns", "api");
    const changed = t.update(states(), [{ cluster: "east", kind: "Service", namespace: "ns", name: "api" }]);
    assert.ok(changed.has("svc/east/ns/api") && changed.has("svc/west/ns/zeta"));
    assert.deepEqual(frontendsOf(t, "svc/west/ns/zeta"), ["10.96.0.1"]);
    assert.equal(t.resources.has("svc/east/ns/api"), false);
  });
});
