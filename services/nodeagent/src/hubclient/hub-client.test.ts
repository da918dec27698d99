/**
 * HubClient against a scripted in-process hub (real gRPC on loopback): the
 * resume shortcut, the "resend versions" fallback, and credentials.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { silentLogger } from "@switchyard/lib/log";
import {
  AssignmentServiceService,
  type Hello,
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
    welcome: { hubId: "fake", cluster: "c", viewClusters: ["c"], nodeZone: "" },
    credential: credential
      ? { token: credential, expiresAt: new Date(Date.now() + 3_600_000).toISOString() }
      : undefined,
    resources: [],
    removedResources: [],
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
    fs.rmSync(stateDir, { recursive: true, force: true });
  });
});
