/**
 * Pure per-agent stream state machine (no sockets, no time): what to send
 * next, what is in flight, what the agent refused.
 *
 * - On a new stream the agent's `initial_resource_versions` are compared
 *   with the snapshot once, lazily: a cursor walks the snapshot as messages
 *   are sent, so a cold start holds no per-agent list of 20,000 names; only
 *   differences are sent (resume). A held version counts only until the
 *   agent is told otherwise: a name sent, removed or passed by the walk
 *   leaves that list, and the list is dropped when the walk ends.
 * - After that the session keeps only the names that changed since its last
 *   message (`markDirty`), not a copy of every version the agent holds: a
 *   hub with 1,000 agents × 20,000 resources keeps no million-entry maps.
 * - At most one response is in flight; changes that arrive meanwhile are
 *   folded into the next response (latest state wins, nothing queues).
 * - A message after which the agent holds the whole view (walk done, nothing
 *   changed left to send) carries `view_complete`; an agent told "not yet" is
 *   always told "complete" later, by an empty message if nothing else is due.
 * - An ACK confirms the in-flight message; a NACK records the error and
 *   remembers the refused versions, which are not resent until they change.
 *   `ackedVersion` is the last view version the agent acknowledged holding
 *   whole: the ACK of a complete message while nothing it refused is
 *   outstanding.
 * - A reply with a stale nonce is ignored.
 */
import type { Resource, StreamAssignmentsResponse } from "@switchyard/proto/assignment";

/** shared by every message: a zero-length buffer never changes */
const NO_BYTES = Buffer.alloc(0);

/**
 * A view's resources at one version. The translator hands out a new object
 * whenever the map changes (content or order), so an object stands for one
 * exact map while it is current.
 *
 * One node's snapshot extends the view's shared one (`base`, whose
 * `resources` it shares) with the node's own resources (`overlay`,
 * lrpb/…/<node>); its version covers both. The walk sends the shared map
 * first — in the chunks every agent shares — then the overlay.
 */
export type Snapshot = {
  version: string;
  resources: ReadonlyMap<string, Resource>;
  overlay?: ReadonlyMap<string, Resource>;
  base?: Snapshot;
};

/** A resource of the snapshot, shared or the node's own. */
function lookup(snap: Snapshot, name: string): Resource | undefined {
  return snap.resources.get(name) ?? snap.overlay?.get(name);
}

/**
 * Cold-walk chunks per snapshot object: every agent that starts from nothing
 * walks the same map in the same order, so its k-th message carries the same
 * resources as everyone's — one array, encoded and packed once (encode.ts).
 */
const coldChunks = new WeakMap<Snapshot, Map<string, SharedChunk>>();
/**
 * A cold-start chunk and its nonce, the same for every agent. A nonce need
 * only be unique within its stream, so messages that are the same for many
 * agents are named after what they carry — `cold<snapshot>.<start>.<size>`
 * (a walk sends each chunk of a snapshot once) and `d<snapshot>` (the first
 * delta of a stream on a snapshot) — and are then byte for byte everyone's,
 * encoded once (encode.ts); any other message gets `<stream prefix>-<n>`.
 */
type SharedChunk = { resources: readonly Resource[]; nonce: string };
let snapshotSeq = 0;
/** each snapshot's number and its delta nonce `d<number>` (one string: a fan-out asks 1,000 times) */
const snapshotNames = new WeakMap<Snapshot, { id: number; delta: string }>();
function snapshotName(snap: Snapshot): { id: number; delta: string } {
  let n = snapshotNames.get(snap);
  if (!n) {
    const id = ++snapshotSeq;
    n = { id, delta: `d${id}` };
    snapshotNames.set(snap, n);
  }
  return n;
}

export type NackRecord = {
  nonce: string;
  message: string;
  resources: Array<{ name: string; message: string }>;
};

