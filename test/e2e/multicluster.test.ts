/**
 * Two clusters behind one hub: an agent of cluster east that imports west
 * resolves west's Services too; a ClusterIP that both clusters use goes to
 * east's Service for east's agent, and the hub names both owners.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { serviceYaml } from "../kit/k8s-yaml.ts";
import { waitUntil } from "../kit/proc.ts";
import { Stack } from "../kit/stack.ts";

describe("a view across two clusters", () => {
  let stack: Stack;
  before(async () => {
    stack = Stack.create("multi");
    const east = path.join(stack.stateDir, "east");
    const west = path.join(stack.stateDir, "west");
    fs.mkdirSync(east);
    fs.mkdirSync(west);
    fs.writeFileSync(path.join(east, "a.yaml"), serviceYaml("cart", "10.96.30.1", "198.18.30.11"));
    fs.writeFileSync(
      path.join(west, "a.yaml"),
      `${serviceYaml("aaa-cart", "10.96.30.1", "198.18.30.21")}---\n${serviceYaml("billing", "10.96.30.2", "198.18.30.22")}`,
    );
    await stack.startBackend("east-cart", "198.18.30.11", 8080);
    await stack.startBackend("west-cart", "198.18.30.21", 8080);
    await stack.startBackend("west-billing", "198.18.30.22", 8080);
    await stack.startHub([`east=dir:${east}`, `west=dir:${west}`], ["--view", "east=west"]);
    await stack.startAgent(stack.createToken("east"));
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("resolves a Service imported from the other cluster", async () => {
    const r = await waitUntil("west's billing to resolve", async () => {
      const p = await stack.probe("10.96.30.2", 80);
      return p.ok ? p : undefined;
    });
    assert.match(r.reply, /^west-billing /);
  });

  it("gives a ClusterIP both clusters use to the home cluster, and reports the other owner", async () => {
    const r = await stack.probe("10.96.30.1", 80);
    assert.ok(r.ok);
    assert.match(r.reply, /^east-cart /, "home cluster wins even though west's Service sorts first by name");
    assert.match(
      stack.hub!.output(),
      /svc\/west\/shop\/aaa-cart[^\n]*10\.96\.30\.1:80 is already served by svc\/east\/shop\/cart/,
    );
  });
});
