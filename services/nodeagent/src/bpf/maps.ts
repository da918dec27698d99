/**
 * The narrow interface between the planner's operations and real BPF maps
 * (the port), with the state model both sides share. The planner produces
 * `MapOp`s; a `DatapathMaps` implementation applies them and reads back what
 * the maps hold. `LibbpfMaps` is the kernel one, `FakeMaps` an in-memory one
 * for planner tests and fault injection.
 */
import { type ResolutionCounts, storedServiceName } from "./layout.ts";

export type Backend = { ip: string; port: number };

/** scope 1 (node port): ip is "::" and the entry applies to every node address */
export type FrontendKeyModel = { ip: string; port: number; proto: number; scope: number };
export type FrontendModel = {
  svcId: number;
  setId: number;
  count: number;
  affinityTimeoutS: number;
  portId: number;
  /** local redirect: the fallback set (0: none) and its size */
  fbSetId: number;
  fbCount: number;
  /** local redirect: redirects per second (0: no limit) */
  qosPerSecond: number;
  natType: number;
  natMode: number;
  flags: number;
};

/** What the maps hold, decoded. Backend sets are dense arrays indexed 0..count-1. */
export type MapState = {
  names: Map<number, string>;
  frontends: Map<string, { key: FrontendKeyModel; value: FrontendModel }>;
  backendSets: Map<number, Backend[]>;
  /** this node's own addresses (NodePort frontends apply to them) */
  nodeIps: Set<string>;
  /**
   * `sy_members` as read back (`memberKey` → index), so a resync can repair
   * it; absent in the agent's mirror between resyncs (it follows from the
   * backend sets, and would double the mirror's size at 1 M backends).
   */
  members?: Map<string, number>;
};

export type MapOp =
  | { op: "put-name"; svcId: number; name: string }
  | { op: "put-backend"; setId: number; index: number; backend: Backend }
  | { op: "put-frontend"; key: FrontendKeyModel; value: FrontendModel }
  | { op: "delete-frontend"; key: FrontendKeyModel }
  | { op: "delete-backend"; setId: number; index: number; backend: Backend }
  | { op: "delete-name"; svcId: number }
  | { op: "put-node-ip"; ip: string }
  | { op: "delete-node-ip"; ip: string }
  /** drift repair of `sy_members` alone (`put-backend` / `delete-backend` write both maps) */
  | { op: "put-member"; setId: number; index: number; backend: Backend }
  | { op: "delete-member"; setId: number; backend: Backend };

export function frontendKeyString(k: FrontendKeyModel): string {
  return `${k.ip}|${k.port}|${k.proto}|${k.scope}`;
}

/** A `sy_members` entry's key as a string: "set|ip|port" (an IP never holds "|"). */
export function memberKey(setId: number, b: Backend): string {
  return `${setId}|${b.ip}|${b.port}`;
}

export function parseMemberKey(k: string): { setId: number; backend: Backend } {
  const [setId, ip, port] = k.split("|");
  return { setId: Number(setId), backend: { ip: ip!, port: Number(port) } };
}

export function emptyMapState(): MapState {
  return { names: new Map(), frontends: new Map(), backendSets: new Map(), nodeIps: new Set() };
}

/** What the writer of one `apply` knows about the entries it deletes. */
export type ApplyOptions = {
  /**
   * Every backend set these ops delete entries of has had no frontend
   * pointing at it since `readers.mark()` returned this value (0: never had
   * one). Once a grace period that began after that mark has ended, no
   * reader holds any element of such a set, so its deletion needs no wait
   * and its freed elements may be reused at once (docs/dataplane.md,
   * "Readers and writers").
   */
  setsUnlinkedAt?: number;
};

/**
 * The programs that read the maps, as their writer sees them: grace periods
 * (bpf/reader-grace.ts). A mark numbers the writes so far; "after the
 * readers of a mark" means after a grace period that began once those
 * writes were done, so every program run that could have seen the maps as
 * they were before has returned.
 */
export interface MapReaders {
  /** the writes so far: pass it to `afterReaders` or `waitForReaders` */
  mark(): number;
  /**
   * Calls `done` once the readers of `mark` have returned, in a later turn
   * of the event loop (never the calling one); the grace period runs off the
   * main thread.
   */
  afterReaders(mark: number, done: () => void): void;
  /** the rare fallback: waits on the calling thread (counted in `blockingWaits`) when `mark` is not covered yet */
  waitForReaders(mark: number): void;
  /** grace periods waited for on the calling thread so far */
  readonly blockingWaits: number;
  /** Writes `ops` one by one through `writeOne`, waiting where a write could change what a reader holds. */
  write(ops: readonly MapOp[], opts: ApplyOptions | undefined, writeOne: (o: MapOp) => void): void;
}

/**
 * skipRedirectFromBackend's map (`sy_lrp_skip`): which cgroups belong to a
 * policy's selected pods. Programs only test an entry's presence, so an
 * entry can be deleted and its element reused at once.
 */
export interface SkipCgroupMap {
  /** every entry, as `skipKey` strings */
  readSkips(): Set<string>;
  putSkip(svcId: number, cgroupId: bigint): void;
  deleteSkip(svcId: number, cgroupId: bigint): void;
}

