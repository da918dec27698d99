/**
 * `switchyard-hub cluster join/leave` against the test API server: join
 * creates the ServiceAccount, the hub's ClusterRole (the rules the hub's
 * sources use), its binding and a token Secret, writes a kubeconfig with the
 * ServiceAccount's token and registers the cluster in the hub's config file;
 * the running hub then watches the member with that kubeconfig (the admin's
 * token no longer accepted). leave removes all of it and the hub drops the
 * cluster.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import YAML from "yaml";
import { computeHubClusterRoleRules } from "../../services/hub/src/sources/kube-api.ts";
import { FakeKubeApiServer } from "../kit/kube-apiserver.ts";
import { type Proc, REPO, runNode, startNode, waitUntil } from "../kit/proc.ts";
import { HUB } from "../kit/stack.ts";

type ClusterRow = { name: string; services: number; stale: boolean };

describe("switchyard-hub cluster join / leave", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-join-"));
  const api = new FakeKubeApiServer();
  let hub: Proc;
  let admin = "";
  const config = path.join(dir, "hub.yaml");
  const stateDir = path.join(dir, "hub-state");
  // asynchronous: the test API server answers from this process
  const cli = (...args: string[]) => runNode(HUB, args);
  const clusters = async () =>
    JSON.parse((await cli("clusters", "--json", "--state-dir", stateDir)).stdout) as ClusterRow[];

  before(async () => {
    await api.start();
    api.acceptedTokens = new Set(["test-token"]);
    admin = api.writeKubeconfig(dir, "admin");
    api.apply({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", namespace: "default" },
      spec: { clusterIP: "10.96.7.7", ports: [{ port: 80, protocol: "TCP" }] },
    });
    fs.writeFileSync(
      config,
      `# the hub's clusters\nclusters:\n  - name: home   # the demo's\n    directory: ${path.join(REPO, "deploy/examples")}\n`,
    );
    hub = startNode(HUB, ["serve", "--config", config, "--listen", "127.0.0.1:0", "--state-dir", stateDir]);
    await hub.waitFor(/listening 127\.0\.0\.1:\d+/);
  });
  after(async () => {
    await hub?.stop();
    await api.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("join creates the ServiceAccount, read-only role, binding and token, and the hub watches the member with them", async () => {
    const r = await cli("cluster", "join", "member", "--kubeconfig", admin, "--config", config);
    assert.equal(r.status, 0, r.stderr);
    const out = path.join(dir, "member.kubeconfig");
    assert.equal(r.stdout.trim(), out);

    const s = api.store;
    assert.ok(s.get("Namespace", undefined, "switchyard"));
    assert.ok(s.get("ServiceAccount", "switchyard", "switchyard-hub"));
    assert.deepEqual(
      s.get("ClusterRole", undefined, "switchyard-hub")?.["rules"],
      computeHubClusterRoleRules(),
    );
    const binding = s.get("ClusterRoleBinding", undefined, "switchyard-hub-switchyard");
    assert.deepEqual(binding?.["roleRef"], {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: "switchyard-hub",
    });
    assert.deepEqual(binding?.["subjects"], [
      { kind: "ServiceAccount", name: "switchyard-hub", namespace: "switchyard" },
    ]);
    const secret = s.get("Secret", "switchyard", "switchyard-hub-token");
    assert.equal(secret?.["type"], "kubernetes.io/service-account-token");
    const data = secret?.["data"] as { token: string } | undefined;
    assert.ok(data?.token, "the token controller filled the token");
    const token = Buffer.from(data.token, "base64").toString();

    assert.equal(fs.statSync(out).mode & 0o777, 0o600);
    const kc = YAML.parse(fs.readFileSync(out, "utf8"));
    const adminKc = YAML.parse(fs.readFileSync(admin, "utf8"));
    assert.equal(kc.clusters[0].cluster.server, api.url);
    assert.equal(
      kc.clusters[0].cluster["certificate-authority-data"],
      adminKc.clusters[0].cluster["certificate-authority-data"],
    );
    assert.deepEqual(kc.users[0].user, { token }, "the ServiceAccount's token, nothing of the admin's");

    const cfg = fs.readFileSync(config, "utf8");
    assert.match(cfg, /# the demo's/, "comments kept");
    assert.deepEqual(YAML.parse(cfg).clusters[1], { name: "member", kubeconfig: out });

    // only the ServiceAccount's token opens the API server now, and only for what its role allows
    api.acceptedTokens!.delete("test-token");
    await waitUntil("the hub lists the member with its Service", async () => {
      const m = (await clusters()).find((c) => c.name === "member");
      return m && m.services === 1 && !m.stale ? m : undefined;
    });
    assert.ok(
      api.requests.some((r) => /^GET \/api\/v1\/pods\?.*watch=true/.test(r)),
      "the hub watches with the token",
    );
    assert.deepEqual(api.store.denied, [], "the role grants every list and watch the hub makes");
    // and nothing else: the token cannot create a namespace
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        `${api.url}/api/v1/namespaces`,
        {
          method: "POST",
          ca: Buffer.from(kc.clusters[0].cluster["certificate-authority-data"], "base64"),
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify({ metadata: { name: "x" } }));
    });
    assert.equal(status, 403);
    api.acceptedTokens!.add("test-token");
  });

  it("join again keeps the token and brings the role up to date; --server names the address the hub reaches", async () => {
    const token = api.store.get("Secret", "switchyard", "switchyard-hub-token")?.["data"];
    const writes = api.store.writes.length;
    const server = `https://localhost:${api.port}`;
    const r = await cli(
      "cluster",
      "join",
      "member",
      "--kubeconfig",
      admin,
      "--config",
      config,
      "--server",
      server,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      YAML.parse(fs.readFileSync(path.join(dir, "member.kubeconfig"), "utf8")).clusters[0].cluster.server,
      server,
    );
    assert.deepEqual(api.store.get("Secret", "switchyard", "switchyard-hub-token")?.["data"], token);
    assert.deepEqual(api.store.writes.slice(writes), [
      "PUT ClusterRole switchyard-hub",
      "PUT ClusterRoleBinding switchyard-hub-switchyard",
    ]);
  });

  it("leave removes the objects, the kubeconfig and the config entry; the hub drops the cluster", async () => {
    const r = await cli("cluster", "leave", "member", "--kubeconfig", admin, "--config", config);
    assert.equal(r.status, 0, r.stderr);
    for (const kind of ["Namespace", "ServiceAccount", "Secret", "ClusterRole", "ClusterRoleBinding"])
      assert.deepEqual(api.store.list(kind), [], `${kind} left`);
    assert.ok(!fs.existsSync(path.join(dir, "member.kubeconfig")));
    assert.deepEqual(
      YAML.parse(fs.readFileSync(config, "utf8")).clusters.map((c: { name: string }) => c.name),
      ["home"],
    );
    await waitUntil("the hub drops the member", async () =>
      (await clusters()).some((c) => c.name === "member") ? undefined : true,
    );
  });

  it("refuses a bad name and a missing admin kubeconfig in one line, before touching the member", async () => {
    const writes = api.store.writes.length;
    for (const [args, want] of [
      [["cluster", "join", "Bad_Name", "--kubeconfig", admin], /cluster name "Bad_Name"/],
      [["cluster", "join", "x"], /give --kubeconfig/],
      [["cluster", "join", "x", "--kubeconfig", path.join(dir, "nope")], /--kubeconfig .*nope/],
    ] as const) {
      const r = await cli(...args);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, want);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
    assert.equal(api.store.writes.length, writes);
  });
});
