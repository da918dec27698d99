/**
 * Kernel tests of the agent's reconciler against real maps: a resync reads
 * every map it writes back (sy_members included) and repairs it, a long
 * Service name reads back equal (same id across resyncs), one Service that
 * does not fit leaves the others updated, and loopback (::1 too) reaches
 * NodePorts.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { parseIpTo16 } from "@switchyard/lib/ip";
import { NatMode } from "@switchyard/proto/assignment";
import { encodeMemberKey, encodeU32 } from "../../services/nodeagent/src/bpf/layout.ts";
import { ffi } from "../../services/nodeagent/src/bpf/libbpf.ts";
import { frontendEntry } from "../../services/nodeagent/src/reconcile/retry-ledger.ts";
import { DatapathHarness, serviceResource, sliceResource } from "../kit/datapath-harness.ts";
import { waitUntil } from "../kit/proc.ts";

function ip16(ip: string): Buffer {
  const r = parseIpTo16(ip);
  assert.ok(r.ok);
  return r.value;
}

describe("resync against the kernel's maps", () => {
  const harnesses: DatapathHarness[] = [];
  const harness = (prefix: string, opts?: Parameters<typeof DatapathHarness.create>[1]) => {
    const h = DatapathHarness.create(prefix, opts);
    harnesses.push(h);
    return h;
  };
  after(() => {
    for (const h of harnesses) h.cleanup();
  });

  it("repairs drift in sy_members (an entry deleted, one rewritten, one stray), then finds none", () => {
    const h = harness("members");
    assert.deepEqual(
      h.assign([
        serviceResource("web", [{ ip: "10.96.20.10", port: 80 }], { affinityTimeoutSeconds: 30 }),
        sliceResource("web", 8080, [{ ip: "198.18.20.11" }, { ip: "198.18.20.12" }]),
      ]),
      [],
    );
    const good = h.dp.maps.read();
    const setId = [...good.frontends.values()][0]!.value.setId;
    const fd = h.dp.maps.fds.sy_members;
    assert.equal(ffi.mapDelete(fd, encodeMemberKey(setId, ip16("198.18.20.11"), 8080)), 0);
    assert.equal(ffi.mapUpdate(fd, encodeMemberKey(setId, ip16("198.18.20.12"), 8080), encodeU32(0), 0), 0);
    assert.equal(ffi.mapUpdate(fd, encodeMemberKey(setId + 100, ip16("10.9.9.9"), 80), encodeU32(0), 0), 0);
    assert.equal(h.core.resync(), 3, "one put for each missing or wrong entry, one delete for the stray");
    assert.deepEqual(h.dp.maps.read().members, good.members);
    assert.equal(h.core.resync(), 0, "in step: nothing written");
  });

  it("a Service with a 200-character name keeps its id across resyncs, and its events name it whole", async () => {
    const h = harness("longname");
    await h.startBackend("a", "198.18.21.11", 8080);
    const name = `web-${"n".repeat(196)}`;
    assert.deepEqual(
      h.assign([
        serviceResource(name, [{ ip: "10.96.21.10", port: 80 }]),
        sliceResource(name, 8080, [{ ip: "198.18.21.11" }]),
      ]),
      [],
    );
    const idOf = () => [...h.dp.maps.read().frontends.values()][0]!.value.svcId;
    const id = idOf();
    assert.equal(h.dp.maps.read().names.get(id), `svc/test/ns/${name}`, "the name reads back whole");
    for (let i = 0; i < 3; i++) {
      assert.equal(h.core.resync(), 0, `resync ${i + 1} finds the maps in step`);
      assert.equal(idOf(), id);
    }
    h.events.length = 0;
    assert.ok((await h.tcp("10.96.21.10", 80)).ok);
    const ev = await waitUntil("the connect event", () => h.events[0]);
    assert.equal(ev.service, `test/ns/${name}`);
  });

  it("while one Service does not fit in a full backend map, the others keep being updated; a due retry writes it once there is room", async () => {
    const h = harness("fullretry", { maxBackends: 4 });
    await h.startBackend("a", "198.18.23.11", 8080);
    await h.startBackend("b", "198.18.23.12", 8080);
    let now = 1_000_000;
    h.core.clock = () => now;
    const one = (ip: string) => [
      serviceResource("one", [{ ip: "10.96.23.1", port: 80 }]),
      sliceResource("one", 8080, [{ ip }]),
    ];
    const big = [
      serviceResource("big", [{ ip: "10.96.23.2", port: 80 }]),
      sliceResource(
        "big",
        8080,
        ["198.18.23.21", "198.18.23.22", "198.18.23.23", "198.18.23.24"].map((ip) => ({ ip })),
      ),
    ];
    assert.deepEqual(h.assign(one("198.18.23.11")), []);
    const errors = h.assign([...one("198.18.23.11"), ...big]);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /frontend 10\.96\.23\.2\|80\|6\|0: .*map full/);
    assert.equal(h.core.retries.get(frontendEntry("10.96.23.2|80|6|0"))?.attempts, 1);
    // the Service that fits moves to another backend: written at once
    assert.deepEqual(h.assign([...one("198.18.23.12"), ...big]), []);
    const r = await h.tcp("10.96.23.1", 80);
    assert.ok(r.ok, JSON.stringify(r));
    assert.match(r.reply, /^b /);
    // room again (the other Service leaves); the retry, once due, writes the big one whole
    assert.deepEqual(h.assign(big), []);
    now += 1000;
    assert.equal(h.core.retryDue(), undefined);
    assert.equal(h.core.retries.size, 0);
    const fe = [...h.dp.maps.read().frontends.values()].find((f) => f.key.ip === "10.96.23.2");
    assert.equal(fe?.value.count, 4);
    assert.equal(h.dp.maps.read().backendSets.get(fe!.value.setId)?.length, 4);
  });
});

describe("loopback reaches NodePorts", () => {
  it("::1 (the IPv6 NodePort entry) and ::ffff:127.0.0.1 from an IPv6 socket (the IPv4 one)", async () => {
    const h = DatapathHarness.create("lo6");
    try {
      await h.startBackend("v4", "198.18.22.11", 8080);
      await h.startBackend("v6", "fd00:22::11", 8080);
      assert.deepEqual(
        h.assign([
          serviceResource("np", [{ ip: "", port: 30222, mode: NatMode.NAT_MODE_NODE_PORT }]),
          sliceResource("np", 8080, [{ ip: "198.18.22.11" }, { ip: "fd00:22::11" }]),
        ]),
        [],
      );
      const six = await h.tcp("::1", 30222);
      assert.ok(six.ok, `::1: ${JSON.stringify(six)}`);
      assert.match(six.reply, /^v6 /);
      assert.equal(six.peer, "::1:30222");
      const mapped = await h.tcp("::ffff:127.0.0.1", 30222);
      assert.ok(mapped.ok, `::ffff:127.0.0.1: ${JSON.stringify(mapped)}`);
      assert.match(mapped.reply, /^v4 /);
    } finally {
      h.cleanup();
    }
  });
});
