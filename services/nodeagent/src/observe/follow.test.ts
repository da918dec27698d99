import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NatEvent } from "../events/nat-event.ts";
import { sampleNatEvent } from "../testing/nat-event.ts";
import { computeFollowSubject, matchesFilter, parseSince } from "./follow.ts";

const ev = (over: Partial<NatEvent>): NatEvent => sampleNatEvent({ node: "n1.example", pid: 1, ...over });

describe("switchyard events filters", () => {
  it("puts cluster, node, namespace and service in the subject, wildcards for the rest", () => {
    const table: Array<[Parameters<typeof computeFollowSubject>[0], string]> = [
      [{}, "switchyard.nat.>"],
      [{ cluster: "east" }, "switchyard.nat.east.>"],
      [{ cluster: "east", node: "n1.example" }, "switchyard.nat.east.n1_example.>"],
      [{ namespace: "demo" }, "switchyard.nat.*.*.demo.>"],
      [{ service: "web" }, "switchyard.nat.*.*.*.web"],
      [{ cluster: "east", node: "n1", namespace: "demo", service: "web" }, "switchyard.nat.east.n1.demo.web"],
    ];
    for (const [f, subject] of table) assert.equal(computeFollowSubject(f), subject, JSON.stringify(f));
  });

  it("checks result, protocol and the exact names on each event", () => {
    const failed = ev({ isSuccess: false, failureCode: "noBackend" });
    assert.equal(matchesFilter(failed, { result: "failures" }), true);
    assert.equal(matchesFilter(ev({}), { result: "failures" }), false);
    assert.equal(matchesFilter(ev({}), { result: "ok" }), true);
    assert.equal(matchesFilter(failed, { result: "noBackend" }), true);
    assert.equal(matchesFilter(failed, { result: "backendMissing" }), false);
    assert.equal(matchesFilter(ev({}), { protocol: "udp" }), false);
    assert.equal(matchesFilter(ev({}), { node: "n1.example", namespace: "demo", service: "web" }), true);
    // n1_example is the subject token of n1.example, not another node's name
    assert.equal(matchesFilter(ev({}), { node: "n1_example" }), false);
    assert.equal(
      matchesFilter(ev({ service: "lrp/east/kube-system/dns" }), { namespace: "kube-system" }),
      true,
    );
  });

  it("--since takes a duration back from now or a time", () => {
    const now = Date.parse("2026-12-02T09:00:00Z");
    assert.deepEqual(parseSince("10m", now), { ok: true, value: new Date("2026-12-02T08:50:00Z") });
    assert.deepEqual(parseSince("2026-12-02T08:00:00Z", now), {
      ok: true,
      value: new Date("2026-12-02T08:00:00Z"),
    });
    const bad = parseSince("yesterday", now);
    assert.ok(!bad.ok);
    assert.match(bad.error, /neither a duration .* nor a time/);
  });
});
