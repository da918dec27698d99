/**
 * Wire encoding of hub messages with each resource encoded once, however
 * many agents receive it: a StreamAssignmentsResponse is its small head
 * (nonce, versions, welcome, removals) followed by the cached bytes of each
 * resource as repeated field 4. Protobuf allows fields in any order, so this
 * is byte-for-byte a valid message for every decoder.
 *
 * Large batches go packed to agents that accept it (`resources_zstd`, field
 * 7): the same field-4 bytes, zstd-compressed once per batch and reused for
 * every agent that receives the batch — a cold start of 1,000 agents
 * compresses each chunk once, not 1,000 times.
 */
import zlib from "node:zlib";
import { Resource, type StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import { grpcFrame } from "../transport/grpc-call.ts";

const cache = new WeakMap<Resource, Buffer>();
const RESOURCES_TAG = (4 << 3) | 2;
const RESOURCES_ZSTD_TAG = (7 << 3) | 2;
const RESOURCES_ZSTD_SIZE_TAG = 8 << 3;
/** Batches smaller than this travel plain: one change is a few hundred bytes, not worth a frame. */
export const PACK_MIN_BYTES = 16 * 1024;

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
 * `packed`: fields 8 and 7 (size, zstd frame) ready to follow any head;
 * `last`: the last whole message built on this part, reused when the next
 * one has the same head (a cold start's chunk goes to every agent with the
 * same nonce: one buffer for all, no copy per agent)
 */
type Part = {
  resources: readonly Resource[];
  body: Buffer;
  packed: Buffer | undefined;
  last:
    | { nonce: string; systemVersion: string; viewComplete: boolean; pack: boolean; wire: Buffer }
    | undefined;
};

/**
 * The encoded resources part of a message, reused while the same resource
 * objects go out in the same order (keyed by the first): a cold start walks
 * the snapshot in one order for every agent, so its chunks repeat (as the
 * same arrays), and one change sends the same resources to all.
 */
const partsByFirst = new WeakMap<Resource, Part>();

function resourcesPart(resources: readonly Resource[]): Part {
  const first = resources[0]!;
  const hit = partsByFirst.get(first);
  // a cold start's chunks are shared arrays (session.ts): one comparison, not 2,000
  if (hit?.resources === resources) return hit;
  if (hit && hit.resources.length === resources.length && hit.resources.every((r, i) => r === resources[i]))
    return hit;
  const parts: Buffer[] = [];
  for (const r of resources) {
    const body = encodeResource(r);
    parts.push(Buffer.from([RESOURCES_TAG]), varint(body.length), body);
  }
  // kept as given: a message's resources are never changed once it is built
  const part: Part = { resources, body: Buffer.concat(parts), packed: undefined, last: undefined };
  partsByFirst.set(first, part);
  return part;
}

/**
 * One response as it goes on the wire: a gRPC length-prefixed message.
 * `pack`: the agent accepts RESOURCE_ENCODING_ZSTD; a batch of at least
 * PACK_MIN_BYTES then goes as `resources_zstd`.
 */
export function encodeResponse(
  m: StreamAssignmentsResponse,
  encodeHead: (m: StreamAssignmentsResponse) => Uint8Array,
  pack = false,
): Buffer {
  if (m.resources.length === 0) return grpcFrame(encodeHead(m));
  const part = resourcesPart(m.resources);
  // only nonce, version and view_complete besides the resources: the same head as the last message on this part?
  const plainHead = m.removedResources.length === 0 && !m.welcome && !m.credential;
  const last = part.last;
  if (
    plainHead &&
    last?.nonce === m.nonce &&
    last.systemVersion === m.systemVersion &&
    last.viewComplete === m.viewComplete &&
    last.pack === pack
  )
    return last.wire;
  const head = encodeHead({ ...m, resources: [] });
  let wire: Buffer;
  if (pack && part.body.length >= PACK_MIN_BYTES) {
    if (!part.packed) {
      const frame = zlib.zstdCompressSync(part.body, { pledgedSrcSize: part.body.length });
      part.packed = Buffer.concat([
        Buffer.from([RESOURCES_ZSTD_SIZE_TAG]),
        varint(part.body.length),
        Buffer.from([RESOURCES_ZSTD_TAG]),
        varint(frame.length),
        frame,
      ]);
    }
    wire = grpcFrame(head, part.packed);
  } else wire = grpcFrame(head, part.body);
  if (plainHead)
    part.last = { nonce: m.nonce, systemVersion: m.systemVersion, viewComplete: m.viewComplete, pack, wire };
  return wire;
}