export function skipKey(svcId: number, cgroupId: bigint): string {
  return `${svcId}|${cgroupId}`;
}

export function parseSkipKey(k: string): { svcId: number; cgroupId: bigint } {
  const [svcId, cgroupId] = k.split("|");
  return { svcId: Number(svcId), cgroupId: BigInt(cgroupId!) };
}

export interface DatapathMaps {
  /** Applies operations in order; stops and throws at the first failure (ops before it stay applied). */
  apply(ops: readonly MapOp[], opts?: ApplyOptions): void;
  /** Reads the whole state back from the maps. */
  read(): MapState;
  /** the programs reading these maps; absent when none does (a deleted set may then go at once) */
  readonly readers?: MapReaders | undefined;
  /** skipRedirectFromBackend's cgroups; absent in fakes that do not keep them */
  readonly skips?: SkipCgroupMap | undefined;
  /**
   * Resolutions per Service (svc id, named in `MapState.names`) and result,
   * counted by the programs (`sy_svc_stats`); absent where nothing counts.
   */
  readResolutionCounters?(): Map<number, ResolutionCounts>;
}

/** Applies one op to an in-memory state (shared by FakeMaps and the agent's mirror of the maps). */
export function applyOpToState(state: MapState, o: MapOp): void {
  switch (o.op) {
    case "put-name":
      state.names.set(o.svcId, storedServiceName(o.name));
      return;
    case "delete-name":
      state.names.delete(o.svcId);
      return;
    case "put-frontend":
      state.frontends.set(frontendKeyString(o.key), { key: o.key, value: o.value });
      return;
    case "delete-frontend":
      state.frontends.delete(frontendKeyString(o.key));
      return;
    case "put-node-ip":
      state.nodeIps.add(o.ip);
      return;
    case "delete-node-ip":
      state.nodeIps.delete(o.ip);
      return;
    case "put-backend": {
      const set = state.backendSets.get(o.setId) ?? [];
      set[o.index] = o.backend;
      state.backendSets.set(o.setId, set);
      state.members?.set(memberKey(o.setId, o.backend), o.index);
      return;
    }
    case "delete-backend": {
      state.members?.delete(memberKey(o.setId, o.backend));
      const set = state.backendSets.get(o.setId);
      if (!set) return;
      set.length = Math.min(set.length, o.index);
      if (set.length === 0) state.backendSets.delete(o.setId);
      return;
    }
    case "put-member":
      state.members?.set(memberKey(o.setId, o.backend), o.index);
      return;
    case "delete-member":
      state.members?.delete(memberKey(o.setId, o.backend));
      return;
  }
}

export function cloneMapState(s: MapState): MapState {
  return {
    names: new Map(s.names),
    frontends: new Map(s.frontends),
    backendSets: new Map([...s.backendSets].map(([k, v]) => [k, [...v]])),
    nodeIps: new Set(s.nodeIps),
    ...(s.members ? { members: new Map(s.members) } : {}),
  };
}

/**
 * In-memory maps that behave as the kernel's do where the agent can tell:
 * names stored as `sy_svc_names` stores them, `sy_members` kept beside the
 * sets. Fault injection: `failAfter` makes the n-th next op throw once;
 * `rejects` refuses every op it returns a reason for (a full map, say),
 * until it is cleared. With `readers` set, writes follow the same grace
 * rules as the kernel adapter's.
 */
export class FakeMaps implements DatapathMaps {
  state: MapState = { ...emptyMapState(), members: new Map() };
  writes = 0;
  /** whole reads so far (the agent reads back on start and resync only) */
  reads = 0;
  failAfter: number | undefined;
  rejects: ((o: MapOp) => string | undefined) | undefined;
  /** readers to keep safe (a `ReaderGrace` over a test grace period); none by default */
  readers: MapReaders | undefined;
  /** `sy_lrp_skip`, as `skipKey` strings */
  readonly skipEntries = new Set<string>();
  readonly skips: SkipCgroupMap = {
    readSkips: () => new Set(this.skipEntries),
    putSkip: (svcId, cgroupId) => void this.skipEntries.add(skipKey(svcId, cgroupId)),
    deleteSkip: (svcId, cgroupId) => void this.skipEntries.delete(skipKey(svcId, cgroupId)),
  };
  apply(ops: readonly MapOp[], opts?: ApplyOptions): void {
    if (this.readers) this.readers.write(ops, opts, (o) => this.applyOne(o));
    else for (const o of ops) this.applyOne(o);
  }
  private applyOne(o: MapOp): void {
    if (this.failAfter !== undefined && this.failAfter-- <= 0) {
      this.failAfter = undefined;
      throw new Error(`injected failure at ${o.op}`);
    }
    const refused = this.rejects?.(o);
    if (refused) throw new Error(refused);
    applyOpToState(this.state, o);
    this.writes++;
  }
  read(): MapState {
    this.reads++;
    return cloneMapState(this.state);
  }
  /** what `readResolutionCounters` returns: set it in a test */
  resolutions = new Map<number, ResolutionCounts>();
  readResolutionCounters(): Map<number, ResolutionCounts> {
    return new Map(this.resolutions);
  }
}
