/**
 * The README's first command shows what it promises: a connect to the demo
 * Service's ClusterIP reaches a backend, NAT events arrive over NATS, and it
 * cleans up after itself.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { REPO, startNode } from "../kit/proc.ts";
import { findCgroup2Root } from "../kit/sandbox.ts";

describe("npm run demo", () => {
  it("resolves the example Service, shows events, and leaves nothing behind", async () => {
    const demo = startNode("scripts/demo.ts", ["--rounds", "2", "--interval-ms", "100"]);
    const code = await new Promise<number | null>((resolve) => demo.cp.on("exit", resolve));
    const out = demo.output();
    assert.equal(code, 0, out);
    assert.match(
      out,
      /\[1\] connect 10\.96\.0\.10:80 → reached backend-[ab]; getpeername\(\) still says 10\.96\.0\.10:80/,
    );
    assert.match(
      out,
      /event on switchyard\.nat\.demo\.node-1\.demo\.web: demo\/demo\/web tcp 10\.96\.0\.10:80 → 198\.18\.0\.1[12]:8080/,
    );
    assert.match(out, /10\.96\.0\.10:80\/tcp {2}demo\/demo\/web/);
    const ns = /network namespace (\S+)/.exec(out)![1]!;
    assert.ok(!fs.existsSync(`/run/netns/${ns}`), "namespace removed");
    assert.ok(!fs.existsSync(`${findCgroup2Root()}/${ns}`), "cgroup removed");
    assert.ok(!fs.existsSync(`/sys/fs/bpf/${ns}`), "pins removed");
  });
});

describe("npm run demo -- --rounds 4, with its YAML edited while it runs", () => {
  it("echoes the edit in words (endpoint removed: …) and finishes its rounds", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-demo-examples-"));
    try {
      fs.cpSync(path.join(REPO, "deploy/examples"), dir, { recursive: true });
      const demo = startNode("scripts/demo.ts", [
        "--rounds",
        "4",
        "--interval-ms",
        "1500",
        "--examples",
        dir,
      ]);
      const exited = new Promise<number | null>((resolve) => demo.cp.on("exit", resolve));
      await demo.waitFor(/\[1\] connect 10\.96\.0\.10:80/, 120_000);
      const web = path.join(dir, "web.yaml");
      const text = fs.readFileSync(web, "utf8");
      // the second endpoint goes (its three lines)
      fs.writeFileSync(web, text.replace(/ {2}- addresses: \[198\.18\.0\.12\]\n.*\n.*\n/, ""));
      await demo.waitFor(/✎ you edited \S+: endpoint removed: demo\/web 198\.18\.0\.12/);
      assert.equal(await exited, 0, demo.output());
      assert.match(demo.output(), /\[4\] connect 10\.96\.0\.10:80/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
