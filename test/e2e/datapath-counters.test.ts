/**
 * Kernel test of the per-Service resolution counters (`sy_svc_stats`): the
 * programs count every resolution by Service and result, exactly, whether
 * events are on or off; a Service's entry goes with it.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DatapathHarness, serviceResource, sliceResource } from "../kit/datapath-harness.ts";

describe("resolution counters per Service", () => {
  let h: DatapathHarness;
  const resources = () => [
    serviceResource("web", [{ ip: "10.96.7.10", port: 80 }]),
    sliceResource("web", 8080, [{ ip: "198.18.7.11" }, { ip: "198.18.7.12" }]),
    serviceResource("dns", [{ ip: "10.96.7.53", port: 53, protocol: "UDP" }]),
    sliceResource("dns", 8080, [{ ip: "198.18.7.11" }], "UDP"),
    serviceResource("empty", [{ ip: "10.96.7.20", port: 80 }]),
    sliceResource("empty", 8080, []),
  ];
  before(async () => {
    h = DatapathHarness.create("cnt");
    await h.startBackend("a", "198.18.7.11", 8080);
    await h.startBackend("b", "198.18.7.12", 8080);
    assert.deepEqual(h.assign(resources()), []);
  });
  after(() => h?.cleanup());

  /** counts by Service name (the maps' own names) */
  function countsByName() {
    const names = h.dp.maps.read().names;
    const out = new Map<string, Record<string, bigint>>();
    for (const [id, c] of h.dp.maps.readResolutionCounters()) out.set(names.get(id) ?? `#${id}`, c);
    return out;
  }
  const zero = {
    ok: 0n,
    noBackend: 0n,
    backendMissing: 0n,
    noLocalBackend: 0n,
    familyMismatch: 0n,
    fallback: 0n,
  };

  it("every Service starts at zero", () => {
    const c = countsByName();
    assert.deepEqual(c.get("svc/test/ns/web"), zero);
    assert.deepEqual(c.get("svc/test/ns/dns"), zero);
    assert.deepEqual(c.get("svc/test/ns/empty"), zero);
  });

  it("count the connects, datagrams and refusals a client made, per Service and result, with events off too", async () => {
    h.dp.maps.writeSettings({ eventsOn: false, sampleOneIn: 1 });
    const r = await h.tcpMany("10.96.7.10", 80, 40);
    assert.equal(r.ok, 40, JSON.stringify(r));
    h.dp.maps.writeSettings({ eventsOn: true, sampleOneIn: 1 });
    for (let i = 0; i < 3; i++) assert.equal((await h.tcp("10.96.7.20", 80)).ok, false);
    for (let i = 0; i < 2; i++) {
      const u = await h.udp("10.96.7.53", 53, "unconnected");
      assert.ok(u.ok, JSON.stringify(u));
    }
    const u = await h.udp("10.96.7.53", 53, "connected");
    assert.ok(u.ok, JSON.stringify(u));
    const c = countsByName();
    assert.deepEqual(c.get("svc/test/ns/web"), { ...zero, ok: 40n });
    assert.deepEqual(c.get("svc/test/ns/empty"), { ...zero, noBackend: 3n });
    // two unconnected datagrams (sendmsg) and one connect of a UDP socket
    assert.deepEqual(c.get("svc/test/ns/dns"), { ...zero, ok: 3n });
  });

  it("a removed Service's counters go with its name", async () => {
    assert.deepEqual(h.assign(resources().slice(0, 4)), []);
    await h.core.whenRetired();
    const c = countsByName();
    assert.equal(c.has("svc/test/ns/empty"), false);
    assert.equal(c.size, 2);
  });
});
