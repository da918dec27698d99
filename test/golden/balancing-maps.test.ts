/**
 * Golden test of the pure pipeline for BalancingPolicies: cluster YAML
 * (services/hub/src/translate/testdata-balancing) → hub translator → the
 * resources one node's agents receive (shared and the node's own) → agent
 * desired state → planned map operations → canonical map dump. One agent
 * per case: a node its nodeSelector takes (node-a), one it does not
 * (node-b), and a plain host in the node-port view. UPDATE_GOLDEN=1
 * rewrites the files.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { Resource } from "@switchyard/proto/assignment";
import { World } from "../../services/hub/src/model/world.ts";
import { readObjects } from "../../services/hub/src/sources/directory.ts";
import { WorldWriter } from "../../services/hub/src/sources/source.ts";
import { type Reach, ViewTranslator } from "../../services/hub/src/translate/compute-resources.ts";
import { FakeMaps } from "../../services/nodeagent/src/bpf/maps.ts";
import { formatMapState } from "../../services/nodeagent/src/cli/dump.ts";
import { computeDesired } from "../../services/nodeagent/src/desired/compute-desired.ts";
import { planMaps } from "../../services/nodeagent/src/plan/plan-maps.ts";

const CASES = path.join(import.meta.dirname, "../../services/hub/src/translate/testdata-balancing");
const GOLDEN = path.join(import.meta.dirname, "testdata");
const CLUSTER = "west";

const AGENTS: Array<{ name: string; addresses: string[]; reach: Reach }> = [
  { name: "node-a", addresses: ["192.0.2.1"], reach: "pod" },
  { name: "node-b", addresses: ["192.0.2.2"], reach: "pod" },
  { name: "host-1", addresses: ["198.51.100.200"], reach: "nodeport" },
];

function dump(objects: unknown[]): string {
  const world = new World();
  const w = new WorldWriter(world, CLUSTER, silentLogger());
  for (const o of objects) assert.ok(w.upsert(o));
  let out = "";
  for (const agent of AGENTS) {
    const t = new ViewTranslator(CLUSTER, agent.reach);
    t.rebuild([world.cluster(CLUSTER)]);
    const snap = t.nodeSnapshot(agent.name);
    // as the agent receives them: every resource through the wire encoding
    const resources = [...snap.resources.values(), ...(snap.overlay?.values() ?? [])].map((r) =>
      Resource.decode(Resource.encode(r).finish()),
    );
    const maps = new FakeMaps();
    maps.apply(planMaps(computeDesired(resources, agent), maps.read()).ops);
    out += `=== ${agent.name} (${agent.reach} view)\n${formatMapState(maps.read())}`;
  }
  return out;
}

describe("golden: BalancingPolicy YAML in, canonical BPF map dump out", () => {
  for (const name of fs.readdirSync(CASES).filter((d) => fs.statSync(path.join(CASES, d)).isDirectory())) {
    const objects = fs
      .readdirSync(path.join(CASES, name))
      .filter((f) => f.endsWith(".yaml"))
      .sort()
      .flatMap((f) => readObjects(fs.readFileSync(path.join(CASES, name, f), "utf8")).objects);
    it(`${name}: the maps of a selected node, an unselected node and a host`, () => {
      const out = dump(objects);
      const file = path.join(GOLDEN, `balancing-${name}.maps.golden`);
      if (process.env["UPDATE_GOLDEN"] === "1") fs.writeFileSync(file, out);
      assert.equal(out, fs.readFileSync(file, "utf8"));
    });
    it(`${name}: the same objects reversed give the same maps`, () => {
      assert.equal(dump([...objects].reverse()), dump(objects));
    });
  }
});
