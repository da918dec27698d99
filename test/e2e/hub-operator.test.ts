/**
 * The hub, tried as an operator would: a cluster whose kubeconfig cannot be
 * read is failed with its name (log, `clusters`, metrics) and the hub
 * serves the others; `clusters` lists the objects refused now with why;
 * `token create` refuses a cluster the hub does not know and a state dir
 * where no hub lives; `token list` marks expired tokens.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { type Proc, REPO, startNode, waitUntil } from "../kit/proc.ts";
import { HUB } from "../kit/stack.ts";

const BAD_SERVICE = `apiVersion: v1
kind: Service
metadata: { name: broken, namespace: shop }
spec: { clusterIP: 999.1.1.1, ports: [{ port: 80 }] }
`;
const GOOD_SERVICE = BAD_SERVICE.replace("999.1.1.1", "10.96.5.5");

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(REPO, HUB), ...args], {
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("hub: what an operator sees", () => {
  let dir: string;
  let stateDir: string;
  let hub: Proc;
  let metricsUrl: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-hub-operator-"));
    stateDir = path.join(dir, "state");
    fs.mkdirSync(path.join(dir, "east"));
    fs.writeFileSync(path.join(dir, "east", "shop.yaml"), BAD_SERVICE);
    hub = startNode(HUB, [
      ...["serve", "--cluster", `east=dir:${path.join(dir, "east")}`],
      ...["--cluster", `west=kubeconfig:${path.join(dir, "missing.kubeconfig")}`],
      ...[
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        stateDir,
        "--io-threads",
        "0",
        "--metrics-listen",
        "127.0.0.1:0",
      ],
    ]);
    metricsUrl = (await hub.waitFor(/metrics (http:\/\/127\.0\.0\.1:\d+\/metrics)/))[1]!;
    await hub.waitFor(/listening 127\.0\.0\.1:\d+/);
  });
  after(async () => {
    await hub?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("reports a cluster whose kubeconfig cannot be read as failed, by name, in the log, `clusters` and metrics", async () => {
    const line = await hub.waitFor(/\{[^\n]*"msg":"cluster failed: its source cannot start[^\n]*\}/);
    const logged = JSON.parse(line[0]) as { cluster: string; reason: string };
    assert.equal(logged.cluster, "west");
    assert.match(logged.reason, /kubeconfig .*missing\.kubeconfig cannot be read: ENOENT/);
    const r = cli("clusters", "--state-dir", stateDir);
    assert.equal(r.code, 0, r.stderr);
    const west = r.stdout.split("\n").find((l) => l.startsWith("west "));
    assert.match(
      west ?? "",
      /^west\s+kubeconfig\s+-\s+failed\s+.*its source did not start: kubeconfig .*cannot be read/,
    );
    assert.match(r.stdout.split("\n").find((l) => l.startsWith("east ")) ?? "", /^east\s+dir\s+-\s+ok\s/);
    const json = JSON.parse(cli("clusters", "--json", "--state-dir", stateDir).stdout) as Array<{
      name: string;
      failed: boolean;
    }>;
    assert.deepEqual(
      json.map((c) => [c.name, c.failed]),
      [
        ["east", false],
        ["west", true],
      ],
    );
    const metrics = await (await fetch(metricsUrl)).text();
    assert.match(metrics, /switchyard_hub_cluster_failed\{cluster="west"\} 1/);
    assert.match(metrics, /switchyard_hub_cluster_failed\{cluster="east"\} 0/);
  });

  it("`clusters` lists the objects refused now with why, and forgets one once it is fixed", async () => {
    const r = cli("clusters", "--state-dir", stateDir);
    assert.match(
      r.stdout,
      /rejected objects .*:\nCLUSTER\s+KIND\s+OBJECT\s+WHY REJECTED\neast\s+Service\s+shop\/broken\s+.*"999\.1\.1\.1", which is not an IP address/,
    );
    assert.match(
      r.stdout.split("\n").find((l) => l.startsWith("east ")) ?? "",
      /\s1\s*$/,
      "REJECTED counts the one refused now",
    );
    fs.writeFileSync(path.join(dir, "east", "shop.yaml"), GOOD_SERVICE);
    await waitUntil("the fixed object leaves the list", () => {
      const now = cli("clusters", "--state-dir", stateDir).stdout;
      return now.includes("shop/broken") ? undefined : now;
    });
  });

  it("token create refuses a cluster the hub does not know, naming the ones it knows (exit 2)", () => {
    const r = cli("token", "create", "--cluster", "nowhere", "--state-dir", stateDir);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^switchyard-hub: cluster "nowhere" is not a cluster of this hub \(its clusters: east, west\)\n$/,
    );
  });

  it("token create refuses a state dir where no hub lives (exit 2); --new-state makes one", () => {
    const empty = path.join(dir, "typo-state");
    const r = cli("token", "create", "--cluster", "east", "--state-dir", empty);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^switchyard-hub: no hub lives in --state-dir .*typo-state .*--new-state/);
    assert.equal(r.stdout, "");
    const made = cli("token", "create", "--cluster", "east", "--state-dir", empty, "--new-state");
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /^[a-z0-9]{6}\.[a-z0-9]{16}\n$/);
  });

  it("token list and revoke refuse a state dir where no hub lives (exit 2), instead of an empty list", () => {
    const empty = path.join(dir, "typo-state-list");
    for (const args of [["list"], ["revoke", "abcdef"]]) {
      const r = cli("token", ...args, "--state-dir", empty);
      assert.equal(r.code, 2, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, /^switchyard-hub: no hub lives in --state-dir .*typo-state-list /);
      assert.doesNotMatch(r.stderr, /--new-state/, "only create can make a state");
      assert.equal(r.stdout, "");
    }
    const none = cli("token", "--state-dir", stateDir);
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /^switchyard-hub: give a token command: create, list or revoke/);
  });

  it("token list marks expired tokens", async () => {
    const id = cli(
      "token",
      "create",
      "--cluster",
      "east",
      "--ttl",
      "1s",
      "--state-dir",
      stateDir,
    ).stdout.split(".")[0]!;
    const listed = await waitUntil("the token expires", () => {
      const row = cli("token", "list", "--state-dir", stateDir)
        .stdout.split("\n")
        .find((l) => l.startsWith(id));
      return row?.includes("(expired)") ? row : undefined;
    });
    assert.match(listed, new RegExp(`^${id}\\s+east\\s+pod\\s+\\S+ \\(expired\\)`));
  });
});
