/**
 * A cluster's last known state: stored and read back the same through both
 * shared-state backends (a record larger than a JetStream message goes in
 * parts), refused with a reason when it is corrupt, incomplete, of another
 * format, of another cluster or holds a bad object; restored objects stay
 * until their kind is listed; only listed clusters are written, a stale one
 * with the time it went stale.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { startNatsServer } from "../../../../test/kit/nats.ts";
import type { Service } from "../model/types.ts";
import { type ModelObject, objectsOf, World } from "../model/world.ts";
import { KINDS } from "../sources/kube-objects.ts";
import { WorldWriter } from "../sources/source.ts";
import { FileState, type HubState, KvState } from "./hub-state.ts";
import {
  LAST_KNOWN_FORMAT,
  LastKnownStore,
  LastKnownWriter,
  metaKey,
  parseLastKnown,
  partKey,
} from "./last-known.ts";
import { encodeLastKnownObjects, parseLastKnownObjects } from "./last-known-objects.ts";

function svc(name: string, ip: string, cluster = "west"): Service {
  return {
    cluster,
    namespace: "shop",
    name,
    type: "NodePort",
    clusterIPs: [ip],
    headless: false,
    ports: [{ name: "http", port: 80, protocol: "TCP", nodePort: 30080 }],
    externalIPs: [],
    loadBalancerIPs: [],
    externalTrafficLocal: false,
    internalTrafficLocal: false,
    externalTrafficStrict: false,
    affinityTimeoutSeconds: 0,
    global: true,
    trafficDistribution: "",
  };
}

const OBJECTS: ModelObject[] = [
  { kind: "Service", value: svc("pay", "10.97.0.10") },
  {
    kind: "EndpointSlice",
    value: {
      cluster: "west",
      namespace: "shop",
      name: "pay-1",
      service: "pay",
      addressType: "IPv4",
      ports: [{ name: "http", port: 8080, protocol: "TCP" }],
      endpoints: [
        {
          addresses: ["10.53.0.5"],
          nodeName: "west-1",
          ready: true,
          serving: true,
          terminating: false,
          zone: "z1",
          forZones: ["z1"],
        },
        {
          addresses: ["10.53.0.6"],
          nodeName: undefined,
          ready: false,
          serving: false,
          terminating: true,
          zone: undefined,
          forZones: undefined,
        },
      ],
    },
  },
  { kind: "Node", value: { cluster: "west", name: "west-1", addresses: ["198.18.53.1"], zone: "z1" } },
  {
    kind: "Node",
    value: { cluster: "west", name: "west-2", addresses: [], zone: undefined, labels: { dns: "on" } },
  },
  {
    kind: "LocalRedirectPolicy",
    value: {
      cluster: "west",
      namespace: "kube-system",
      name: "dns",
      uid: "u-1",
      generation: 3,
      createdAt: "2026-01-01T00:00:00Z",
      frontend: { kind: "service", service: "kube-dns", ports: [{ name: "dns" }, { port: 53 }] },
      backend: {
        selector: {
          matchLabels: { app: "nl-dns" },
          matchExpressions: [{ key: "tier", operator: "In", values: ["a", "b"] }],
        },
        toPorts: [
          { name: "dns", port: 53, targetName: undefined, protocol: "UDP" },
          { name: "dns-tcp", port: 0, targetName: "dns-tcp", protocol: "TCP" },
        ],
      },
      skipRedirectFromBackend: true,
      qosPerSecond: 5000,
      nodeSelector: undefined,
    },
  },
  {
    kind: "LocalRedirectPolicy",
    value: {
      cluster: "west",
      namespace: "kube-system",
      name: "dns-vip",
      uid: "",
      generation: 0,
      createdAt: "",
      frontend: {
        kind: "address",
        ip: "fd00::53",
        ports: [{ name: "dns", port: 53, protocol: "UDP" }],
        fallbackService: "kube-dns",
      },
      backend: {
        selector: { matchLabels: { app: "nl-dns" }, matchExpressions: [] },
        toPorts: [{ name: "dns", port: 53, targetName: undefined, protocol: "UDP" }],
      },
      skipRedirectFromBackend: false,
      qosPerSecond: 0,
      nodeSelector: { matchLabels: { dns: "on" }, matchExpressions: [] },
    },
  },
  {
    kind: "Node",
    value: {
      cluster: "west",
      name: "west-3",
      addresses: ["198.18.53.3"],
      zone: undefined,
      entryAddresses: ["198.51.100.3", "2001:db8:e::3"],
    },
  },
  {
    kind: "BalancingPolicy",
    value: {
      cluster: "west",
      namespace: "shop",
      name: "pay-entry",
      uid: "u-2",
      generation: 2,
      createdAt: "2026-01-02T00:00:00Z",
      frontend: { kind: "service", service: "pay", ports: [{ name: "http" }] },
      backend: {
        kind: "serviceEndpoint",
        selector: { matchLabels: { app: "pay" }, matchExpressions: [] },
        redirectMode: "nodeProxy",
        toPorts: [{ name: "http", port: 8080, targetName: undefined, protocol: "TCP" }],
      },
      nodeSelector: { matchLabels: { edge: "yes" }, matchExpressions: [] },
    },
  },
  {
    kind: "BalancingPolicy",
    value: {
      cluster: "west",
      namespace: "shop",
      name: "partner",
      uid: "u-3",
      generation: 1,
      createdAt: "2026-01-03T00:00:00Z",
      frontend: {
        kind: "address",
        ip: "10.96.60.1",
        ports: [{ name: "https", port: 443, protocol: "TCP" }],
        fallbackService: undefined,
      },
      backend: {
        kind: "addressEndpoint",
        addresses: ["192.0.2.10", "2001:db8::10"],
        toPorts: [{ name: "https", port: 8443, targetName: undefined, protocol: "TCP" }],
      },
      nodeSelector: undefined,
    },
  },
  { kind: "ServiceExport", value: { cluster: "west", namespace: "shop", name: "pay" } },
  {
    kind: "ServiceImport",
    value: {
      cluster: "west",
      namespace: "shop",
      name: "pay",
      ips: ["10.99.0.10"],
      headless: false,
      ports: [{ name: "http", port: 80, protocol: "TCP", nodePort: undefined }],
      affinityTimeoutSeconds: 10,
    },
  },
];

const sortObjects = (os: ModelObject[]) =>
  [...os].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

function tmpState(): { state: FileState; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-lastknown-"));
  return { state: new FileState(dir), dir };
}

async function roundTrip(state: HubState, other: HubState, objects: ModelObject[]) {
  const store = new LastKnownStore(state);
  await store.save("west", objects, 1_700_000_000_000, 1_700_000_005_000);
  const r = new LastKnownStore(other).load("west", 1_800_000_000_000);
  assert.ok(r?.ok, JSON.stringify(r));
  assert.equal(r.value.lastSeenAt, 1_700_000_000_000);
  assert.deepEqual(sortObjects(r.value.objects), sortObjects(objects));
  return r.value;
}

describe("last known state of a cluster", () => {
  it("reads back what was stored, every field (file)", async () => {
    const { state, dir } = tmpState();
    try {
      await roundTrip(state, new FileState(dir), OBJECTS);
      assert.equal(new LastKnownStore(state).load("east"), undefined, "no record: nothing");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a new content replaces the old record's parts; a time in the future counts as now", async () => {
    const { state, dir } = tmpState();
    try {
      const store = new LastKnownStore(state);
      await store.save("west", OBJECTS, 1_000);
      const before = state.list("lastknown-part/west/").map(([k]) => k);
      await store.save("west", OBJECTS.slice(0, 2), 5_000);
      const afterKeys = state.list("lastknown-part/west/").map(([k]) => k);
      assert.equal(afterKeys.length, 1);
      assert.notDeepEqual(afterKeys, before, "the earlier record's parts are gone");
      const r = store.load("west", 3_000);
      assert.ok(r?.ok);
      assert.equal(r.value.objects.length, 2);
      assert.equal(r.value.lastSeenAt, 3_000, "clamped to now");
      assert.equal(await store.touch("west", 2_500), true);
      assert.equal((store.load("west", 9_000) as { value: { lastSeenAt: number } }).value.lastSeenAt, 2_500);
      await store.delete("west");
      assert.equal(store.load("west"), undefined);
      assert.deepEqual(state.list("lastknown"), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("refuses a record that cannot be used, saying why", () => {
    const good = async () => {
      const { state, dir } = tmpState();
      await new LastKnownStore(state).save("west", OBJECTS, 1_000);
      const meta = state.get<Record<string, unknown>>(metaKey("west"))!;
      const parts = new Map(state.list<string>("lastknown-part/"));
      fs.rmSync(dir, { recursive: true, force: true });
      return { meta, parts };
    };
    const cases: Array<{
      name: string;
      change: (m: Record<string, unknown>, parts: Map<string, string>) => void;
      cluster?: string;
      want: RegExp;
    }> = [
      {
        name: "another format",
        change: (m) => {
          m["format"] = 99;
        },
        want: /format 99 is not format 1/,
      },
      {
        name: "another cluster's record",
        cluster: "east",
        change: () => {},
        want: /record of cluster "west"/,
      },
      {
        name: "a bad time",
        change: (m) => {
          m["lastSeenAt"] = "yesterday";
        },
        want: /lastSeenAt is not a time/,
      },
      {
        name: "a missing part",
        change: (_m, p) => p.clear(),
        want: /part 1 of 1 is missing/,
      },
      {
        name: "a corrupt part",
        change: (_m, p) => {
          for (const [k, v] of p) p.set(k, `A${v.slice(1)}`);
        },
        want: /does not match its digest/,
      },
      {
        name: "a header without a format",
        change: (m) => {
          m["format"] = undefined;
        },
        want: /format/,
      },
    ];
    for (const c of cases)
      it(c.name, async () => {
        const { meta, parts } = await good();
        c.change(meta, parts);
        const cluster = c.cluster ?? "west";
        const r = parseLastKnown(cluster, meta, (k) => parts.get(k), 2_000);
        assert.equal(r.ok, false);
        assert.match((r as { error: string }).error, c.want);
      });
  });

  it("refuses a record with a bad object, naming it and the field", () => {
    const bad = JSON.parse(JSON.stringify({ objects: OBJECTS })) as {
      objects: Array<{ value: Record<string, unknown> }>;
    };
    bad.objects[0]!.value["clusterIPs"] = ["10.97.0.999"];
    const r = parseLastKnownObjects("west", JSON.stringify(bad));
    assert.equal(r.ok, false);
    assert.match((r as { error: string }).error, /Service shop\/pay.*clusterIPs\[0\]: is not an IP address/);
    const other = parseLastKnownObjects("east", JSON.stringify({ objects: OBJECTS }));
    assert.match((other as { error: string }).error, /cluster: is "west", not this record's cluster/);
    const lrp = JSON.parse(JSON.stringify({ objects: OBJECTS })) as typeof bad;
    const at = OBJECTS.findIndex((o) => o.kind === "LocalRedirectPolicy");
    (lrp.objects[at]!.value["backend"] as Record<string, unknown>)["toPorts"] = [
      { name: "dns", port: 70000 },
    ];
    assert.match(
      (parseLastKnownObjects("west", JSON.stringify(lrp)) as { error: string }).error,
      /LocalRedirectPolicy kube-system\/dns.*toPorts\[0\]\.port: is not a whole number/,
    );
    const kind = parseLastKnownObjects("west", JSON.stringify({ objects: [{ kind: "Pod", value: {} }] }));
    assert.match((kind as { error: string }).error, /"Pod" is not a kind the hub keeps/);
    const twice = parseLastKnownObjects("west", JSON.stringify({ objects: [OBJECTS[0], OBJECTS[0]] }));
    assert.match((twice as { error: string }).error, /Service shop\/pay is in the record twice/);
    assert.match((parseLastKnownObjects("west", "{") as { error: string }).error, /not JSON/);
  });

  it("stores no Pods (they come back with the first listing), and a Pod change does not rewrite the record", async () => {
    const { state, dir } = tmpState();
    try {
      const world = new World();
      const store = new LastKnownStore(state);
      const writer = new LastKnownWriter(world, store, silentLogger(), { debounceMs: 1, now: () => 10_000 });
      const w = new WorldWriter(world, "west", silentLogger());
      for (const o of OBJECTS) world.upsert("west", o);
      for (const k of KINDS) w.listed(k);
      const pod = (ready: boolean) => ({
        kind: "Pod",
        metadata: { name: "p", namespace: "shop", uid: "u" },
        spec: { nodeName: "west-1" },
        status: { podIPs: [{ ip: "10.53.0.9" }], conditions: [{ type: "Ready", status: String(ready) }] },
      });
      w.upsert(pod(true));
      assert.equal(world.cluster("west").pods.size, 1);
      await writer.flush();
      const saved = store.meta("west")?.savedAt;
      const r = store.load("west");
      assert.ok(r?.ok);
      assert.deepEqual(sortObjects(r.value.objects), sortObjects(OBJECTS), "everything but the Pod");
      w.upsert(pod(false));
      await writer.flush();
      assert.equal(store.meta("west")?.savedAt, saved, "a Pod change alone does not rewrite it");
      await writer.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps restored objects until their kind is listed, then removes those the listing did not bring", () => {
    const world = new World();
    const w = new WorldWriter(world, "west", silentLogger());
    w.restore(OBJECTS);
    const c = world.cluster("west");
    assert.equal(c.sync, "restored");
    assert.equal(objectsOf(c).length, OBJECTS.length);
    // the listing brings the Service again; its slice is gone from the cluster
    w.upsert({
      kind: "Service",
      metadata: { name: "pay", namespace: "shop" },
      spec: { clusterIP: "10.97.0.10", ports: [{ name: "http", port: 80 }] },
    });
    w.listed("Service");
    assert.equal(c.services.size, 1);
    assert.equal(c.slices.size, 1, "slices are not listed yet: kept");
    w.listed("EndpointSlice");
    assert.equal(c.slices.size, 0, "listed without it: removed");
    assert.equal(c.sync, "restored", "not every kind listed yet");
    for (const k of KINDS) w.listed(k);
    assert.equal(c.sync, "synced");
    assert.equal(c.nodes.size + c.exports.size + c.imports.size, 0);
  });

  it("writes listed clusters only; a stale one with the time it went stale; again on close", async () => {
    const { state, dir } = tmpState();
    try {
      const world = new World();
      const store = new LastKnownStore(state);
      let now = 10_000;
      const writer = new LastKnownWriter(world, store, silentLogger(), { debounceMs: 1, now: () => now });
      const east = new WorldWriter(world, "east", silentLogger());
      east.upsert({ kind: "Node", metadata: { name: "east-1" } });
      new WorldWriter(world, "west", silentLogger()).restore(OBJECTS);
      await writer.flush();
      assert.equal(store.meta("east"), undefined, "east is not listed yet: its record would be partial");
      assert.equal(store.meta("west"), undefined, "west is only restored: its record stays as it was");
      for (const k of KINDS) east.listed(k);
      await writer.flush();
      assert.equal(store.meta("east")?.lastSeenAt, new Date(10_000).toISOString());
      now = 20_000;
      world.setHealth("east", { stale: true, withdrawn: false, staleSince: 15_000, reason: "refused" });
      await writer.flush();
      assert.equal(
        store.meta("east")?.lastSeenAt,
        new Date(15_000).toISOString(),
        "last seen when it went stale",
      );
      world.setHealth("east", { stale: false, withdrawn: false, staleSince: undefined, reason: undefined });
      now = 30_000;
      await writer.close();
      const r = store.load("east", now);
      assert.ok(r?.ok);
      assert.equal(r.value.lastSeenAt, 30_000, "healthy until the hub stopped");
      assert.deepEqual(r.value.objects, [
        {
          kind: "Node",
          value: { cluster: "east", name: "east-1", addresses: [], zone: undefined, labels: {} },
        },
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("JetStream KV", () => {
    let nats: Awaited<ReturnType<typeof startNatsServer>>;
    before(async () => {
      nats = await startNatsServer({ jetstream: true });
    });
    after(async () => {
      await nats?.stop();
    });

    it("a replica reads a record larger than one JetStream message, in parts", async () => {
      const bucket = `sy-lastknown-${process.pid}`;
      const a = await KvState.open([nats.url], bucket);
      const b = await KvState.open([nats.url], bucket);
      try {
        // random names pack poorly: well over 1 MB of gzip
        const many: ModelObject[] = [];
        for (let i = 0; i < 40_000; i++)
          many.push({
            kind: "Service",
            value: svc(
              `s-${randomBytes(24).toString("hex")}`,
              `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
            ),
          });
        await new LastKnownStore(a).save("west", many, 1_700_000_000_000);
        const meta = new LastKnownStore(a).meta("west")!;
        assert.ok(meta.parts > 4, `${meta.parts} parts for ${meta.bytes} bytes`);
        for (let i = 0; i < 100 && b.get(partKey("west", meta.digest, meta.parts - 1)) === undefined; i++)
          await new Promise((r) => setTimeout(r, 50));
        for (
          let i = 0;
          i < 100 && b.get<{ format: number }>(metaKey("west"))?.format !== LAST_KNOWN_FORMAT;
          i++
        )
          await new Promise((r) => setTimeout(r, 50));
        const r = new LastKnownStore(b).load("west", 1_800_000_000_000);
        assert.ok(r?.ok, JSON.stringify(r));
        assert.equal(r.value.objects.length, many.length);
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
});

describe("encodeLastKnownObjects", () => {
  it("gives JSON.stringify's bytes in key order, the same again from its cache, and new bytes for a replaced object", () => {
    const node = (name: string, ip: string): ModelObject => ({
      kind: "Node",
      value: { cluster: "c", name, addresses: [ip], zone: undefined },
    });
    const objects = [node("n2", "10.0.0.2"), node("n1", "10.0.0.1")];
    const want = JSON.stringify({ objects: [objects[1], objects[0]] });
    assert.equal(encodeLastKnownObjects(objects).toString(), want);
    assert.equal(encodeLastKnownObjects(objects).toString(), want, "from the cache");
    const replaced = [node("n2", "10.0.0.9"), objects[1]!];
    assert.equal(
      encodeLastKnownObjects(replaced).toString(),
      JSON.stringify({ objects: [replaced[1], replaced[0]] }),
    );
  });
});
