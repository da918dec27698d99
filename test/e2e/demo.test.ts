/**
 * The README's first command shows what it promises: a connect to the demo
 * Service's ClusterIP reaches a backend, NAT events arrive over NATS, and it
 * cleans up after itself.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import { describe, it } from "node:test";
import { startNode } from "../kit/proc.ts";
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
