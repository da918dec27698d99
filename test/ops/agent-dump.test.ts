/**
 * `switchyard-agent dump IP:PORT`: the one frontend a connect to it meets in
 * a real agent's maps, or that there is none (the hub's side: lookup.test.ts).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { serviceWithEndpointsYaml } from "../kit/k8s-yaml.ts";
import { runNode as run } from "../kit/proc.ts";
import { requireRoot } from "../kit/sandbox.ts";
import { AGENT, Stack } from "../kit/stack.ts";

describe("switchyard-agent dump IP:PORT", () => {
  let stack: Stack;
  before(async () => {
    requireRoot();
    stack = Stack.create("sy-dumpdst");
    const a = path.join(stack.stateDir, "cluster-a");
    fs.mkdirSync(a);
    fs.writeFileSync(
      path.join(a, "web.yaml"),
      `${serviceWithEndpointsYaml("web", "10.96.0.10", [["198.18.0.11", true]])}---\n${serviceWithEndpointsYaml("idle", "10.96.0.20", [["198.18.0.13", false]])}`,
    );
    await stack.startHub([`a=dir:${a}`]);
  });
  after(async () => stack?.cleanup());

  it("switchyard-agent dump IP:PORT shows the one frontend a connect meets, or that there is none", async () => {
    const agent = await stack.startAgent(stack.createToken("a"));
    await agent.waitFor(/complete view from the hub/, 120_000);
    const dump = (...args: string[]) =>
      run(AGENT, [
        "dump",
        "--pin-dir",
        stack.pinDir,
        "--state-dir",
        path.join(stack.stateDir, "agent"),
        ...args,
      ]);
    const one = await dump("10.96.0.10:80");
    assert.equal(one.status, 0, one.stderr);
    assert.match(one.stdout, /10\.96\.0\.10:80\/tcp {2}a\/demo\/web/);
    assert.doesNotMatch(one.stdout, /10\.96\.0\.20/);
    const json = JSON.parse((await dump("10.96.0.10:80", "--json")).stdout) as {
      frontends: Array<{ ip: string; backends: unknown[] }>;
    };
    assert.deepEqual(
      json.frontends.map((f) => f.ip),
      ["10.96.0.10"],
    );
    const none = await dump("10.96.0.10:81");
    assert.match(none.stdout, /no frontend for 10\.96\.0\.10:81 in the maps/);
    const bad = await dump("nope");
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /"nope" is not IP:PORT/);
  });
});
