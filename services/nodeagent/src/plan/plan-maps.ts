/**
 * Pure: desired frontends + what the maps hold → the map operations that
 * make the maps equal to the desired state, make-before-break:
 *
 *   1. names of new services,
 *   2. new backend sets, written beside the live ones,
 *   3. frontends flipped to their new set (one update each: atomic for a connect),
 *   4. frontends no longer wanted deleted,
 *   5. backend sets no longer referenced deleted,
 *   6. names no longer used deleted.
 *
 * Nothing that already matches is written, so an agent restarted against
 * unchanged assignments performs zero writes.
 *
 * With a scope (the frontend keys a delta may have changed) only those
 * frontends, their backend sets and their Services' names are compared:
 * one endpoint change plans one frontend, not the whole view. Orphans
 * outside any scope (left by someone else) are for the full plan of a
 * resync.
 */

import type { Backend, FrontendModel, MapOp, MapState } from "../bpf/maps.ts";
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

  svcIdOf(name: string): number | undefined {
    return this.idByName.get(name);
  }

  /** One op, before it is applied to `state` (a deleted name is looked up there). */
  note(state: MapState, o: MapOp): void {
    if (o.op === "put-name") {
      if (!this.idByName.has(o.name)) this.idByName.set(o.name, o.svcId);
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
  const idOf = (name: string) => (idByName ? idByName.get(name) : scope!.index.svcIdOf(name));
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
  for (const [ks, fe] of desired) {
    const svcId = svcIds.get(fe.service)!;
    const cur = actual.frontends.get(ks);
    const curSet = cur ? actual.backendSets.get(cur.value.setId) : undefined;
    const setMatches =
      cur !== undefined &&
      cur.value.count === fe.backends.length &&
      (fe.backends.length === 0 || sameBackends(curSet, fe.backends));
    let setId: number;
    if (setMatches) {
      setId = cur!.value.setId;
    } else if (fe.backends.length === 0) {
      setId = 0;
    } else {
      setId = setAlloc.next();
      for (const [index, backend] of fe.backends.entries())
        putBackends.push({ op: "put-backend", setId, index, backend });
    }
    if (setId !== 0) liveSets.add(setId);
    const value: FrontendModel = {
      svcId,
      setId,
      count: fe.backends.length,
      affinityTimeoutS: fe.affinityTimeoutS,
      portId: fe.portId,
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
      const setId = cur.value.setId;
      if (setId !== 0 && !liveSets.has(setId))
        deleteSet(setId, actual.backendSets.get(setId) ?? [], delBackends);
      names.add(cur.value.svcId);
    }
    for (const id of names) {
      const name = actual.names.get(id);
      if (name !== undefined && !scope.ownsFrontends(name) && !svcIds.has(name))
        delNames.push({ op: "delete-name", svcId: id });
    }
  } else {
    for (const [ks, cur] of actual.frontends) {
      if (!desired.has(ks)) delFrontends.push({ op: "delete-frontend", key: cur.key });
    }
    for (const [setId, set] of actual.backendSets)
      if (!liveSets.has(setId)) deleteSet(setId, set, delBackends);
    const usedNames = new Set(svcIds.keys());
    for (const [id, name] of actual.names) {
      if (!usedNames.has(name) || idByName?.get(name) !== id) delNames.push({ op: "delete-name", svcId: id });
    }
  }

  return {
    ops: [
      ...putNodeIps,
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
