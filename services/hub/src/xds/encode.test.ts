import assert from "node:assert/strict";
import { describe, it } from "node:test";
import zlib from "node:zlib";
import { type Resource, ResourceBatch, StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import { encodeResponse, PACK_MIN_BYTES } from "./encode.ts";

const res = (name: string, n: number): Resource => ({
  name,
  version: String(n),
  body: {
    $case: "backendSlice",
    value: {
      service: "svc/c/ns/a",
      ports: [{ name: "p", port: 80, protocol: 1 }],
      endpoints: Array.from({ length: n }, (_, i) => ({
        addresses: [`10.0.${i >> 8}.${i & 255}`],
        nodeName: "n",
        ready: true,
        serving: true,
        terminating: false,
        zone: "",
        forZones: [],
      })),
    },
  },
});

/** a gRPC length-prefixed message (flag 0, its exact length), decoded */
function decodeWire(wire: Buffer): StreamAssignmentsResponse {
  assert.equal(wire[0], 0, "not compressed");
  assert.equal(wire.readUInt32BE(1), wire.length - 5, "the prefix holds the message's length");
  return StreamAssignmentsResponse.decode(wire.subarray(5));
}

describe("encodeResponse", () => {
  it("decodes to the same message as the generated encoder, for small and large resources", () => {
    const m: StreamAssignmentsResponse = {
      nonce: "h-1",
      systemVersion: "abc",
      welcome: undefined,
      credential: undefined,
      resources: [res("eps/c/ns/a", 1), res("eps/c/ns/b", 3000)],
      removedResources: ["eps/c/ns/gone"],
      resourcesZstd: Buffer.alloc(0),
      resourcesZstdSize: 0,
      viewComplete: true,
    };
    const ours = decodeWire(encodeResponse(m, (x) => StreamAssignmentsResponse.encode(x).finish()));
    assert.deepEqual(ours, StreamAssignmentsResponse.decode(StreamAssignmentsResponse.encode(m).finish()));
  });

  it("packs a large batch for an agent that accepts zstd: the same resources, a fraction of the bytes, packed once", () => {
    const m = StreamAssignmentsResponse.fromPartial({
      nonce: "h-2",
      systemVersion: "v",
      resources: Array.from({ length: 200 }, (_, i) => res(`eps/c/ns/s${i}`, 10)),
      removedResources: ["eps/c/ns/gone"],
    });
    const head = (x: StreamAssignmentsResponse) => StreamAssignmentsResponse.encode(x).finish();
    const plain = encodeResponse(m, head);
    const wire = encodeResponse(m, head, true);
    assert.ok(plain.length > PACK_MIN_BYTES);
    assert.ok(wire.length * 4 < plain.length, `packed ${wire.length} B vs plain ${plain.length} B`);
    const got = decodeWire(wire);
    assert.deepEqual(got.resources, [], "nothing plain");
    assert.deepEqual(got.removedResources, ["eps/c/ns/gone"]);
    const raw = zlib.zstdDecompressSync(got.resourcesZstd);
    assert.equal(raw.length, got.resourcesZstdSize);
    assert.deepEqual(ResourceBatch.decode(raw).resources, decodeWire(plain).resources);
    // a second agent receiving the same batch gets the same frame, not a second compression
    assert.ok(
      encodeResponse({ ...m, nonce: "h-3" }, head, true)
        .subarray(-got.resourcesZstd.length)
        .equals(got.resourcesZstd),
    );
  });

  it("sends a small batch plain even to an agent that accepts zstd", () => {
    const m = StreamAssignmentsResponse.fromPartial({ nonce: "h-4", resources: [res("eps/c/ns/one", 2)] });
    const got = decodeWire(encodeResponse(m, (x) => StreamAssignmentsResponse.encode(x).finish(), true));
    assert.equal(got.resources.length, 1);
    assert.equal(got.resourcesZstd.length, 0);
  });

  it("hands every agent the same buffer for the same message (a cold-start chunk with its shared nonce), and another for another head", () => {
    const resources = Array.from({ length: 200 }, (_, i) => res(`eps/c/ns/s${i}`, 10));
    const head = (x: StreamAssignmentsResponse) => StreamAssignmentsResponse.encode(x).finish();
    // the same resource objects every time, as the hub's snapshot hands them out (fromPartial would copy them)
    const base = StreamAssignmentsResponse.fromPartial({ systemVersion: "v1", resources });
    const msg = (nonce: string, extra: Partial<StreamAssignmentsResponse> = {}) => ({
      ...base,
      nonce,
      ...extra,
    });
    const a = encodeResponse(msg("cold1.0.2000"), head, true);
    assert.equal(encodeResponse(msg("cold1.0.2000"), head, true), a, "the very same buffer");
    for (const [what, other] of [
      ["another nonce", encodeResponse(msg("h-7"), head, true)],
      ["plain", encodeResponse(msg("cold1.0.2000"), head, false)],
      ["another version", encodeResponse(msg("cold1.0.2000", { systemVersion: "v2" }), head, true)],
      ["removals", encodeResponse(msg("cold1.0.2000", { removedResources: ["x"] }), head, true)],
      ["view complete", encodeResponse(msg("cold1.0.2000", { viewComplete: true }), head, true)],
    ] as const) {
      assert.notEqual(other, a, what);
      const got = decodeWire(other);
      assert.equal(got.nonce, what === "another nonce" ? "h-7" : "cold1.0.2000", what);
      assert.equal(got.viewComplete, what === "view complete", what);
    }
    // and back: the incomplete message is not taken for the complete one either
    assert.equal(decodeWire(encodeResponse(msg("cold1.0.2000"), head, true)).viewComplete, false);
    const again = decodeWire(encodeResponse(msg("cold1.0.2000"), head, true));
    assert.equal(again.nonce, "cold1.0.2000");
    assert.equal(again.systemVersion, "v1");
  });
});
