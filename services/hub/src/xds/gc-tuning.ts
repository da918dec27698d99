/**
 * V8 tuning for a hub that streams large messages to many agents.
 *
 * Every message the hub sends is a fresh buffer outside the JS heap (grpc-js
 * frames each one into a new Buffer): a cold start of 1,000 agents allocates
 * ~700 MB of them. By default V8 answers every ~64 MB of such "external"
 * memory with a full mark of the whole heap (the hub's world model,
 * ~200 MB), so that cold start cost 18–22 full collections — ~6 CPU-seconds
 * on V8's helper threads (bench:protocol: hub 14 CPU-s, of which the event
 * loop's own thread 7.5). Counting external memory in V8's global limit
 * instead (one budget for heap and buffers) leaves 3–4 full collections and
 * the hub at ~9 CPU-s; the buffers are short-lived, so memory stays bounded
 * by the same limit as the heap.
 */
import v8 from "node:v8";

/** The flag this sets, exported for its test. */
export const EXTERNAL_MEMORY_IN_GLOBAL_LIMIT = "--external-memory-accounted-in-global-limit";

export function tuneGcForStreaming(): void {
  v8.setFlagsFromString(EXTERNAL_MEMORY_IN_GLOBAL_LIMIT);
}
