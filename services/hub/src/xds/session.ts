/**
 * Pure per-agent stream state machine (no sockets, no time): what the agent
 * holds, what is in flight, and what to send next.
 *
 * - At most one response is in flight; changes that arrive meanwhile are
 *   folded into the next response (latest state wins, nothing queues).
 * - A response goes out only when the agent differs from the snapshot.
 * - An ACK confirms the in-flight versions; a NACK records the error and marks
 *   the rejected resources so the same bad version is not resent.
 * - A reply with a stale nonce is ignored.
 */
import type { Resource, StreamAssignmentsResponse } from "@switchyard/proto/assignment";

export type Snapshot = { version: string; resources: ReadonlyMap<string, Resource> };

export type NackRecord = {
  nonce: string;
  message: string;
  resources: Array<{ name: string; message: string }>;
};

export class AgentSession {
  /** resource name → version the agent is believed to hold */
  private readonly held = new Map<string, string>();
  /** resource name → version the agent refused (not resent until it changes) */
  private readonly rejected = new Map<string, string>();
  private inflight: { nonce: string; systemVersion: string } | undefined;
  /** names to look at on the next send; "all" until the first full comparison */
  private dirty: Set<string> | "all" = "all";
  private nonceSeq = 0;
  private readonly noncePrefix: string;
  ackedVersion = "";
  lastNack: NackRecord | undefined;
  acks = 0;
  nacks = 0;

  constructor(initialVersions: Record<string, string>, noncePrefix: string) {
    for (const [k, v] of Object.entries(initialVersions)) this.held.set(k, v);
    this.noncePrefix = noncePrefix;
  }

  get waiting(): boolean {
    return this.inflight !== undefined;
  }

  /** Names that changed in the snapshot since the last send (only these are compared next time). */
  markDirty(names: Iterable<string>): void {
    if (this.dirty === "all") return;
    for (const n of names) this.dirty.add(n);
  }

  /** The next message for this agent, or undefined (nothing differs, or one is in flight). */
  next(snap: Snapshot): StreamAssignmentsResponse | undefined {
    if (this.inflight) return undefined;
    const resources: Resource[] = [];
    const removed: string[] = [];
    const consider = (name: string) => {
      const r = snap.resources.get(name);
      if (r) {
        if (this.held.get(name) !== r.version && this.rejected.get(name) !== r.version) resources.push(r);
      } else if (this.held.has(name)) removed.push(name);
    };
    if (this.dirty === "all") {
      for (const name of snap.resources.keys()) consider(name);
      for (const name of this.held.keys()) if (!snap.resources.has(name)) removed.push(name);
    } else {
      for (const name of this.dirty) consider(name);
    }
    this.dirty = new Set();
    if (resources.length === 0 && removed.length === 0) {
      this.ackedVersion = snap.version;
      return undefined;
    }
    const nonce = `${this.noncePrefix}-${++this.nonceSeq}`;
    for (const r of resources) {
      this.held.set(r.name, r.version);
      this.rejected.delete(r.name);
    }
    for (const n of removed) this.held.delete(n);
    this.inflight = { nonce, systemVersion: snap.version };
    return { nonce, systemVersion: snap.version, welcome: undefined, resources, removedResources: removed };
  }

  /** Handles an Ack; returns false for a stale or unknown nonce (ignored). */
  onAck(
    nonce: string,
    error: { message: string; resources: Array<{ name: string; message: string }> } | undefined,
  ): boolean {
    if (!this.inflight || this.inflight.nonce !== nonce) return false;
    if (error) {
      this.nacks++;
      this.lastNack = { nonce, message: error.message, resources: error.resources };
      // the agent kept its old version of these; remember the rejected one so it is not resent
      for (const r of error.resources) {
        const v = this.held.get(r.name);
        if (v === undefined) continue;
        this.rejected.set(r.name, v);
        this.held.set(r.name, `rejected:${v}`);
      }
    } else {
      this.acks++;
      this.ackedVersion = this.inflight.systemVersion;
    }
    this.inflight = undefined;
    return true;
  }

  /** Version the hub believes the agent holds for one resource (for status and tests). */
  heldVersion(name: string): string | undefined {
    return this.held.get(name);
  }
}
