/**
 * skipRedirectFromBackend in the agent: the cgroups of a policy's selected
 * local pods (found by UID) are written to sy_lrp_skip under the policy's
 * id, follow the pods, and go with the policy.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import { AgentCore } from "./agent.ts";
import { FakeMaps, skipKey } from "./bpf/maps.ts";
import { complete, eps, svc } from "./testing/assignments.ts";
import { lrpbResource, lrpResource } from "./testing/local-redirect.ts";

const policy = lrpResource("nld", "service", [{ ip: "10.96.0.1", port: 80 }], {
  skipRedirectFromBackend: true,
});
const pods = (uids: string[]) =>
  lrpbResource(
    "nld",
    "node-1",
    [{ name: "p", port: 5353 }],
    uids.map((uid, i) => ({ name: `pod-${i}`, ips: [`10.1.0.${i + 1}`], uid })),
  );

describe("AgentCore: skip-from-backend cgroups", () => {
  it("writes each selected pod's cgroups under the policy's id, follows the pods, and clears them with the policy", () => {
    const maps = new FakeMaps();
    const core = new AgentCore(maps, "node-1", [], silentLogger());
    const cgroups: Record<string, bigint[]> = { "u-1": [101n, 102n], "u-2": [201n] };
    const asked: string[][] = [];
    core.findPodCgroups = (uids) => {
      asked.push([...uids]);
      return new Map(uids.flatMap((u) => (cgroups[u] ? [[u, cgroups[u]] as const] : [])));
    };
    assert.deepEqual(
      core.onDelta(complete([svc("a", "10.96.0.1"), eps("a", ["10.64.0.1"]), policy, pods(["u-1"])])),
      [],
    );
    const id = [...maps.state.names].find(([, n]) => n === "lrp/test/ns/nld")![0];
    assert.deepEqual([...maps.skipEntries].sort(), [skipKey(id, 101n), skipKey(id, 102n)]);

    core.onDelta(complete([pods(["u-2"])]));
    assert.deepEqual([...maps.skipEntries], [skipKey(id, 201n)]);

    // an endpoint change of a Service does not walk the cgroup tree again
    const walks = asked.length;
    core.onDelta(complete([eps("a", ["10.64.0.2"])]));
    assert.equal(asked.length, walks);

    core.onDelta(
      StreamAssignmentsResponse.fromPartial({
        nonce: "x",
        removedResources: [policy.name],
        viewComplete: true,
      }),
    );
    assert.deepEqual([...maps.skipEntries], []);
  });
});
