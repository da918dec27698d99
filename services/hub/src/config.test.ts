import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkRemovedFront, parseHubConfig, resolveLimits } from "./config.ts";
import { DEFAULT_LIMITS } from "./transport/limits.ts";

describe("hub config file", () => {
  it("reads clusters of every source kind, their views and the settings", () => {
    const r = parseHubConfig(
      `listen: 0.0.0.0:7443
metricsListen: 127.0.0.1:9464
staleGrace: 90s
ioThreads: 3
externalTrafficStrict: true
entryInterface: vxlan0
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
    assert.equal(r.value.entryInterface, "vxlan0");
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
      [
        "entryInterface: eth0; rm\nclusters: []",
        /entryInterface must be a network interface name .* not "eth0; rm"/,
      ],
      ["entryInterface: 7\nclusters: []", /entryInterface must be a network interface name/],
    ];
    for (const [text, re] of cases) {
      const r = parseHubConfig(text, "hub.yaml");
      assert.ok(!r.ok, text);
      assert.match(r.error, re, text);
      assert.match(r.error, /^hub\.yaml/, "the file is named");
    }
  });
});

describe("the agent port's limits (config file and flags)", () => {
  it("reads the limits from the file; flags win over the file, the file over the defaults", () => {
    const r = parseHubConfig(
      `limits:
  maxStreamsPerConnection: 50
  idleTimeout: 90s
  maxWriteBuffer: 8MiB
  maxConnectionsPerSource: "300"
clusters: []
`,
      "hub.yaml",
    );
    assert.ok(r.ok, r.ok ? "" : r.error);
    const l = resolveLimits(r.value.limits, { "idle-timeout": "2m", "max-connections": "500" });
    assert.ok(l.ok, l.ok ? "" : l.error);
    assert.deepEqual(l.value, {
      ...DEFAULT_LIMITS,
      maxStreamsPerConnection: 50,
      idleTimeoutMs: 120_000,
      maxWriteBufferBytes: 8 << 20,
      maxConnectionsPerSource: 300,
      maxConnections: 500,
    });
    const plain = resolveLimits({}, {});
    assert.ok(plain.ok);
    assert.deepEqual(plain.value, DEFAULT_LIMITS);
  });

  it("names the key or flag, the allowed range and what was given", () => {
    const fileCases: Array<[string, RegExp]> = [
      ["limits: 5", /hub\.yaml: limits must be a mapping of maxStreamsPerConnection/],
      ["limits: { maxStreams: 5 }", /limits: unknown field "maxStreams" \(known: maxStreamsPerConnection/],
      [
        "limits: { maxStreamsPerConnection: 0 }",
        /limits\.maxStreamsPerConnection must be a whole number from 1 to 10000/,
      ],
      ["limits: { idleTimeout: 60 }", /limits\.idleTimeout must be a duration like 500ms.* not 60/],
      [
        "limits: { maxWriteBuffer: 1KiB }",
        /limits\.maxWriteBuffer must be a size .* from 64KiB .* not "1KiB"/,
      ],
    ];
    for (const [text, re] of fileCases) {
      const r = parseHubConfig(`${text}\nclusters: []`, "hub.yaml");
      assert.ok(!r.ok, text);
      assert.match(r.error, re, text);
    }
    const flagCases: Array<[Record<string, string>, RegExp]> = [
      [
        { "max-resets-per-second": "lots" },
        /--max-resets-per-second must be a whole number from 1 .* not "lots"/,
      ],
      [{ "handshake-timeout": "10" }, /--handshake-timeout must be a duration/],
      [{ "max-connections-per-source": "-1" }, /--max-connections-per-source must be a whole number/],
    ];
    for (const [flags, re] of flagCases) {
      const r = resolveLimits({}, flags);
      assert.ok(!r.ok, JSON.stringify(flags));
      assert.match(r.error, re);
    }
  });

  it("refuses the removed own HTTP/2 front by name; front: http2 (the only stack now) still starts", () => {
    const own = parseHubConfig("front: own\nclusters: []", "hub.yaml");
    assert.ok(!own.ok);
    assert.equal(
      own.error,
      'hub.yaml: front is "own": the own HTTP/2 front was removed; the hub serves node:http2 only — remove `front`',
    );
    assert.ok(parseHubConfig("front: http2\nclusters: []", "hub.yaml").ok);
    assert.match(checkRemovedFront("own", "--front", "--front") ?? "", /was removed; .* remove `--front`/);
    assert.equal(checkRemovedFront("http2", "--front", "--front"), undefined);
  });
});
