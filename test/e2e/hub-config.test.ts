/**
 * The hub's config file is live: a cluster added to it (and to a view)
 * reaches the running agent, a bad edit is refused with its reason while
 * everything keeps working, and a cluster removed from it leaves.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { serviceYaml } from "../kit/k8s-yaml.ts";
import { waitUntil } from "../kit/proc.ts";
import { Stack } from "../kit/stack.ts";

describe("a hub configured by a file that changes while it runs", () => {
  let stack: Stack;
  let config: string;
  let dirA: string;
  let dirB: string;
  const writeConfig = (text: string) => {
    // replaced, not rewritten in place, as editors and config management do
    fs.writeFileSync(`${config}.tmp`, text);
    fs.renameSync(`${config}.tmp`, config);
  };
  before(async () => {
    stack = Stack.create("hubcfg");
    dirA = path.join(stack.stateDir, "a");
    dirB = path.join(stack.stateDir, "b");
    fs.mkdirSync(dirA);
    fs.mkdirSync(dirB);
    fs.writeFileSync(path.join(dirA, "a.yaml"), serviceYaml("alpha", "10.96.54.1", "198.18.54.11"));
    fs.writeFileSync(path.join(dirB, "b.yaml"), serviceYaml("beta", "10.96.54.2", "198.18.54.12"));
    await stack.startBackend("alpha", "198.18.54.11", 8080);
    await stack.startBackend("beta", "198.18.54.12", 8080);
    const cfgDir = path.join(stack.stateDir, "etc");
    fs.mkdirSync(cfgDir);
    config = path.join(cfgDir, "hub.yaml");
    writeConfig(`clusters:\n  - name: a\n    directory: ${dirA}\n`);
    await stack.startHub([], ["--config", config]);
    await stack.startAgent(stack.createToken("a"));
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("serves the clusters of the file", async () => {
    await waitUntil("alpha to resolve", async () =>
      (await stack.probe("10.96.54.1", 80)).ok ? true : undefined,
    );
    assert.equal((await stack.probe("10.96.54.2", 80)).ok, false);
  });

  it("adds a cluster and a view live; the agent receives it without a restart", async () => {
    writeConfig(
      `clusters:\n  - name: a\n    directory: ${dirA}\n    imports: [b]\n  - name: b\n    directory: ${dirB}\n`,
    );
    const r = await waitUntil("beta to resolve", async () => {
      const p = await stack.probe("10.96.54.2", 80);
      return p.ok ? p : undefined;
    });
    assert.match(r.reply, /^beta /);
    await stack.hub!.waitFor(/view changed/);
  });

  it("refuses a bad edit with its reason and keeps the previous config", async () => {
    writeConfig(`clusters:\n  - name: a\n    directory: ${dirA}\n    imports: [nowhere]\n`);
    await stack.hub!.waitFor(/imports \\"nowhere\\", which is not a cluster[^\n]*config not applied/);
    assert.ok((await stack.probe("10.96.54.2", 80)).ok, "b is still served");
    assert.ok((await stack.probe("10.96.54.1", 80)).ok, "a is still served");
  });

  it("removes a cluster live; its Services leave", async () => {
    writeConfig(`clusters:\n  - name: a\n    directory: ${dirA}\n`);
    await waitUntil("beta to stop resolving", async () =>
      (await stack.probe("10.96.54.2", 80)).ok ? undefined : true,
    );
    assert.ok((await stack.probe("10.96.54.1", 80)).ok, "a is untouched");
  });
});
