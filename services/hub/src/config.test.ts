import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseHubConfig } from "./config.ts";

describe("hub config file", () => {
  it("reads clusters of every source kind, their views and the settings", () => {
    const r = parseHubConfig(
      `listen: 0.0.0.0:7443
metricsListen: 127.0.0.1:9464
staleGrace: 90s
ioThreads: 3
externalTrafficStrict: true
clusters:
  - { name: east, kubeconfig: /etc/east.kubeconfig, imports: [west, edge] }
  - { name: west, inCluster: true }
  - { name: edge, directory: /srv/edge }
`,
      "hub.yaml",
    );
    assert.ok(r.ok, r.ok ? "" : r.error);
    assert.deepEqual(
      r.value.clusters.map((c) => `${c.name}:${c.kind}`),
      ["east:kubeconfig", "west:in-cluster", "edge:dir"],
    );
    assert.deepEqual(r.value.imports.get("east"), ["west", "edge"]);
    assert.equal(r.value.staleGraceMs, 90_000);
    assert.equal(r.value.metricsListen, "127.0.0.1:9464");
    assert.equal(r.value.ioThreads, 3);
    assert.equal(r.value.externalTrafficStrict, true);
    const plain = parseHubConfig("clusters: []", "hub.yaml");
    assert.ok(plain.ok);
    assert.equal(plain.value.externalTrafficStrict, undefined, "unset: the hub's default (not strict)");
  });

  it("names the file, the entry and what to write for each mistake", () => {
    const cases: Array<[string, RegExp]> = [
      ["clusters: [{ name: East, directory: /x }]", /clusters\[0\]: name "East" must be a DNS label/],
      ["clusters: [{ name: a }]", /clusters\[0\] \(a\): give exactly one of kubeconfig/],
      ["clusters: [{ name: a, directory: /x, kubeconfig: /y }]", /give exactly one of/],
      ["clusters: [{ name: a, directory: /x }, { name: a, directory: /y }]", /cluster a is listed twice/],
      ["clusters: [{ name: a, directory: /x, imports: [b] }]", /imports "b", which is not a cluster/],
      ["clusters: [{ name: a, directory: /x, imports: [a] }]", /cluster a imports itself/],
      ["clusters: [{ name: a, directory: /x, colour: red }]", /unknown field "colour"/],
      ["staleGrace: soon\nclusters: []", /staleGrace: duration "soon"/],
      ["listen: nowhere\nclusters: []", /listen: --listen "nowhere" must be HOST:PORT/],
      ["clusters: [a: [", /not valid YAML/],
      ["lisen: 1.2.3.4:5", /unknown field "lisen"/],
      ["ioThreads: two\nclusters: []", /ioThreads must be a whole number from 0 .* not "two"/],
      ["ioThreads: -1\nclusters: []", /ioThreads must be a whole number/],
      [
        'externalTrafficStrict: "yes"\nclusters: []',
        /externalTrafficStrict must be true or false .* not "yes"/,
      ],
      ["externalTrafficStrict: 1\nclusters: []", /externalTrafficStrict must be true or false .* not 1/],
    ];
    for (const [text, re] of cases) {
      const r = parseHubConfig(text, "hub.yaml");
      assert.ok(!r.ok, text);
      assert.match(r.error, re, text);
      assert.match(r.error, /^hub\.yaml/, "the file is named");
    }
  });
});
