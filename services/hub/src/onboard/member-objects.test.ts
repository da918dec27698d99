import assert from "node:assert/strict";
import { describe, it } from "node:test";
import YAML from "yaml";
import { computeHubClusterRoleRules } from "../sources/kube-api.ts";
import {
  checkMemberNames,
  computeConfigWithCluster,
  computeConfigWithoutCluster,
  computeMemberObjects,
} from "./member-objects.ts";

const CONFIG = `# hub
listen: 0.0.0.0:7443
clusters:
  - name: home   # here
    directory: /srv/home
    imports: [east]
  - name: east
    kubeconfig: /etc/switchyard/east.kubeconfig
`;

describe("member cluster onboarding (pure)", () => {
  it("grants exactly the rules the hub's sources use, to the ServiceAccount, with a token Secret for it", () => {
    const o = computeMemberObjects("east", { namespace: "sy", serviceAccount: "hub" });
    assert.deepEqual(o.clusterRole.rules, computeHubClusterRoleRules());
    assert.deepEqual(o.clusterRoleBinding.subjects, [
      { kind: "ServiceAccount", name: "hub", namespace: "sy" },
    ]);
    assert.equal(o.tokenSecret.type, "kubernetes.io/service-account-token");
    assert.equal(o.tokenSecret.metadata.annotations["kubernetes.io/service-account.name"], "hub");
  });

  it("adds a cluster to the config file, or updates its kubeconfig, keeping comments", () => {
    const add = computeConfigWithCluster(CONFIG, "hub.yaml", "west", "/etc/switchyard/west.kubeconfig");
    assert.ok(add.ok);
    assert.match(add.value, /# here/);
    assert.deepEqual(YAML.parse(add.value).clusters[2], {
      name: "west",
      kubeconfig: "/etc/switchyard/west.kubeconfig",
    });
    const upd = computeConfigWithCluster(CONFIG, "hub.yaml", "east", "/new/east.kubeconfig");
    assert.ok(upd.ok);
    assert.equal(YAML.parse(upd.value).clusters[1].kubeconfig, "/new/east.kubeconfig");
    const fresh = computeConfigWithCluster("", "hub.yaml", "a", "/a.kubeconfig");
    assert.ok(fresh.ok);
    assert.deepEqual(YAML.parse(fresh.value).clusters, [{ name: "a", kubeconfig: "/a.kubeconfig" }]);
  });

  it("refuses a name the config holds with another source", () => {
    const r = computeConfigWithCluster(CONFIG, "hub.yaml", "home", "/x");
    assert.ok(!r.ok);
    assert.match(r.error, /cluster home is there with another source/);
  });

  it("removes a cluster and its name from other clusters' imports, and says which kubeconfig it read", () => {
    const r = computeConfigWithoutCluster(CONFIG, "hub.yaml", "east");
    assert.ok(r.ok);
    assert.equal(r.value.kubeconfig, "/etc/switchyard/east.kubeconfig");
    const doc = YAML.parse(r.value.text);
    assert.deepEqual(
      doc.clusters.map((c: { name: string }) => c.name),
      ["home"],
    );
    assert.deepEqual(doc.clusters[0].imports, []);
    const none = computeConfigWithoutCluster(CONFIG, "hub.yaml", "nope");
    assert.ok(none.ok && !none.value.found);
  });

  it("checks the names Kubernetes will be given", () => {
    assert.equal(
      checkMemberNames("east", { namespace: "switchyard", serviceAccount: "switchyard-hub" }),
      undefined,
    );
    assert.match(
      checkMemberNames("east", { namespace: "Sy", serviceAccount: "x" }) ?? "",
      /--namespace "Sy"/,
    );
  });
});
