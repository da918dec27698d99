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

/**
 * The encoded resources part of a message, reused while the same resource
 * objects go out in the same order (keyed by the first): a cold start walks
 * the snapshot in one order for every agent, so its chunks repeat, and one
 * change sends the same resources to all.
 */
const partsByFirst = new WeakMap<Resource, { resources: readonly Resource[]; body: Buffer }>();

function resourcesPart(resources: readonly Resource[]): Buffer {
  const first = resources[0]!;
  const hit = partsByFirst.get(first);
  if (hit && hit.resources.length === resources.length && hit.resources.every((r, i) => r === resources[i]))
    return hit.body;
  const parts: Buffer[] = [];
  for (const r of resources) {
    const body = encodeResource(r);
    parts.push(Buffer.from([RESOURCES_TAG]), varint(body.length), body);
  }
  const body = Buffer.concat(parts);
  partsByFirst.set(first, { resources: [...resources], body });
  return body;
}

export function encodeResponse(
  m: StreamAssignmentsResponse,
  encodeHead: (m: StreamAssignmentsResponse) => Uint8Array,
): Buffer {
  const head = encodeHead({ ...m, resources: [] });
  if (m.resources.length === 0) return Buffer.from(head);
  return Buffer.concat([head, resourcesPart(m.resources)]);
}
