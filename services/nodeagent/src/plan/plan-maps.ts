/**
 * Pure: desired frontends + what the maps hold → the map operations that
 * make the maps equal to the desired state, make-before-break:
 *
 *   1. names of new services,
 *   2. new backend sets, written beside the live ones (a local redirect's
 *      fallback set too),
 *   3. frontends flipped to their new set (one update each: atomic for a connect),
 *   4. frontends no longer wanted deleted,
 *   5. backend sets no longer referenced deleted,
 *   6. names no longer used deleted.
 *
 * This order is what lets the kernel adapter keep readers safe: a set is
 * never rewritten (a changed one gets a fresh id), and deletions come after
 * the flips, so the agent can retire the sets of step 5 (delete them a
 * grace period after the flips, off its main thread) and the programs
 * never lose a set they looked up (bpf/reader-grace.ts).
 *
 * Nothing that already matches is written, so an agent restarted against
 * unchanged assignments performs zero writes.
 *
 * Names are compared in the form the maps store them (`storedServiceName`:
 * whole, or cut with a hash when too long), so a long name reads back equal
 * and keeps its id. When `actual` carries `sy_members` as read back (a
 * resync), a full plan also repairs it: entries missing or pointing at the
 * wrong index of a live set are written again, stray ones deleted (first,
 * before any new set could take their set id).
 *
 * Sets being retired (`retiring`: unlinked by an earlier plan, their
 * deletion waiting for a grace period) are in the maps and so taken for new
 * ids, but neither deleted again nor repaired: they are not drift.
 *
 * With a scope (the frontend keys a delta may have changed) only those
 * frontends, their backend sets and their Services' names are compared:
 * one endpoint change plans one frontend, not the whole view. Orphans
 * outside any scope (left by someone else) are for the full plan of a
 * resync.
 */

import { storedServiceName } from "../bpf/layout.ts";
import {
  type Backend,
  type FrontendModel,
  type MapOp,
  type MapState,
  memberKey,
  parseMemberKey,
} from "../bpf/maps.ts";
import type { DesiredFrontend } from "../desired/compute-desired.ts";

export type Plan = { ops: MapOp[]; svcIds: Map<string, number> };

function deleteSet(setId: number, set: ReadonlyArray<Backend | undefined>, out: MapOp[]): void {
  for (let i = set.length - 1; i >= 0; i--) {
    const backend = set[i];
    if (backend) out.push({ op: "delete-backend", setId, index: i, backend });
  }
}

function sameBackends(a: readonly Backend[] | undefined, b: readonly Backend[]): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < b.length; i++) if (a[i]?.ip !== b[i]!.ip || a[i]?.port !== b[i]!.port) return false;
  return true;
}

/**
 * Hands out ids not taken in the maps nor earlier in this plan, from `start`
 * upward (wrapping at 2^32 − 1; 0 is never an id). `start` is read on the
 * first allocation only: a plan that allocates nothing costs nothing.
 */
class IdAllocator {
  private readonly mine = new Set<number>();
  private cursor: number | undefined;
  private readonly start: () => number;
  private readonly taken: (id: number) => boolean;
  constructor(start: () => number, taken: (id: number) => boolean) {
    this.start = start;
    this.taken = taken;
  }
  next(): number {
    this.cursor ??= this.start();
    for (;;) {
      if (this.cursor > 0xffffffff || this.cursor < 1) this.cursor = 1;
      const id = this.cursor++;
      if (!this.taken(id) && !this.mine.has(id)) {
        this.mine.add(id);
        return id;
      }
    }
  }
}

/** one past the largest id (1 when there is none): where a full plan starts allocating */
function pastLargest(ids: Iterable<number>): number {
  let max = 0;
  for (const id of ids) if (id > max) max = id;
  return max + 1;
}

/**
 * What a scoped plan needs to know of the whole maps without reading them
 * all: a Service's id by name and where to start looking for free ids. The
 * caller keeps it in step as ops land (`note`), so one endpoint change costs
 * the change, not the 10,000 Services beside it.
 */
export class MapStateIndex {
  private readonly idByName = new Map<string, number>();
  nextSvcId = 1;
  nextSetId = 1;

  static of(state: MapState): MapStateIndex {
    const x = new MapStateIndex();
    for (const [id, name] of state.names) if (!x.idByName.has(name)) x.idByName.set(name, id);
    x.nextSvcId = pastLargest(state.names.keys());
    x.nextSetId = pastLargest(state.backendSets.keys());
    return x;
  }

