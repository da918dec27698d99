/**
 * Unpacks `resources_zstd` (a zstd frame of a serialized ResourceBatch, see
 * assignment.proto) into the message's plain `resources`, so everything
 * after the stream sees one form. Bounded: a frame that would inflate past
 * `maxBytes` is refused, not allocated.
 */
import zlib from "node:zlib";
import type { Result } from "@switchyard/lib/errors";
import { ResourceBatch, type StreamAssignmentsResponse } from "@switchyard/proto/assignment";

/** The largest batch an agent inflates (the plain form's limit, grpc.max_receive_message_length). */
export const MAX_UNPACKED_BYTES = 256 * 1024 * 1024;

export function unpackResources(
  m: StreamAssignmentsResponse,
  maxBytes = MAX_UNPACKED_BYTES,
): Result<StreamAssignmentsResponse> {
  if (m.resourcesZstd.length === 0) return { ok: true, value: m };
  const size = m.resourcesZstdSize;
  if (size === 0 || size > maxBytes)
    return {
      ok: false,
      error: `resources_zstd_size ${size} is not between 1 and this agent's limit of ${maxBytes} bytes`,
    };
  let raw: Buffer;
  try {
    // one output buffer of the announced size: far faster than inflating into growing chunks
    raw = zlib.zstdDecompressSync(m.resourcesZstd, { chunkSize: size + 64, maxOutputLength: size });
  } catch (e) {
    return {
      ok: false,
      error: `resources_zstd (${m.resourcesZstd.length} bytes) is not a zstd frame that unpacks to ${size} bytes: ${(e as Error).message}`,
    };
  }
  if (raw.length !== size)
    return {
      ok: false,
      error: `resources_zstd unpacked to ${raw.length} bytes, not the announced resources_zstd_size ${size}`,
    };
  let batch: ResourceBatch;
  try {
    batch = ResourceBatch.decode(raw);
  } catch (e) {
    return {
      ok: false,
      error: `resources_zstd unpacked to ${raw.length} bytes that are not a ResourceBatch: ${(e as Error).message}`,
    };
  }
  return {
    ok: true,
    value: {
      ...m,
      resources: [...m.resources, ...batch.resources],
      resourcesZstd: Buffer.alloc(0),
      resourcesZstdSize: 0,
    },
  };
}
