/**
 * Where does VIP:port go: `switchyard-hub lookup` answers from a real hub's
 * view (the Service and its ready backends, why none, a Service in a
 * cluster outside the node's view). On the node: agent-dump.test.ts.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { serviceWithEndpointsYaml } from "../kit/k8s-yaml.ts";
import { runNode as run } from "../kit/proc.ts";
import { requireRoot } from "../kit/sandbox.ts";
import { HUB, Stack } from "../kit/stack.ts";

describe("switchyard-hub lookup", () => {
  let stack: Stack;
  before(async () => {
    requireRoot();
    stack = Stack.create("sy-lookup");
    const a = path.join(stack.stateDir, "cluster-a");
    const b = path.join(stack.stateDir, "cluster-b");
    fs.mkdirSync(a);
    fs.mkdirSync(b);
    fs.writeFileSync(
      path.join(a, "web.yaml"),
      `${serviceWithEndpointsYaml("web", "10.96.0.10", [
        ["198.18.0.11", true],
        ["198.18.0.12", false],
      ])}---\n${serviceWithEndpointsYaml("idle", "10.96.0.20", [["198.18.0.13", false]])}`,
    );
    fs.writeFileSync(
      path.join(b, "other.yaml"),
      serviceWithEndpointsYaml("other", "10.96.9.9", [["198.18.9.1", true]]),
    );
    await stack.startHub([`a=dir:${a}`, `b=dir:${b}`]);
  });
  after(async () => stack?.cleanup());

  const lookup = (...args: string[]) =>
    run(HUB, ["lookup", "--state-dir", stack.stateDir, "--node", "node-1", ...args]);

  it("names the Service and the backends the node's agent uses; the not-ready one is listed, not used", async () => {
    const r = await lookup("--cluster", "a", "10.96.0.10:80");
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /^10\.96\.0\.10:80\/tcp on node-1 → Service svc\/a\/demo\/web → 198\.18\.0\.11:8080\n/,
    );
    assert.match(r.stdout, /-> 198\.18\.0\.11:8080 {2}node-1 {2}ready/);
    assert.match(r.stdout, / {4} {3}198\.18\.0\.12:8080 {2}node-1 {2}not ready/);
  });

  it("says why none: no ready endpoints (--json)", async () => {
    const r = await lookup("--cluster", "a", "10.96.0.20:80", "--json");
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { matches: Array<{ kind: string; inForce: boolean; reason: string }> };
    assert.equal(j.matches[0]?.kind, "Service");
    assert.equal(j.matches[0]?.inForce, true);
    assert.match(j.matches[0]?.reason ?? "", /no ready endpoints \(1 not ready\): connects are refused/);
  });

  it("says when the address's Service is in a cluster outside the node's view", async () => {
    const r = await lookup("--cluster", "a", "10.96.9.9:80");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /is not a frontend on node-1/);
    assert.match(
      r.stdout,
      /note: Service b\/demo\/other has this address, but cluster b is not in node-1's view \(a\)/,
    );
  });

  it("refuses a missing --node, a bad destination and an unknown cluster in one line", async () => {
    for (const [args, want] of [
      [["lookup", "--state-dir", stack.stateDir, "10.96.0.10:80"], /give --node NODE/],
      [["lookup", "--state-dir", stack.stateDir, "--node", "n", "web:80"], /"web:80" is not IP:PORT/],
      [
        ["lookup", "--state-dir", stack.stateDir, "--node", "n", "--cluster", "zz", "10.96.0.10:80"],
        /cluster "zz" is not a cluster of this hub/,
      ],
    ] as const) {
      const r = await run(HUB, [...args]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, want);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
  });
});
