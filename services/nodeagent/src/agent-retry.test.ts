/**
 * The agent's reconciler under faults (FakeMaps fault injection): an entry
 * the maps refuse is retried on its own backoff while the others keep being
 * written, nothing is read back after a failure, and a resync covers every
 * map it writes (sy_members too) without false drift, long names included.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { AgentCore } from "./agent.ts";
import { FakeMaps } from "./bpf/maps.ts";
import { frontendEntry } from "./reconcile/retry-ledger.ts";
import { complete, eps, resolved, svc } from "./testing/assignments.ts";

const BIG = frontendEntry("10.96.0.9|80|6|0");
const FULL = "writing set 2 to map sy_backends failed: E2BIG (map full: raise its size)";

/** An agent whose maps refuse the backends of Service "big" (10.64.9.x), as a full backend map would. */
function refusingBig() {
  const maps = new FakeMaps();
  maps.rejects = (o) => (o.op === "put-backend" && o.backend.ip.startsWith("10.64.9.") ? FULL : undefined);
  const core = new AgentCore(maps, "node-1", [], silentLogger());
  const clock = { now: 1_000_000 };
  core.clock = () => clock.now;
  const errors = core.onDelta(
    complete([
      svc("a", "10.96.0.1"),
      eps("a", ["10.64.0.1"]),
      svc("big", "10.96.0.9"),
      eps("big", ["10.64.9.1", "10.64.9.2", "10.64.9.3"]),
    ]),
  );
  return { maps, core, clock, errors };
}

describe("AgentCore: a refused map entry is retried on its own backoff", () => {
  it("NACKs with the reason, writes every other Service, and keeps no half-written set", () => {
    const { maps, core, errors } = refusingBig();
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.name, "(datapath)");
    assert.match(errors[0]!.message, /frontend 10\.96\.0\.9\|80\|6\|0: .*map full: raise its size/);
    assert.deepEqual(resolved(maps.read()), { "10.96.0.1": ["10.64.0.1"] });
    assert.equal(maps.state.backendSets.size, 1, "big's partial set was undone");
    const r = core.retries.get(BIG)!;
    assert.equal(r.reason, FULL);
    assert.equal(r.attempts, 1);
    core.stop();
  });

  it("waits 1 s, 2 s, 4 s … up to 60 s between attempts, and tries nothing before an attempt is due", () => {
    const { maps, core, clock } = refusingBig();
    const waits: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = core.retries.get(BIG)!;
      waits.push(r.retryAt - clock.now);
      clock.now = r.retryAt - 1;
      const writes = maps.writes;
      assert.equal(core.retryDue(), undefined, "nothing is due yet");
      assert.equal(core.retries.get(BIG)!.attempts, r.attempts, "not tried early");
      assert.equal(maps.writes, writes);
      clock.now = r.retryAt;
      assert.match(core.retryDue() ?? "", /map full/);
      assert.equal(core.retries.get(BIG)!.attempts, r.attempts + 1);
    }
    assert.deepEqual(waits, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
    assert.equal(maps.reads, 1, "the maps were read once, at start: never again after a failure");
    core.stop();
  });

  it("keeps updating other Services while one entry fails, then writes it once the map has room, and starts again from 1 s", () => {
    const { maps, core, clock } = refusingBig();
    // another Service changes: written at once, the failing entry untouched
    assert.deepEqual(core.onDelta(complete([eps("a", ["10.64.0.1", "10.64.0.2"])])), []);
    assert.deepEqual(resolved(maps.read())["10.96.0.1"], ["10.64.0.1", "10.64.0.2"]);
    assert.equal(core.retries.get(BIG)!.attempts, 1);
    // room in the map again: the next due retry writes it and forgets the failure
    maps.rejects = undefined;
    clock.now = core.retries.get(BIG)!.retryAt;
    assert.equal(core.retryDue(), undefined);
    assert.deepEqual(resolved(maps.read())["10.96.0.9"], ["10.64.9.1", "10.64.9.2", "10.64.9.3"]);
    assert.equal(core.retries.size, 0);
    // a later failure of the same entry backs off from the start
    maps.rejects = (o) => (o.op === "put-backend" ? FULL : undefined);
    core.onDelta(complete([eps("big", ["10.64.9.4"])]));
    assert.equal(core.retries.get(BIG)!.attempts, 1);
    assert.equal(core.retries.get(BIG)!.retryAt - clock.now, 1000);
    core.stop();
  });

  it("a resync while an entry waits for its retry leaves it alone and finds no drift in the rest", () => {
    const { maps, core } = refusingBig();
    const writes = maps.writes;
    assert.equal(core.resync(), 0);
    assert.equal(maps.writes, writes);
    assert.equal(core.retries.get(BIG)!.attempts, 1, "held, not retried ahead of its backoff");
    core.stop();
  });
});

describe("AgentCore: resync covers every map it writes, without false drift", () => {
  it("repairs sy_members (an entry missing, one at a wrong index, one stray), then writes nothing", () => {
    const maps = new FakeMaps();
    const core = new AgentCore(maps, "node-1", [], silentLogger());
    core.onDelta(complete([svc("a", "10.96.0.1"), eps("a", ["10.64.0.1", "10.64.0.2", "10.64.0.3"])]));
    const members = maps.state.members!;
    const good = new Map(members);
    const [k0, k1] = [...members.keys()];
    members.delete(k0!);
    members.set(k1!, 2);
    members.set("4242|10.9.9.9|80", 0);
    assert.equal(core.resync(), 3);
    assert.deepEqual(maps.state.members, good);
    assert.equal(core.resync(), 0, "in step: nothing written");
  });

  it("a Service name too long for sy_svc_names is stored cut with a hash, and keeps its id across resyncs", () => {
    const maps = new FakeMaps();
    const core = new AgentCore(maps, "node-1", [], silentLogger());
    const long = "x".repeat(300);
    core.onDelta(
      complete([
        svc(long, "10.96.0.1"),
        eps(long, ["10.64.0.1"]),
        svc(`${long}y`, "10.96.0.2"),
        eps(`${long}y`, ["10.64.0.2"]),
      ]),
    );
    const ids = () => [...maps.state.frontends.values()].map((f) => f.value.svcId).sort();
    const before = ids();
    const stored = [...maps.state.names.values()];
    assert.equal(new Set(before).size, 2, "two long names sharing a prefix stay apart");
    for (const n of stored) {
      assert.ok(Buffer.byteLength(n) <= 255, n);
      assert.match(n, /^svc\/c\/ns\/x+~[0-9a-f]{16}$/);
    }
    for (let i = 0; i < 3; i++) assert.equal(core.resync(), 0);
    assert.deepEqual(ids(), before);
  });
});