  /** by the name's stored form: `name` may be whole or stored */
  svcIdOf(name: string): number | undefined {
    return this.idByName.get(storedServiceName(name));
  }

  /** One op, before it is applied to `state` (a deleted name is looked up there). */
  note(state: MapState, o: MapOp): void {
    if (o.op === "put-name") {
      const name = storedServiceName(o.name);
      if (!this.idByName.has(name)) this.idByName.set(name, o.svcId);
      if (o.svcId >= this.nextSvcId) this.nextSvcId = o.svcId + 1;
    } else if (o.op === "delete-name") {
      const name = state.names.get(o.svcId);
      if (name !== undefined && this.idByName.get(name) === o.svcId) this.idByName.delete(name);
    } else if (o.op === "put-backend" && o.setId >= this.nextSetId) this.nextSetId = o.setId + 1;
  }
}

/**
 * A partial plan: these frontend keys only; `ownsFrontends` tells whether a
 * Service still needs its name; `index` is kept in step with `actual`.
 */
export type PlanScope = {
  keys: ReadonlySet<string>;
  ownsFrontends: (service: string) => boolean;
  index: MapStateIndex;
};

export function planMaps(
  want: { frontends: ReadonlyMap<string, DesiredFrontend>; nodeIps: ReadonlySet<string> },
  actual: MapState,
  scope?: PlanScope,
  retiring: ReadonlySet<number> = new Set(),
): Plan {
  const all = want.frontends;
  const desired: ReadonlyMap<string, DesiredFrontend> = scope
    ? new Map([...scope.keys].flatMap((ks) => (all.has(ks) ? [[ks, all.get(ks)!] as const] : [])))
    : all;
  const putNodeIps: MapOp[] = [];
  const delNodeIps: MapOp[] = [];
  if (!scope) {
    for (const ip of [...want.nodeIps].sort())
      if (!actual.nodeIps.has(ip)) putNodeIps.push({ op: "put-node-ip", ip });
    for (const ip of actual.nodeIps) if (!want.nodeIps.has(ip)) delNodeIps.push({ op: "delete-node-ip", ip });
  }
  const putNames: MapOp[] = [];
  const putBackends: MapOp[] = [];
  const putFrontends: MapOp[] = [];
  const delFrontends: MapOp[] = [];
  const delBackends: MapOp[] = [];
  const delNames: MapOp[] = [];

  // service ids: reuse what the maps already name (a full plan reads every name; a scoped one asks the index)
  let idByName: Map<string, number> | undefined;
  if (!scope) {
    idByName = new Map<string, number>();
    for (const [id, name] of actual.names) if (!idByName.has(name)) idByName.set(name, id);
  }
  const idOf = (name: string) =>
    idByName ? idByName.get(storedServiceName(name)) : scope!.index.svcIdOf(name);
  const svcIdAlloc = new IdAllocator(
    () => (scope ? scope.index.nextSvcId : pastLargest(actual.names.keys())),
    (id) => actual.names.has(id),
  );
  const svcIds = new Map<string, number>();
  for (const fe of desired.values()) {
    if (svcIds.has(fe.service)) continue;
    let id = idOf(fe.service);
    if (id === undefined) {
      id = svcIdAlloc.next();
      putNames.push({ op: "put-name", svcId: id, name: fe.service });
    }
    svcIds.set(fe.service, id);
  }

  const setAlloc = new IdAllocator(
    () => (scope ? scope.index.nextSetId : pastLargest(actual.backendSets.keys())),
    (id) => actual.backendSets.has(id),
  );
  const liveSets = new Set<number>();
  /** live sets kept as they are (their sy_members entries are checked on a resync) */
  const keptSets = new Set<number>();
  /** a set for one role of a frontend: the one it has when equal, else a new one (0: empty) */
  const setFor = (curSetId: number | undefined, curCount: number | undefined, want: readonly Backend[]) => {
    const matches =
      curSetId !== undefined &&
      curCount === want.length &&
      (want.length === 0 || sameBackends(actual.backendSets.get(curSetId), want));
    let setId: number;
    if (matches) {
      setId = curSetId;
      if (setId !== 0) keptSets.add(setId);
    } else if (want.length === 0) {
      setId = 0;
    } else {
      setId = setAlloc.next();
      for (const [index, backend] of want.entries())
        putBackends.push({ op: "put-backend", setId, index, backend });
    }
    if (setId !== 0) liveSets.add(setId);
    return setId;
  };
  for (const [ks, fe] of desired) {
    const svcId = svcIds.get(fe.service)!;
    const cur = actual.frontends.get(ks);
    const setId = setFor(cur?.value.setId, cur?.value.count, fe.backends);
    // a local redirect's fallback: a set of its own beside the local one, written before the flip too
    const fallback = fe.fallback ?? [];
    const fbSetId = setFor(cur?.value.fbSetId, cur?.value.fbCount, fallback);
    const value: FrontendModel = {
      svcId,
      setId,
      count: fe.backends.length,
      affinityTimeoutS: fe.affinityTimeoutS,
      portId: fe.portId,
      fbSetId,
      fbCount: fallback.length,
      qosPerSecond: fe.qosPerSecond ?? 0,
      natType: fe.natType,
      natMode: fe.natMode,
      flags: fe.flags,
    };
    const same =
      cur !== undefined &&
      (Object.keys(value) as Array<keyof FrontendModel>).every((k) => cur.value[k] === value[k]);
    if (!same) putFrontends.push({ op: "put-frontend", key: fe.key, value });
  }

  if (scope) {
    const names = new Set<number>();
    for (const ks of scope.keys) {
      const cur = actual.frontends.get(ks);
      if (!cur) continue;
      if (!desired.has(ks)) delFrontends.push({ op: "delete-frontend", key: cur.key });
      for (const setId of [cur.value.setId, cur.value.fbSetId])
        if (setId !== 0 && !liveSets.has(setId)) {
          deleteSet(setId, actual.backendSets.get(setId) ?? [], delBackends);
          liveSets.add(setId); // deleted once
        }
      names.add(cur.value.svcId);
    }
    const planned = names.size > 0 ? new Set([...svcIds.keys()].map(storedServiceName)) : undefined;
    for (const id of names) {
      const name = actual.names.get(id);
      if (name !== undefined && !scope.ownsFrontends(name) && !planned?.has(name))
        delNames.push({ op: "delete-name", svcId: id });
    }
  } else {
    for (const [ks, cur] of actual.frontends) {
      if (!desired.has(ks)) delFrontends.push({ op: "delete-frontend", key: cur.key });
    }
    for (const [setId, set] of actual.backendSets)
      if (!liveSets.has(setId) && !retiring.has(setId)) deleteSet(setId, set, delBackends);
    const usedNames = new Set([...svcIds.keys()].map(storedServiceName));
    for (const [id, name] of actual.names) {
      if (!usedNames.has(name) || idByName?.get(name) !== id) delNames.push({ op: "delete-name", svcId: id });
    }
  }
  const { putMembers, delMembers } =
    !scope && actual.members
      ? planMembers(actual, actual.members, keptSets, delBackends, retiring)
      : { putMembers: [], delMembers: [] };

  return {
    ops: [
      ...putNodeIps,
      ...delMembers,
      ...putMembers,
      ...putNames,
      ...putBackends,
      ...putFrontends,
      ...delFrontends,
      ...delBackends,
      ...delNames,
      ...delNodeIps,
    ],
    svcIds,
  };
}

