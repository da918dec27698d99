/**
 * A cluster starts from its last known state: what the shared state holds
 * is served until the source lists the cluster, which keeps what it lists
 * and removes the rest; an unusable record is reported with the cluster's
 * name and ignored, never fatal.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import pino from "pino";
import { World } from "../model/world.ts";
import { FileState } from "../state/hub-state.ts";
import { LastKnownStore, metaKey } from "../state/last-known.ts";
import { ClusterHealthTracker } from "./health.ts";
import { ClusterManager } from "./manager.ts";

const SERVICE = `apiVersion: v1
kind: Service
metadata: { name: pay, namespace: shop }
spec: { clusterIP: 10.97.0.10, ports: [{ name: http, port: 80 }] }
`;

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-manager-"));
  try {
    await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("ClusterManager and the last known state", () => {
  it("restores a cluster, then its listing removes what is gone", () =>
    withDir(async (dir) => {
      const state = new FileState(dir);
      const store = new LastKnownStore(state);
      await store.save(
        "west",
        [
          { kind: "Node", value: { cluster: "west", name: "west-1", addresses: [], zone: undefined } },
          {
            kind: "ServiceExport",
            value: { cluster: "west", namespace: "shop", name: "gone" },
          },
        ],
        Date.now() - 5_000,
      );
      const yaml = path.join(dir, "west");
      fs.mkdirSync(yaml);
      fs.writeFileSync(path.join(yaml, "pay.yaml"), SERVICE);
      const world = new World();
      const syncs: string[] = [];
      world.onChange((c, ch) => ch?.kind === "Cluster" && syncs.push(world.cluster(c).sync));
      const { log, lines } = capture();
      const tracker = new ClusterHealthTracker(world, 60_000, log);
      const m = new ClusterManager(world, tracker, log, 10_000, store);
      await m.apply([{ name: "west", kind: "dir", path: yaml }]);
      const c = world.cluster("west");
      assert.deepEqual(syncs, ["restored", "synced"]);
      assert.deepEqual([...c.services.keys()], ["shop/pay"], "listed");
      assert.equal(c.nodes.size + c.exports.size, 0, "restored objects the listing did not bring are gone");
      assert.ok(
        lines.some((l) => l["msg"] === "cluster starts from its last known state until it is listed"),
      );
      await m.stop();
    }));

  it("reports an unusable record with the cluster's name and starts without it", () =>
    withDir(async (dir) => {
      const state = new FileState(dir);
      await state.put(metaKey("west"), { format: 99, cluster: "west" });
      const yaml = path.join(dir, "west");
      fs.mkdirSync(yaml);
      const world = new World();
      const { log, lines } = capture();
      const m = new ClusterManager(
        world,
        new ClusterHealthTracker(world, 60_000, log),
        log,
        10_000,
        new LastKnownStore(state),
      );
      await m.apply([{ name: "west", kind: "dir", path: yaml }]);
      const bad = lines.find((l) => String(l["msg"]).includes("stored last known state is not usable"));
      assert.ok(bad, JSON.stringify(lines));
      assert.equal(bad["cluster"], "west");
      assert.match(String(bad["reason"]), /format 99/);
      assert.equal(world.cluster("west").sync, "synced");
      await m.stop();
    }));

  it("keeps a cluster's objects when its changed source cannot start (a bad edit empties nothing): served as unreachable", () =>
    withDir(async (dir) => {
      const yaml = path.join(dir, "west");
      fs.mkdirSync(yaml);
      fs.writeFileSync(path.join(yaml, "pay.yaml"), SERVICE);
      const world = new World();
      const { log } = capture();
      const tracker = new ClusterHealthTracker(world, 60_000, log);
      const m = new ClusterManager(world, tracker, log, 10_000);
      await m.apply([{ name: "west", kind: "dir", path: yaml }]);
      assert.deepEqual([...world.cluster("west").services.keys()], ["shop/pay"]);
      // the source is changed to a directory that does not exist
      await assert.rejects(
        m.apply([{ name: "west", kind: "dir", path: path.join(dir, "missing") }]),
        /directory .*missing does not exist/,
      );
      const c = world.clusters.get("west");
      assert.ok(c, "the cluster stays in the world");
      assert.deepEqual([...c.services.keys()], ["shop/pay"], "its Services stay");
      assert.equal(c.health.stale, true, "served as an unreachable cluster's last known state");
      // a good edit brings it back
      await m.apply([{ name: "west", kind: "dir", path: yaml }]);
      assert.equal(world.cluster("west").health.stale, false);
      assert.deepEqual([...world.cluster("west").services.keys()], ["shop/pay"]);
      await m.stop();
    }));

  it("reports a cluster whose kubeconfig cannot be read as failed, by name, and keeps it (not ok, not gone)", () =>
    withDir(async (dir) => {
      const yaml = path.join(dir, "east");
      fs.mkdirSync(yaml);
      const world = new World();
      const { log, lines } = capture();
      const m = new ClusterManager(world, new ClusterHealthTracker(world, 60_000, log), log, 10_000);
      const kubeconfig = path.join(dir, "missing.kubeconfig");
      await assert.rejects(
        m.apply([
          { name: "east", kind: "dir", path: yaml },
          { name: "west", kind: "kubeconfig", path: kubeconfig },
        ]),
        /cluster west: kubeconfig .*missing\.kubeconfig cannot be read: ENOENT/,
      );
      assert.match(m.failure("west") ?? "", /kubeconfig .*missing\.kubeconfig cannot be read/);
      assert.equal(m.failure("east"), undefined, "the other cluster runs");
      const west = world.clusters.get("west");
      assert.ok(west, "the failed cluster stays in the world");
      assert.equal(west.health.stale, true, "not ok");
      assert.match(west.health.reason ?? "", /its source did not start: kubeconfig/);
      const said = lines.find(
        (l) => l["msg"] === "cluster failed: its source cannot start; fix it and reload the config (SIGHUP)",
      );
      assert.equal(said?.["cluster"], "west", JSON.stringify(lines));
      // taken out of the config: gone
      await m.apply([{ name: "east", kind: "dir", path: yaml }]);
      assert.equal(m.failure("west"), undefined);
      assert.equal(world.clusters.has("west"), false);
      await m.stop();
    }));
});
