/**
 * The assignment protocol between real hubs and a real agent: TLS, failover
 * between two hubs without a data-plane change, token scopes and revocation,
 * health checking, and malformed input that must not hurt anyone else.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { computeCaHash } from "@switchyard/lib/ca-pin";
import { StreamAssignmentsRequest, StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import { protoPath as healthProto } from "grpc-health-check";
import { makeCa, makeServerCert } from "../kit/certs.ts";
import { REPO, waitUntil } from "../kit/proc.ts";
import { AGENT, HUB, Stack } from "../kit/stack.ts";

const VIP = "10.96.20.10";

function clusterYaml(ip: string): string {
  return `apiVersion: v1
kind: Service
metadata: { name: api, namespace: p }
spec: { clusterIP: ${VIP}, ports: [{ name: http, port: 80 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: api-1, namespace: p, labels: { kubernetes.io/service-name: api } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints: [{ addresses: [${ip}] }]
`;
}

describe("assignment protocol", () => {
  let stack: Stack;
  let dir: string;
  let pki: ReturnType<typeof makeCa>;
  let tlsArgs: string[];
  before(async () => {
    stack = Stack.create("proto");
    dir = path.join(stack.stateDir, "cluster");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "api.yaml"), clusterYaml("198.18.20.11"));
    await stack.startBackend("one", "198.18.20.11", 8080);
    await stack.startBackend("two", "198.18.20.12", 8080);
    pki = makeCa(path.join(stack.stateDir, "pki"));
    const cert = makeServerCert(pki, "hub", { ips: ["127.0.0.1"] });
    tlsArgs = ["--tls-cert", cert.cert, "--tls-key", cert.key];
  });
  after(async () => {
    await stack?.cleanup();
  });

  const reaches = (name: string) =>
    waitUntil(`connects to reach ${name}`, async () => {
      const p = await stack.probe(VIP, 80);
      return p.ok && p.reply.startsWith(`${name} `) ? p : undefined;
    });

  it("serves TLS: an agent that trusts the hub's CA joins; one with another CA is refused with the reason", async () => {
    await stack.startHub([`prod=dir:${dir}`], tlsArgs);
    const token = stack.createToken("prod");
    const other = makeCa(path.join(stack.stateDir, "other-pki"), "someone-else");
    const wrong = stack.startExtraAgent("wrong-ca", token, ["--hub-ca", other.caCert]);
    await wrong.waitFor(/"msg":"cannot join the hub"/);
    assert.match(
      wrong.output(),
      /the hub's certificate \([^)]*\) is not signed by --hub-ca [^ ]*other-pki\/ca\.crt/,
    );
    assert.doesNotMatch(wrong.output(), /joined hub/);
    await wrong.stop();
    await stack.startAgent(token, ["--hub-ca", pki.caCert]);
    await reaches("one");
  });

  it("marks the delta that completes a cold agent's view (view_complete), and tells an agent that resumes at the view's version it is in sync (Welcome.in_sync)", async () => {
    const token = stack.createToken("prod");
    const Raw = grpc.makeGenericClientConstructor({}, "Raw");
    const client = new Raw(stack.hubAddress, grpc.credentials.createSsl(fs.readFileSync(pki.caCert)));
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${token}`);
    /** a stream that ACKs every delta and hands its messages to `until` until it says stop */
    const stream = (heldViewVersion: string, until: (m: StreamAssignmentsResponse) => boolean) => {
      const call = client.makeBidiStreamRequest(
        "/switchyard.v1.AssignmentService/StreamAssignments",
        (m: StreamAssignmentsRequest) => Buffer.from(StreamAssignmentsRequest.encode(m).finish()),
        (b: Buffer) => StreamAssignmentsResponse.decode(b),
        md,
      );
      const got: StreamAssignmentsResponse[] = [];
      const done = new Promise<StreamAssignmentsResponse[]>((resolve, reject) => {
        call.on("error", reject);
        call.on("data", (m: StreamAssignmentsResponse) => {
          got.push(m);
          if (m.nonce)
            call.write(
              StreamAssignmentsRequest.fromPartial({
                kind: { $case: "ack", value: { responseNonce: m.nonce } },
              }),
            );
          if (until(m)) {
            call.cancel();
            resolve(got);
          }
        });
      });
      call.write(
        StreamAssignmentsRequest.fromPartial({
          kind: { $case: "hello", value: { nodeName: "raw-1", agentVersion: "test", heldViewVersion } },
        }),
      );
      return done;
    };
    const cold = await stream("", (m) => m.viewComplete);
    assert.equal(cold[0]?.welcome?.inSync, false);
    const deltas = cold.filter((m) => m.nonce);
    assert.deepEqual(
      deltas.map((m) => m.viewComplete),
      deltas.map((_, i) => i === deltas.length - 1),
    );
    const version = deltas.at(-1)!.systemVersion;
    const resumed = await stream(version, (m) => m.welcome !== undefined);
    assert.equal(resumed[0]?.welcome?.inSync, true);
    client.close();
  });

  it("answers gRPC health checks", async () => {
    const def = grpc.loadPackageDefinition(loadSync(healthProto, { enums: String })) as unknown as {
      grpc: {
        health: {
          v1: {
            Health: new (
              addr: string,
              creds: grpc.ChannelCredentials,
            ) => grpc.Client & {
              check: (req: { service: string }, cb: (e: Error | null, r: { status: string }) => void) => void;
            };
          };
        };
      };
    };
    const client = new def.grpc.health.v1.Health(
      stack.hubAddress,
      grpc.credentials.createSsl(fs.readFileSync(pki.caCert)),
    );
    const res = await new Promise<{ status: string }>((resolve, reject) =>
      client.check(
        { service: "switchyard.v1.AssignmentService" },
        (e: Error | null, r: { status: string }) => (e ? reject(e) : resolve(r)),
      ),
    );
    client.close();
    assert.equal(res.status, "SERVING");
  });

  it("lists its services through server reflection, as grpcurl does", async () => {
    const reflectionProto = path.join(
      REPO,
      "node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto",
    );
    const def = grpc.loadPackageDefinition(loadSync(reflectionProto)) as unknown as {
      grpc: {
        reflection: {
          v1: { ServerReflection: new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client };
        };
      };
    };
    const client = new def.grpc.reflection.v1.ServerReflection(
      stack.hubAddress,
      grpc.credentials.createSsl(fs.readFileSync(pki.caCert)),
    ) as grpc.Client & { serverReflectionInfo: () => grpc.ClientDuplexStream<unknown, unknown> };
    const call = client.serverReflectionInfo();
    const answer = new Promise<{ listServicesResponse?: { service: Array<{ name: string }> } }>(
      (resolve, reject) => {
        call.on("data", resolve);
        call.on("error", reject);
      },
    );
    call.write({ listServices: "" });
    const res = await answer;
    call.end();
    client.close();
    const names = (res.listServicesResponse?.service ?? []).map((x) => x.name);
    assert.ok(names.includes("switchyard.v1.AssignmentService"), names.join(", "));
    assert.ok(names.includes("grpc.health.v1.Health"), names.join(", "));
  });

  it("fails over to a second hub without a single failed connect or map write, and follows it afterwards", async () => {
    const first = stack.hubs[0]!;
    const firstAddress = stack.hubAddress;
    await stack.startHub([`prod=dir:${dir}`], tlsArgs);
    const secondAddress = stack.hubAddress;
    await stack.agent!.stop();
    const agent = await stack.startAgent(
      stack.createToken("prod"),
      ["--hub-ca", pki.caCert],
      [firstAddress, secondAddress],
    );
    await agent.waitFor(/"msg":"joined hub"/);
    await reaches("one");
    const loop = await stack.connectLoop(VIP, 80);
    const writesBefore = (agent.output().match(/"msg":"maps updated"/g) ?? []).length;
    await first.stop("SIGKILL");
    await waitUntil("the agent to join the second hub", () =>
      (agent.output().match(/"msg":"joined hub"/g) ?? []).length >= 2 ? true : undefined,
    );
    const counts = await loop.finish();
    assert.equal(counts.failed, 0, JSON.stringify(counts.errors));
    assert.equal(
      (agent.output().match(/"msg":"maps updated"/g) ?? []).length,
      writesBefore,
      "resume after failover must not touch the maps",
    );
    assert.match(
      stack.hub!.output(),
      /"resumed":"in sync at [0-9a-f]{16}"/,
      "the agent proved it holds the view with one version, not a list",
    );
    fs.writeFileSync(path.join(dir, "api.yaml"), clusterYaml("198.18.20.12"));
    await reaches("two");
  });

  it("admits nodes only within a token's scope", async () => {
    const edgeOnly = stack.createToken("prod", ["--node-pattern", "edge-*"]);
    const refused = stack.startExtraAgent("node-7", edgeOnly, ["--hub-ca", pki.caCert]);
    await refused.waitFor(/hub refused this agent/);
    // the log line and the stderr line arrive on two pipes: wait for the reason itself
    await refused.waitFor(/admits nodes named \\"edge-\*\\", not \\"node-7\\"/);
    await refused.stop();
  });

  const hubCli = (...args: string[]) =>
    execFileSync(process.execPath, [path.join(REPO, HUB), ...args, "--state-dir", stack.stateDir], {
      encoding: "utf8",
    });

  it("shows each agent's sync status through the admin API", async () => {
    const agent = await waitUntil("node-1 to be listed in sync", () => {
      const agents = JSON.parse(hubCli("agents", "--json")) as Array<{
        node: string;
        pendingResources: number;
        ackedVersion: string;
        viewVersion: string;
        lagMs: string;
      }>;
      const a = agents.find((x) => x.node === "node-1");
      return a && a.pendingResources === 0 && a.ackedVersion === a.viewVersion ? a : undefined;
    });
    assert.equal(Number(agent.lagMs), 0);
    assert.match(hubCli("agents"), /NODE\s+CLUSTER\s+AUTH[\s\S]*node-1\s+prod\s+credential/);
    assert.match(hubCli("clusters"), /prod\s+dir\s+-\s+ok\s+1\s+1\s+0/);
  });

  it("reconnects an agent with its own credential, which no other node can use", async () => {
    const cred = JSON.parse(
      fs.readFileSync(path.join(stack.stateDir, "agent", "credential.json"), "utf8"),
    ) as {
      token: string;
      node: string;
    };
    assert.equal(cred.node, "node-1");
    assert.match(cred.token, /^sya1\./);
    // the same credential presented for another node's stream
    const Raw = grpc.makeGenericClientConstructor({}, "Raw");
    const client = new Raw(stack.hubAddress, grpc.credentials.createSsl(fs.readFileSync(pki.caCert)));
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${cred.token}`);
    const call = client.makeBidiStreamRequest(
      "/switchyard.v1.AssignmentService/StreamAssignments",
      (m: StreamAssignmentsRequest) => Buffer.from(StreamAssignmentsRequest.encode(m).finish()),
      (b: Buffer) => b,
      md,
    );
    const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    call.on("error", () => {});
    call.on("data", () => {});
    call.write({
      kind: {
        $case: "hello",
        value: {
          nodeName: "node-2",
          agentVersion: "x",
          initialResourceVersions: {},
          nodeAddresses: [],
          heldViewVersion: "",
          acceptEncodings: [],
        },
      },
    });
    const st = await status;
    client.close();
    assert.equal(st.code, grpc.status.PERMISSION_DENIED);
    assert.match(st.details, /credential belongs to node prod\/node-1; node "node-2" may not use it/);
    // restarted without any join token, the agent joins with its credential and resumes
    await stack.agent!.stop();
    const agent = await stack.startAgent("", ["--hub-ca", pki.caCert], [stack.hubAddress]);
    await agent.waitFor(/"msg":"joined hub"/);
    await waitUntil("the hub to log a credential join", () =>
      /"node":"node-1"[^\n]*"auth":"credential"[^\n]*"agent joined"/.test(stack.hub!.output())
        ? true
        : undefined,
    );
    await reaches("two");
  });

  it("rotates an agent's credential before it expires", async () => {
    await stack.startHub([`prod=dir:${dir}`], [...tlsArgs, "--credential-ttl", "3s"]);
    const agent = stack.startExtraAgent("rotating", stack.createToken("prod"), ["--hub-ca", pki.caCert]);
    await agent.waitFor(/"msg":"agent credential received"[\s\S]*"msg":"agent credential received"/);
    assert.doesNotMatch(agent.output(), /hub refused this agent/);
  });

  it("revokes one agent within seconds; its old join token cannot readmit it", async () => {
    const token = stack.createToken("prod");
    const agent = stack.startExtraAgent("node-9", token, ["--hub-ca", pki.caCert]);
    await agent.waitFor(/"msg":"joined hub"/);
    assert.match(hubCli("agent", "revoke", "prod/node-9"), /revoked prod\/node-9; 1 stream\(s\) cut off/);
    await agent.waitFor(/agent prod\/node-9 was revoked/);
    await agent.waitFor(/only a join token created after that readmits it/);
    assert.equal((agent.output().match(/"msg":"joined hub"/g) ?? []).length, 1, "never rejoined");
  });

  it("cuts off an agent within seconds when its token is revoked", async () => {
    const state = JSON.parse(fs.readFileSync(path.join(stack.stateDir, "state.json"), "utf8")) as {
      entries: Record<string, unknown>;
    };
    const mine = Object.keys(state.entries)
      .filter((k) => k.startsWith("tokennode/") && k.endsWith("/node-1"))
      .map((k) => ({ id: k.split("/")[1]! }));
    assert.ok(mine.length > 0);
    for (const t of mine)
      execFileSync(process.execPath, [
        path.join(REPO, HUB),
        "token",
        "revoke",
        t.id,
        "--state-dir",
        stack.stateDir,
      ]);
    await stack.agent!.waitFor(/join token \w+ (that admitted agent \S+ )?was revoked/);
    // cut off from updates, but its last state keeps resolving
    const p = await stack.probe(VIP, 80);
    assert.equal(p.ok, true);
  });

  it("survives malformed and oversized messages without affecting other agents", async () => {
    const hub = stack.hubs[stack.hubs.length - 1]!;
    const Raw = grpc.makeGenericClientConstructor({}, "Raw");
    const client = new Raw(stack.hubAddress, grpc.credentials.createSsl(fs.readFileSync(pki.caCert)));
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${stack.createToken("prod")}`);
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const call = client.makeBidiStreamRequest(
        "/switchyard.v1.AssignmentService/StreamAssignments",
        (b: Buffer) => b,
        (b: Buffer) => b,
        md,
      );
      const done = new Promise<void>((resolve) => {
        call.on("error", (e: grpc.ServiceError) => {
          statuses.push(e.code);
          resolve();
        });
        call.on("end", resolve);
        call.on("data", () => {});
      });
      const junk = i === 0 ? Buffer.alloc(20 * 1024 * 1024, 1) : randomBytes(1 + ((i * 7919) % 4096));
      call.write(junk);
      call.end();
      await done;
    }
    client.close();
    assert.equal(hub.cp.exitCode, null, "the hub is still running");
    assert.ok(statuses.length > 0, "bad streams are answered with an error status");
    const p = await stack.probe(VIP, 80);
    assert.equal(p.ok, true);
  });

  it("shows an agent's NACK, with its reason, in the hub's agent status", async () => {
    // a second Service: an agent whose frontend map holds one entry cannot take both
    fs.writeFileSync(
      path.join(dir, "extra.yaml"),
      `apiVersion: v1
kind: Service
metadata: { name: extra, namespace: p }
spec: { clusterIP: 10.96.20.99, ports: [{ name: http, port: 80 }] }
`,
    );
    const tiny = stack.startExtraAgent("tiny", stack.createToken("prod"), [
      "--hub-ca",
      pki.caCert,
      "--max-frontends",
      "1",
    ]);
    await tiny.waitFor(/"msg":"map writes failed; the other entries were written"/);
    const row = await waitUntil("the hub to show tiny's NACK", () => {
      const agents = JSON.parse(hubCli("agents", "--json")) as Array<{
        node: string;
        nacks: number;
        lastNack: string;
      }>;
      const a = agents.find((x) => x.node === "tiny");
      return a && a.nacks > 0 ? a : undefined;
    });
    assert.match(row.lastNack, /resource\(s\) not applied: .*map full/);
    assert.match(hubCli("agents"), /tiny\s+prod[^\n]*resource\(s\) not applied/);
    fs.rmSync(path.join(dir, "extra.yaml"));
    await tiny.stop();
  });

  it("sends a large view packed (zstd) to an agent, whose maps then hold every Service of it", async () => {
    // 300 Services, ~40 KiB of resources: above the hub's packing threshold
    const many = Array.from(
      { length: 300 },
      (_, i) => `apiVersion: v1
kind: Service
metadata: { name: bulk-${i}, namespace: bulk }
spec: { clusterIP: 10.97.${Math.floor(i / 200)}.${(i % 200) + 1}, ports: [{ name: http, port: 80 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: bulk-${i}-1, namespace: bulk, labels: { kubernetes.io/service-name: bulk-${i} } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints: [{ addresses: [198.18.20.12] }]
`,
    ).join("---\n");
    fs.writeFileSync(path.join(dir, "bulk.yaml"), many);
    const bulk = stack.startExtraAgent("bulk", stack.createToken("prod"), [
      "--hub-ca",
      pki.caCert,
      "--log-level",
      "debug",
    ]);
    try {
      const [line] = await bulk.waitFor(/\{[^\n]*"msg":"packed batch unpacked"/);
      const m = /"packedBytes":(\d+),"bytes":(\d+)/.exec(line)!;
      assert.ok(Number(m[1]) * 3 < Number(m[2]), `packed ${m[1]} B for ${m[2]} B of resources`);
      // every Service of the view lands in the agent's maps (the last one too)
      await waitUntil("the last bulk Service in the agent's maps", () => {
        const dump = execFileSync(
          process.execPath,
          [path.join(REPO, AGENT), "dump", "--pin-dir", `${stack.pinDir}-bulk`],
          { encoding: "utf8" },
        );
        return /10\.97\.1\.100:80/.test(dump) && /10\.97\.0\.1:80/.test(dump) ? true : undefined;
      });
      assert.doesNotMatch(bulk.output(), /resource rejected|not applied/);
    } finally {
      fs.rmSync(path.join(dir, "bulk.yaml"));
      await bulk.stop();
    }
  });

  it("lets an agent pin the hub's CA by hash on first join, and refuses a wrong hash", async () => {
    await stack.startHub([`prod=dir:${dir}`], [...tlsArgs, "--tls-ca", pki.caCert]);
    const hash = computeCaHash(fs.readFileSync(pki.caCert));
    await stack.hub!.waitFor(new RegExp(`--hub-ca-hash ${hash}`));
    const stateDir = path.join(stack.stateDir, "pinned-agent");
    const token = stack.createToken("prod");
    const wrong = stack.startExtraAgent("wrong-hash", token, [
      "--hub-ca-hash",
      `sha256:${"0".repeat(64)}`,
      "--state-dir",
      stateDir,
    ]);
    await wrong.waitFor(/no certificate in hub .* chain matches/);
    assert.equal(
      fs.existsSync(path.join(stateDir, "hub-ca.crt")),
      false,
      "nothing pinned from a hub that did not match",
    );
    const agent = stack.startExtraAgent("pinned", token, ["--hub-ca-hash", hash, "--state-dir", stateDir]);
    await agent.waitFor(/"msg":"joined hub"/);
    assert.equal(
      computeCaHash(fs.readFileSync(path.join(stateDir, "hub-ca.crt"))),
      hash,
      "the pinned CA is kept for later joins",
    );
  });

  it("rotates the hub signing key: agents hold credentials of the new key within seconds; --retire-now cuts the old key's streams", async () => {
    // the default credential lifetime (24h): no credential would be renewed on its own during this test
    await stack.startHub([`prod=dir:${dir}`], tlsArgs);
    const agent = stack.startExtraAgent("keyed", stack.createToken("prod"), ["--hub-ca", pki.caCert]);
    await agent.waitFor(/"msg":"agent credential received"/);
    const authOf = () =>
      (JSON.parse(hubCli("agents", "--json")) as Array<{ node: string; auth: string }>).find(
        (a) => a.node === "keyed",
      )?.auth;
    const rotated = hubCli("signing-key", "rotate");
    const m =
      /signing key ([0-9a-f]{8}) is current; credentials of ([0-9a-f]{8}) are accepted until \S+; 0 stream\(s\) cut off/.exec(
        rotated,
      );
    assert.ok(m, rotated);
    await waitUntil("the agent to hold a credential of the new key", () =>
      authOf()?.includes(`key ${m[1]},`) ? true : undefined,
    );
    assert.doesNotMatch(agent.output(), /hub refused this agent/, "rotation did not interrupt the agent");
    // a leaked key: retired at once; the agent (which still has a join token) is cut off and rejoins
    const retired = hubCli("signing-key", "rotate", "--retire-now");
    const r =
      /signing key ([0-9a-f]{8}) is current; credentials of ([0-9a-f]{8}) are accepted until \S+; ([1-9]\d*) stream\(s\) cut off/.exec(
        retired,
      );
    assert.ok(r, retired);
    assert.equal(r[2], m[1]);
    await agent.waitFor(new RegExp(`signed with hub key ${m[1]}, retired at`));
    await waitUntil("the agent to rejoin with a credential of the newest key", () =>
      authOf()?.includes(`key ${r[1]},`) ? true : undefined,
    );
  });
});