/**
 * `sy_members` against the sets: each backend of a kept live set must map to
 * its index (the last one, should a set hold a backend twice); an entry no
 * such set accounts for, and no `delete-backend` of this plan or a set
 * being retired removes, is stray.
 */
function planMembers(
  actual: MapState,
  members: ReadonlyMap<string, number>,
  keptSets: ReadonlySet<number>,
  delBackends: readonly MapOp[],
  retiring: ReadonlySet<number>,
): { putMembers: MapOp[]; delMembers: MapOp[] } {
  const expected = new Map<string, { setId: number; index: number; backend: Backend }>();
  for (const setId of keptSets) {
    const set = actual.backendSets.get(setId) ?? [];
    for (let index = 0; index < set.length; index++) {
      const backend = set[index];
      if (backend) expected.set(memberKey(setId, backend), { setId, index, backend });
    }
  }
  const putMembers: MapOp[] = [];
  for (const [k, m] of expected) if (members.get(k) !== m.index) putMembers.push({ op: "put-member", ...m });
  const removed = new Set<string>();
  for (const o of delBackends) if (o.op === "delete-backend") removed.add(memberKey(o.setId, o.backend));
  const delMembers: MapOp[] = [];
  for (const k of members.keys()) {
    if (expected.has(k) || removed.has(k)) continue;
    const m = parseMemberKey(k);
    if (!retiring.has(m.setId)) delMembers.push({ op: "delete-member", ...m });
  }
  return { putMembers, delMembers };
}
