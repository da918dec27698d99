/**
 * HubClient against a scripted in-process hub (real gRPC on loopback): the
 * resume shortcut, the "resend versions" fallback, and credentials.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import zlib from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { silentLogger } from "@switchyard/lib/log";
import {
  AssignmentServiceService,
  type Hello,
  ResourceBatch,
  ResourceEncoding,
  type StreamAssignmentsRequest,
  type StreamAssignmentsResponse,
} from "@switchyard/proto/assignment";
import { CredentialStore } from "./credential-store.ts";
import { HubClient } from "./hub-client.ts";

type Script = (
  hello: Hello,
  auth: string,
  call: grpc.ServerDuplexStream<StreamAssignmentsRequest, StreamAssignmentsResponse>,
) => void;

async function fakeHub(
  script: Script,
): Promise<{ address: string; hellos: Array<{ hello: Hello; auth: string }>; stop: () => void }> {
  const hellos: Array<{ hello: Hello; auth: string }> = [];
  const server = new grpc.Server();
  server.addService(AssignmentServiceService, {
    streamAssignments: (
      call: grpc.ServerDuplexStream<StreamAssignmentsRequest, StreamAssignmentsResponse>,
    ) => {
      call.on("data", (m: StreamAssignmentsRequest) => {
        if (m.kind?.$case !== "hello") return;
        const auth = String(call.metadata.get("authorization")[0] ?? "");
        hellos.push({ hello: m.kind.value, auth });
        script(m.kind.value, auth, call);
      });
      call.on("error", () => {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { address: `127.0.0.1:${port}`, hellos, stop: () => server.forceShutdown() };
}

const welcome = (
  call: grpc.ServerDuplexStream<StreamAssignmentsRequest, StreamAssignmentsResponse>,
  credential?: string,
) =>
  call.write({
    nonce: "",
    systemVersion: "",
    welcome: {
      hubId: "fake",
      cluster: "c",
      viewClusters: ["c"],
      nodeZone: "",
      inSync: false,
      entryInterface: "",
    },
    credential: credential
      ? {
          token: credential,
          expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
          natsCreds: "-----BEGIN NATS USER JWT-----\nfake\n------END NATS USER JWT------\n",
        }
      : undefined,
    resources: [],
    removedResources: [],
    resourcesZstd: Buffer.alloc(0),
    resourcesZstdSize: 0,
    viewComplete: true,
  });

function client(address: string, opts: { token?: string; stateDir?: string; held?: string }) {
  let welcomed = 0;
  const c = new HubClient({
    hubs: [address],
    token: opts.token ?? "abcdef.0123456789abcdef",
    ...(opts.stateDir ? { credentials: new CredentialStore(opts.stateDir, "n1") } : {}),
    nodeName: "n1",
    nodeAddresses: [],
    agentVersion: "test",
    caFile: undefined,
    log: silentLogger(),
    heldVersions: () => ({ "svc/c/n/a": "1", "svc/c/n/b": "2" }),
    heldViewVersion: () => opts.held ?? "",
    onWelcome: () => {
      welcomed++;
    },
    onDelta: () => [],
    maxBackoffMs: 50,
  });
  return { c, welcomed: () => welcomed };
}

async function until(what: string, fn: () => boolean): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (fn()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out: ${what}`);
}

describe("HubClient resume", () => {
  it("sends one view version instead of every version held, and lists them when the hub asks", async () => {
    const hub = await fakeHub((hello, _auth, call) => {
      if (Object.keys(hello.initialResourceVersions).length === 0)
        call.emit("error", {
          code: grpc.status.FAILED_PRECONDITION,
          details: "resend versions: the view moved",
        });
      else welcome(call);
    });
    const { c, welcomed } = client(hub.address, { held: "00000000deadbeef" });
    c.start();
    await until("joined", () => welcomed() === 1);
    c.stop();
    hub.stop();
    assert.equal(hub.hellos.length, 2);
    assert.equal(hub.hellos[0]!.hello.heldViewVersion, "00000000deadbeef");
    assert.deepEqual(hub.hellos[0]!.hello.initialResourceVersions, {}, "first: the shortcut only");
    assert.deepEqual(
      hub.hellos[1]!.hello.initialResourceVersions,
      { "svc/c/n/a": "1", "svc/c/n/b": "2" },
      "then every version, at once",
    );
  });

  it("keeps the credential the hub issues and presents it next time instead of the join token", async () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-hubclient-"));
    const hub = await fakeHub((_hello, auth, call) => {
      welcome(call, auth.includes("sya1.") ? undefined : "sya1.payload.sig");
      if (!auth.includes("sya1.")) call.end();
    });
    const { c, welcomed } = client(hub.address, { stateDir });
    c.start();
    await until("two joins", () => welcomed() >= 2);
    c.stop();
    hub.stop();
    assert.equal(hub.hellos[0]!.auth, "Bearer abcdef.0123456789abcdef");
    assert.equal(hub.hellos[1]!.auth, "Bearer sya1.payload.sig");
    assert.equal(new CredentialStore(stateDir, "n1").load()?.token, "sya1.payload.sig");
    assert.equal(new CredentialStore(stateDir, "other-node").load(), undefined, "only for its own node");
    // the NATS user that came with it, where the events connection reads it
    const creds = path.join(stateDir, "nats.creds");
    assert.match(fs.readFileSync(creds, "utf8"), /BEGIN NATS USER JWT-----\nfake/);
    assert.equal(fs.statSync(creds).mode & 0o777, 0o600);
    fs.rmSync(stateDir, { recursive: true, force: true });
  });
});

describe("HubClient packed batches (resources_zstd)", () => {
  const resource = (i: number) => ({ name: `svc/c/n/s${i}`, version: String(i), body: undefined });
  const packed = (n: number) => {
    const raw = Buffer.from(
      ResourceBatch.encode({ resources: Array.from({ length: n }, (_, i) => resource(i)) }).finish(),
    );
    return { zstd: zlib.zstdCompressSync(raw), size: raw.length };
  };
  const delta = (nonce: string, zstd: Buffer, size: number): StreamAssignmentsResponse => ({
    nonce,
    systemVersion: "v",
    welcome: undefined,
    credential: undefined,
    resources: [resource(999)],
    removedResources: [],
    resourcesZstd: zstd,
    resourcesZstdSize: size,
    viewComplete: true,
  });

  it("asks for them, applies them with the plain resources, NACKs a bad frame whole without applying it, and resumes the stream so nothing after it completes a view it lacks", async () => {
    const good = packed(300);
    const acks: Array<{ nonce: string; error: string | undefined }> = [];
    const hub = await fakeHub((_hello, _auth, call) => {
      welcome(call);
      if (acks.length > 0) return; // the second stream: nothing more to send
      call.on("data", (m: StreamAssignmentsRequest) => {
        if (m.kind?.$case === "ack")
          acks.push({
            nonce: m.kind.value.responseNonce,
            error: m.kind.value.error?.resourceErrors[0]?.message,
          });
      });
      call.write(delta("d1", good.zstd, good.size));
      call.write(delta("d2", good.zstd, good.size + 1)); // the announced size is wrong
      call.write(delta("d3", Buffer.from("not zstd at all"), 100));
    });
    const applied: string[][] = [];
    const c = new HubClient({
      hubs: [hub.address],
      token: "abcdef.0123456789abcdef",
      nodeName: "n1",
      nodeAddresses: [],
      agentVersion: "test",
      caFile: undefined,
      log: silentLogger(),
      heldVersions: () => ({}),
      heldViewVersion: () => "00000000000000ab",
      onWelcome: () => {},
      onDelta: (m) => {
        applied.push(m.resources.map((r) => r.name));
        return [];
      },
      maxBackoffMs: 50,
    });
    c.start();
    await until("a second stream", () => hub.hellos.length === 2);
    c.stop();
    hub.stop();
    assert.deepEqual(hub.hellos[0]!.hello.acceptEncodings, [ResourceEncoding.RESOURCE_ENCODING_ZSTD]);
    assert.equal(hub.hellos[0]!.hello.heldViewVersion, "00000000000000ab", "the first Hello: the shortcut");
    assert.equal(hub.hellos[1]!.hello.heldViewVersion, "", "the second Hello lists versions, no shortcut");
    assert.equal(
      applied.length,
      1,
      "only the good batch reached the agent; d3, after the bad one, was not applied",
    );
    assert.equal(acks.length, 2, `d3 came on a stream given up: not answered ${JSON.stringify(acks)}`);
    assert.equal(applied[0]!.length, 301, "the plain resource and the 300 packed ones");
    assert.ok(applied[0]!.includes("svc/c/n/s999") && applied[0]!.includes("svc/c/n/s299"));
    assert.deepEqual(acks[0], { nonce: "d1", error: undefined });
    assert.equal(acks[1]!.nonce, "d2");
    assert.match(acks[1]!.error ?? "", /not a zstd frame that unpacks to \d+ bytes|not the announced/);
  });
});