export class AgentSession {
  /**
   * What the agent said it holds, for the names the hub has not told it
   * about since (sent, removed, or passed by the walk: then the entry goes).
   * Used only during the initial walk; undefined after it.
   */
  private initial: Map<string, string> | undefined;
  private initialScanned = false;
  /** names to look at on the next send */
  private readonly dirty = new Set<string>();
  /** the initial comparison's walk over the (live) snapshot: its shared map, then the node's overlay */
  private cursor: Iterator<Resource> | undefined;
  /** the walk is past the shared map, in the node's overlay */
  private inOverlay = false;
  /** the shared map's size when the walk began (its shared chunks end there) */
  private sharedTotal = 0;
  private cursorTotal = 0;
  private cursorSeen = 0;
  /** the snapshot of the last message named after its snapshot (`d<id>`): a stream uses each such nonce once */
  private lastDeltaSnap: Snapshot | undefined;
  /** the shared snapshot object the walk began on (a new object means the shared map changed since) */
  private walkSnap: Snapshot | undefined;
  private readonly maxResourcesPerMessage: number;
  /** resource name → version the agent refused (not resent until it changes) */
  private readonly rejected = new Map<string, string>();
  /**
   * The agent has not been told that it holds the whole view since its last
   * message said otherwise (or since the stream began): it holds what it got
   * until it is, so it is told even when nothing else is left to send.
   */
  private owesComplete: boolean;
  /** the message awaiting its ACK; `sent` is what it carried (the versions a NACK refers to) */
  private inflight:
    | {
        nonce: string;
        systemVersion: string;
        sent: readonly Resource[];
        removed: number;
        complete: boolean;
      }
    | undefined;
  private nonceSeq = 0;
  private readonly noncePrefix: string;
  /**
   * The last view version the agent acknowledged holding whole (the ACK of a
   * `view_complete` message with no refused version outstanding); "" until then.
   */
  ackedVersion = "";
  lastNack: NackRecord | undefined;
  acks = 0;
  nacks = 0;

  /**
   * `initialVersions` is what the agent holds. `inSyncWith` is set when the
   * agent proved (Hello.held_view_version) that it holds exactly that view
   * version: nothing is compared and nothing sent until the view changes.
   */
  constructor(
    initialVersions: Record<string, string>,
    noncePrefix: string,
    maxResourcesPerMessage = 1000,
    inSyncWith?: string,
  ) {
    if (inSyncWith !== undefined) {
      this.initial = undefined;
      this.initialScanned = true;
      this.ackedVersion = inSyncWith;
      // the Welcome says so (in_sync)
      this.owesComplete = false;
    } else {
      this.initial = new Map(Object.entries(initialVersions));
      this.owesComplete = true;
    }
    this.noncePrefix = noncePrefix;
    this.maxResourcesPerMessage = maxResourcesPerMessage;
  }

  get waiting(): boolean {
    return this.inflight !== undefined;
  }

  /** Names that changed in the snapshot since the last send (only these are compared next time). */
  markDirty(names: Iterable<string>): void {
    // during the initial walk too: the cursor may already have passed them
    for (const n of names) this.dirty.add(n);
  }

  /** Whether the agent lacks `r` at its current version: not held (as far as the hub knows) and not refused. */
  private wanted(r: Resource): boolean {
    return this.initial?.get(r.name) !== r.version && this.rejected.get(r.name) !== r.version;
  }

