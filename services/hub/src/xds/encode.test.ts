import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Resource, StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import { encodeResponse } from "./encode.ts";

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

describe("encodeResponse", () => {
  it("decodes to the same message as the generated encoder, for small and large resources", () => {
    const m: StreamAssignmentsResponse = {
      nonce: "h-1",
      systemVersion: "abc",
      welcome: undefined,
      credential: undefined,
      resources: [res("eps/c/ns/a", 1), res("eps/c/ns/b", 3000)],
      removedResources: ["eps/c/ns/gone"],
    };
    const ours = StreamAssignmentsResponse.decode(
      encodeResponse(m, (x) => StreamAssignmentsResponse.encode(x).finish()),
    );
    assert.deepEqual(ours, StreamAssignmentsResponse.decode(StreamAssignmentsResponse.encode(m).finish()));
  });
});
