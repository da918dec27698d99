/**
 * Wire encoding of hub messages with each resource encoded once, however
 * many agents receive it: a StreamAssignmentsResponse is its small head
 * (nonce, versions, welcome, removals) followed by the cached bytes of each
 * resource as repeated field 4. Protobuf allows fields in any order, so this
 * is byte-for-byte a valid message for every decoder.
 */
import { Resource, type StreamAssignmentsResponse } from "@switchyard/proto/assignment";

const cache = new WeakMap<Resource, Buffer>();
const RESOURCES_TAG = (4 << 3) | 2;

export function encodeResource(r: Resource): Buffer {
  let b = cache.get(r);
  if (!b) {
    b = Buffer.from(Resource.encode(r).finish());
    cache.set(r, b);
  }
  return b;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v > 127) {
    out.push((v & 127) | 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

export function encodeResponse(
  m: StreamAssignmentsResponse,
  encodeHead: (m: StreamAssignmentsResponse) => Uint8Array,
): Buffer {
  const parts: Buffer[] = [Buffer.from(encodeHead({ ...m, resources: [] }))];
  for (const r of m.resources) {
    const body = encodeResource(r);
    parts.push(Buffer.from([RESOURCES_TAG]), varint(body.length), body);
  }
  return Buffer.concat(parts);
}