  /** The next message for this agent, or undefined (nothing differs, or one is in flight). */
  next(snap: Snapshot): StreamAssignmentsResponse | undefined {
    if (this.inflight) return undefined;
    // in sync and nothing changed (every ACK asks): no work, nothing allocated
    if (this.initialScanned && this.dirty.size === 0 && !this.owesComplete) return undefined;
    const initial = this.initial;
    const resources: Resource[] = [];
    const removed: string[] = [];
    const max = this.maxResourcesPerMessage;
    // names that changed since the last send; whatever goes out about a name replaces what the agent said it held
    for (const name of this.dirty) {
      if (resources.length >= max) break;
      this.dirty.delete(name);
      const r = lookup(snap, name);
      if (!r) {
        removed.push(name);
        initial?.delete(name);
      } else if (this.wanted(r)) {
        resources.push(r);
        initial?.delete(name);
      }
    }
    // the initial comparison, a chunk at a time
    let out: readonly Resource[] = resources;
    let sharedNonce: string | undefined;
    /** a shared cold chunk: the snapshot it came from (the view's shared one) */
    let chunkOf: Snapshot | undefined;
    if (!this.initialScanned && resources.length < max) {
      const shared = snap.base ?? snap;
      if (!this.cursor) {
        this.cursor = snap.resources.values();
        this.sharedTotal = snap.resources.size;
        this.cursorTotal = snap.resources.size + (snap.overlay?.size ?? 0);
        this.walkSnap = shared;
      }
      // nothing held (any more), nothing refused: everything ahead of the cursor goes, no per-resource lookups
      const all = (initial === undefined || initial.size === 0) && this.rejected.size === 0;
      const ownAhead = snap.overlay !== undefined && snap.overlay.size > 0;
      if (
        all &&
        resources.length === 0 &&
        removed.length === 0 &&
        this.walkSnap === shared &&
        !this.inOverlay &&
        // an empty shared rest before the node's own resources is no chunk: the loop below goes on to them
        (this.cursorSeen < this.sharedTotal || !ownAhead)
      ) {
        // the shared map is as it was when the walk began: this chunk is every cold-starting agent's chunk
        const chunk = this.sharedChunk(shared, this.cursor, max);
        out = chunk.resources;
        sharedNonce = chunk.nonce;
        chunkOf = shared;
        this.cursorSeen += out.length;
        // the node's own resources follow in the next message; without any, the walk is done
        if (this.cursorSeen >= this.sharedTotal) {
          if (ownAhead) this.enterOverlay(snap);
          else this.walkDone(snap, removed);
        }
      } else
        for (;;) {
          if (resources.length >= max) break;
          let n = this.cursor.next();
          if (n.done && !this.inOverlay && ownAhead) {
            this.enterOverlay(snap);
            n = this.cursor.next();
          }
          if (n.done) {
            this.walkDone(snap, removed);
            break;
          }
          this.cursorSeen++;
          const r = n.value;
          if (all) resources.push(r);
          else {
            if (this.wanted(r)) resources.push(r);
            // the walk has passed it: from now on a change of it is dirty, and is sent
            initial?.delete(r.name);
          }
        }
    }
    // with this message applied the agent holds the whole view at snap.version
    const complete = this.initialScanned && this.dirty.size === 0;
    if (out.length === 0 && removed.length === 0 && !(complete && this.owesComplete)) return undefined;
    // the first message of a stream on a snapshot is, for every agent that was in sync, the same delta: the same nonce makes it the same bytes (encoded once)
    if (sharedNonce === undefined && this.initialScanned && this.lastDeltaSnap !== snap) {
      sharedNonce = snapshotName(snap).delta;
      this.lastDeltaSnap = snap;
    }
    const nonce = sharedNonce ?? `${this.noncePrefix}-${++this.nonceSeq}`;
    if (this.rejected.size > 0) {
      for (const r of out) this.rejected.delete(r.name);
      for (const n of removed) this.rejected.delete(n);
    }
    this.owesComplete = !complete;
    // a shared chunk that does not complete the view carries the shared version: byte for byte everyone's
    // message, whether or not the agent has resources of its own (only a complete message's version counts)
    const systemVersion = chunkOf !== undefined && !complete ? chunkOf.version : snap.version;
    this.inflight = { nonce, systemVersion, sent: out, removed: removed.length, complete };
    return {
      nonce,
      systemVersion,
      welcome: undefined,
      credential: undefined,
      // a shared chunk: nobody writes into a message's resources
      resources: out as Resource[],
      removedResources: removed,
      resourcesZstd: NO_BYTES,
      resourcesZstdSize: 0,
      viewComplete: complete,
    };
  }

