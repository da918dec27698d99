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

class IdAllocator {
  private used: Set<number> | undefined;
  private cursor = 1;
  private readonly source: () => Iterable<number>;
  /** the used ids are collected on the first allocation only */
  constructor(used: () => Iterable<number>) {
    this.source = used;
  }
  next(): number {
    if (!this.used) {
      this.used = new Set(this.source());
      for (const u of this.used) if (u >= this.cursor) this.cursor = u + 1;
    }
    for (;;) {
      if (this.cursor > 0xffffffff) this.cursor = 1;
      const id = this.cursor++;
      if (!this.used.has(id)) {
        this.used.add(id);
        return id;
      }
    }
  }
}

/** A partial plan: these frontend keys only; `ownsFrontends` tells whether a Service still needs its name. */
export type PlanScope = { keys: ReadonlySet<string>; ownsFrontends: (service: string) => boolean };

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

  // service ids: reuse what the maps already name
  const idByName = new Map<string, number>();
  for (const [id, name] of actual.names) if (!idByName.has(name)) idByName.set(name, id);
  const svcIdAlloc = new IdAllocator(() => actual.names.keys());
  const svcIds = new Map<string, number>();
  for (const fe of desired.values()) {
    if (svcIds.has(fe.service)) continue;
    let id = idByName.get(fe.service);
    if (id === undefined) {
      id = svcIdAlloc.next();
      putNames.push({ op: "put-name", svcId: id, name: fe.service });
    }
    svcIds.set(fe.service, id);
  }

  const setAlloc = new IdAllocator(() => actual.backendSets.keys());
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
      if (!usedNames.has(name) || idByName.get(name) !== id) delNames.push({ op: "delete-name", svcId: id });
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
