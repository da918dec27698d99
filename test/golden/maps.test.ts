/**
 * Golden test of the whole pure pipeline: cluster YAML → hub translator →
 * assignment resources → agent desired state → planned map operations →
 * canonical map dump (what `switchyard-agent dump` prints). The same input in
 * another order gives the same dump. UPDATE_GOLDEN=1 rewrites the files.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { World } from "../../services/hub/src/model/world.ts";
import { readObjects } from "../../services/hub/src/sources/directory.ts";
import { WorldWriter } from "../../services/hub/src/sources/source.ts";
import { computeViewSnapshot } from "../../services/hub/src/translate/compute-resources.ts";
import { FakeMaps } from "../../services/nodeagent/src/bpf/maps.ts";
import { formatMapState } from "../../services/nodeagent/src/cli/dump.ts";
import { computeDesired } from "../../services/nodeagent/src/desired/compute-desired.ts";
import { planMaps } from "../../services/nodeagent/src/plan/plan-maps.ts";

const CLUSTERS = path.join(import.meta.dirname, "../../services/hub/src/translate/testdata");
const GOLDEN = path.join(import.meta.dirname, "testdata");

function dumpFor(objects: unknown[], cluster: string, node: { name: string; addresses: string[] }): string {
  const world = new World();
  const w = new WorldWriter(world, cluster, silentLogger());
  for (const o of objects) w.upsert(o);
  const snap = computeViewSnapshot([world.cluster(cluster)]);
  const maps = new FakeMaps();
  maps.apply(planMaps(computeDesired(snap.resources.values(), node), maps.read()).ops);
  return formatMapState(maps.read());
}

function load(dir: string): unknown[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .flatMap((f) => readObjects(fs.readFileSync(path.join(dir, f), "utf8")).objects);
}

describe("golden: cluster YAML in, canonical BPF map dump out", () => {
  const node = { name: "k3s-server-0", addresses: ["192.0.2.10"] };
  for (const cluster of fs
    .readdirSync(CLUSTERS)
    .filter((d) => fs.statSync(path.join(CLUSTERS, d)).isDirectory())) {
    it(`${cluster}: maps of an agent on ${node.name}`, () => {
      const dump = dumpFor(load(path.join(CLUSTERS, cluster)), cluster, node);
      const file = path.join(GOLDEN, `${cluster}.maps.golden`);
      if (process.env["UPDATE_GOLDEN"] === "1") {
        fs.mkdirSync(GOLDEN, { recursive: true });
        fs.writeFileSync(file, dump);
      }
      assert.equal(dump, fs.readFileSync(file, "utf8"));
    });
    it(`${cluster}: the same objects reversed give the same maps`, () => {
      const objects = load(path.join(CLUSTERS, cluster));
      assert.equal(dumpFor([...objects].reverse(), cluster, node), dumpFor(objects, cluster, node));
    });
  }
});
