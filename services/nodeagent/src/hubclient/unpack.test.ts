import assert from "node:assert/strict";
import { describe, it } from "node:test";
import zlib from "node:zlib";
import { ResourceBatch, StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import { unpackResources } from "./unpack.ts";

const raw = Buffer.from(
  ResourceBatch.encode({
    resources: Array.from({ length: 50 }, (_, i) => ({
      name: `svc/c/n/s${i}`,
      version: "1",
      body: undefined,
    })),
  }).finish(),
);
const msg = (size: number, zstd = zlib.zstdCompressSync(raw)) =>
  StreamAssignmentsResponse.fromPartial({ nonce: "n", resourcesZstd: zstd, resourcesZstdSize: size });

describe("unpackResources", () => {
  it("passes a plain message through untouched", () => {
    const m = StreamAssignmentsResponse.fromPartial({ nonce: "n" });
    assert.deepEqual(unpackResources(m), { ok: true, value: m });
  });

  it("refuses a size above the agent's limit before inflating anything", () => {
    const r = unpackResources(msg(raw.length), raw.length - 1);
    assert.equal(r.ok, false);
    assert.match(r.ok ? "" : r.error, new RegExp(`resources_zstd_size ${raw.length} is not between 1 and`));
    const zero = unpackResources(msg(0));
    assert.equal(zero.ok, false);
  });

  it("refuses a frame that unpacks to fewer bytes than announced", () => {
    const r = unpackResources(msg(raw.length + 10));
    assert.equal(r.ok, false);
    assert.match(r.ok ? "" : r.error, /unpacked to \d+ bytes, not the announced/);
  });

  it("refuses bytes that unpack but are not a ResourceBatch", () => {
    const junk = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    const r = unpackResources(msg(junk.length, zlib.zstdCompressSync(junk)));
    assert.equal(r.ok, false);
    assert.match(r.ok ? "" : r.error, /not a ResourceBatch/);
  });
});