  /**
   * The walk reached the end of the map: what the agent still says it holds
   * that the view no longer has goes as removals, and the held versions are
   * dropped (from now on only changes are compared).
   */
  private walkDone(snap: Snapshot, removed: string[]): void {
    this.initialScanned = true;
    this.cursor = undefined;
    this.inOverlay = false;
    this.walkSnap = undefined;
    const initial = this.initial;
    this.initial = undefined;
    if (!initial) return;
    for (const [name, version] of initial) {
      const r = lookup(snap, name);
      if (!r) removed.push(name);
      // only when the walk went over another map than the live one (never with the translator's): compared as a change
      else if (r.version !== version) this.dirty.add(name);
    }
  }

  /** The shared map is walked: the node's own resources (the live overlay of the current snapshot) come next. */
  private enterOverlay(snap: Snapshot): void {
    this.inOverlay = true;
    this.cursor = (snap.overlay ?? new Map<string, Resource>()).values();
  }

  /**
   * The next `max` resources of an unchanged map from the walk's position,
   * the same array for every agent there (built by the first; the others
   * only step their cursor past it). Only an agent that holds nothing and
   * has nothing dirty takes one, so whether it completes the view (it ends
   * the walk) is the chunk's own property: the same message for everyone,
   * `view_complete` included.
   */
  private sharedChunk(snap: Snapshot, cursor: Iterator<Resource>, max: number): SharedChunk {
    let chunks = coldChunks.get(snap);
    if (!chunks) {
      chunks = new Map();
      coldChunks.set(snap, chunks);
    }
    const key = `${this.cursorSeen}.${max}`;
    const hit = chunks.get(key);
    if (hit) {
      for (let i = 0; i < hit.resources.length; i++) cursor.next();
      return hit;
    }
    const resources: Resource[] = [];
    while (resources.length < max) {
      const n = cursor.next();
      if (n.done) break;
      resources.push(n.value);
    }
    const chunk = { resources, nonce: `cold${snapshotName(snap).id}.${key}` };
    chunks.set(key, chunk);
    return chunk;
  }

  /**
   * Resources the agent does not hold at the view's version yet: still to
   * send, awaiting their ACK (a message in flight counts at least one), or
   * refused (0 = the agent holds the snapshot).
   */
  get pending(): number {
    const walk = this.initialScanned ? 0 : Math.max(1, this.cursorTotal - this.cursorSeen);
    const inflight = this.inflight ? Math.max(1, this.inflight.sent.length + this.inflight.removed) : 0;
    return this.dirty.size + inflight + walk + this.rejected.size;
  }

  /** Whether more of the current difference waits to be sent (after the in-flight message is answered). */
  get behind(): boolean {
    return this.dirty.size > 0 || !this.initialScanned || this.owesComplete;
  }

  /** Handles an Ack; returns false for a stale or unknown nonce (ignored). */
  onAck(
    nonce: string,
    error: { message: string; resources: Array<{ name: string; message: string }> } | undefined,
  ): boolean {
    const inflight = this.inflight;
    if (!inflight || inflight.nonce !== nonce) return false;
    if (error) {
      this.nacks++;
      this.lastNack = { nonce, message: error.message, resources: error.resources };
      // the agent kept its old version of these; remember the refused one so it is not resent
      const sent = new Map(inflight.sent.map((r) => [r.name, r.version]));
      for (const r of error.resources) {
        const v = sent.get(r.name);
        if (v !== undefined) this.rejected.set(r.name, v);
      }
      // not acknowledged: ackedVersion stays where the agent last held the whole view
    } else {
      this.acks++;
      // a refused version outstanding: the agent holds old versions of those, not this view
      if (inflight.complete && this.rejected.size === 0) this.ackedVersion = inflight.systemVersion;
    }
    this.inflight = undefined;
    return true;
  }
}
