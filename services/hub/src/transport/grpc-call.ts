/**
 * One gRPC call on one of the hub's HTTP/2 streams (server-stream.ts), for
 * the hot path (the agents' assignment streams): gRPC's length-prefixed
 * messages in both directions, response headers sent with the first
 * message, status in trailers (or a trailers-only response when the call is
 * refused before any message).
 *
 * Limits (what grpc-js enforced before): a message longer than
 * `maxMessageBytes` is refused with RESOURCE_EXHAUSTED before it is buffered;
 * compressed messages with UNIMPLEMENTED (the hub announces identity only);
 * a `grpc-timeout` ends the call with DEADLINE_EXCEEDED; a message whose
 * bytes stop arriving (not whole within `messageTimeoutMs` of its first
 * byte) ends it with DEADLINE_EXCEEDED too, and its bytes are dropped.
 */

import { status } from "@grpc/grpc-js";
import { DEFAULT_LIMITS } from "./limits.ts";
import type { HeaderList, ServerStream } from "./server-stream.ts";

/** gRPC status codes: grpc-js's own enum (the hub still links grpc-js for health and reflection) */
export { status as Status } from "@grpc/grpc-js";
export type StatusCode = status;

/** `grpc-message` is percent-encoded (gRPC over HTTP/2: bytes outside 0x20–0x7E, and '%') */
export function encodeGrpcMessage(s: string): string {
  let out = "";
  for (const b of Buffer.from(s, "utf8")) {
    if (b >= 0x20 && b <= 0x7e && b !== 0x25) out += String.fromCharCode(b);
    else out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * A message as gRPC sends it: flag 0 (not compressed), 4-byte big-endian
 * length, the bytes — given in pieces, joined once behind the prefix.
 */
export function grpcFrame(...parts: Uint8Array[]): Buffer {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = Buffer.allocUnsafe(5 + length);
  out[0] = 0;
  out.writeUInt32BE(length, 1);
  let at = 5;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** grpc-timeout: digits and a unit (H M S m u n), per the spec */
export function parseGrpcTimeout(v: string | undefined): number | undefined {
  if (!v) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unitMs = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2] as "H"];
  return n * unitMs;
}

/** response headers of every routed call */
const RESPONSE_HEADERS: HeaderList = [
  [":status", "200"],
  ["content-type", "application/grpc+proto"],
  ["grpc-accept-encoding", "identity"],
];

export type CallLimits = {
  maxMessageBytes: number;
  /** a message must arrive whole within this of its first byte (default: limits.ts) */
  messageTimeoutMs?: number | undefined;
};

export type CallHandlers = {
  /** one whole request message (without its prefix; valid only during the call) */
  onMessage: (msg: Buffer) => void;
  /** the call ended: client half-close, reset, connection gone, or finish() */
  onClose: () => void;
};

export class GrpcCall {
  private readonly stream: ServerStream;
  private readonly maxMessageBytes: number;
  private readonly messageTimeoutMs: number;
  private h: CallHandlers | undefined;
  private headersSent = false;
  private done = false;
  /** a message split across DATA frames: its pieces so far */
  private parts: Buffer[] = [];
  private partsLength = 0;
  private deadline: NodeJS.Timeout | undefined;
  /** runs while a message is partly here */
  private messageDeadline: NodeJS.Timeout | undefined;

  constructor(stream: ServerStream, limits: CallLimits) {
    this.stream = stream;
    this.maxMessageBytes = limits.maxMessageBytes;
    this.messageTimeoutMs = limits.messageTimeoutMs ?? DEFAULT_LIMITS.messageTimeoutMs;
  }

  get peer(): string {
    return this.stream.peer;
  }

  /** A request header (metadata) as one string, or undefined. */
  metadata(name: string): string | undefined {
    return this.stream.header(name);
  }

  /** Starts delivering messages; call once. */
  start(h: CallHandlers): void {
    this.h = h;
    this.stream.start({
      onData: (chunk) => this.onData(chunk),
      // the agent half-closed: a bidi call ends with it
      onEnd: () => this.finish(status.OK),
      onClose: () => this.closed(),
    });
    const ms = parseGrpcTimeout(this.metadata("grpc-timeout"));
    if (ms !== undefined) {
      this.deadline = setTimeout(() => this.finish(status.DEADLINE_EXCEEDED, "deadline exceeded"), ms);
      this.deadline.unref();
    }
  }

  /** Sends one message already framed (grpcFrame). */
  write(framed: Buffer): void {
    if (this.done) return;
    if (!this.headersSent) {
      this.headersSent = true;
      this.stream.respond(RESPONSE_HEADERS);
    }
    this.stream.write(framed);
  }

  /** Ends the call with a status; later calls do nothing. */
  finish(code: StatusCode, details = ""): void {
    if (this.done) return;
    this.done = true;
    this.stopTimers();
    const trailers: Array<[string, string]> = [["grpc-status", String(code)]];
    if (details) trailers.push(["grpc-message", encodeGrpcMessage(details)]);
    if (!this.headersSent) {
      // trailers-only response: one HEADERS frame that ends the stream
      this.headersSent = true;
      this.stream.respond(
        [[":status", "200"], ["content-type", "application/grpc+proto"], ...trailers],
        true,
      );
    } else this.stream.end(trailers);
    this.h?.onClose();
  }

  private closed(): void {
    if (this.done) return;
    this.done = true;
    this.stopTimers();
    this.h?.onClose();
  }

  private stopTimers(): void {
    clearTimeout(this.deadline);
    clearTimeout(this.messageDeadline);
    this.parts = [];
    this.partsLength = 0;
  }

  private messageStalled(): void {
    this.finish(
      status.DEADLINE_EXCEEDED,
      `a message did not arrive whole within ${this.messageTimeoutMs} ms of its first byte`,
    );
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    let c = chunk;
    if (this.partsLength > 0) {
      this.parts.push(chunk);
      this.partsLength += chunk.length;
      if (this.partsLength < 5) return;
      const head = this.parts[0]!.length >= 5 ? this.parts[0]! : Buffer.concat(this.parts, 5);
      const need = 5 + head.readUInt32BE(1);
      if (!this.acceptable(head)) return;
      if (this.partsLength < need) return;
      c = Buffer.concat(this.parts, this.partsLength);
      this.parts = [];
      this.partsLength = 0;
      clearTimeout(this.messageDeadline);
      this.messageDeadline = undefined;
    }
    let pos = 0;
    while (c.length - pos >= 5) {
      const head = c.subarray(pos, pos + 5);
      if (!this.acceptable(head)) return;
      const need = 5 + head.readUInt32BE(1);
      if (c.length - pos < need) break;
      this.h!.onMessage(c.subarray(pos + 5, pos + need));
      if (this.done) return;
      pos += need;
    }
    if (pos < c.length) {
      this.parts = [c.subarray(pos)];
      this.partsLength = c.length - pos;
      this.messageDeadline = setTimeout(() => this.messageStalled(), this.messageTimeoutMs);
      this.messageDeadline.unref();
    }
  }

  /** false (and the call ended) when a message's prefix announces what the hub does not take */
  private acceptable(head: Buffer): boolean {
    if (head[0] !== 0) {
      this.finish(
        status.UNIMPLEMENTED,
        "compressed messages are not supported: send them uncompressed (grpc-encoding identity)",
      );
      return false;
    }
    const len = head.readUInt32BE(1);
    if (len > this.maxMessageBytes) {
      this.finish(
        status.RESOURCE_EXHAUSTED,
        `a message of ${len} bytes exceeds the hub's limit of ${this.maxMessageBytes}`,
      );
      return false;
    }
    return true;
  }
}
