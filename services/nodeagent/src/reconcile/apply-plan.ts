/**
 * Applies a plan through the `DatapathMaps` port one op at a time, so that
 * an entry the maps refuse (a full backend map, say) does not stop the
 * others: the frontends whose writes land are updated, the failed ones keep
 * what they had, and each failure is reported against its entry (see
 * `RetryLedger` for the names).
 *
 * Make-before-break holds per frontend: a frontend is flipped only after its
 * whole new set (both, for a local redirect with a fallback) and its name landed; when it is not flipped, the part of the
 * new set that landed is deleted again (a set is in the maps whole or not at
 * all, and a full map gets its room back), and the old set and name it still
 * points at are kept. Entries the ledger holds back (`isHeld`: their retry
 * is not due) are skipped the same way, without counting as a failure.
 *
 * What landed is returned in order, so the caller's mirror of the maps
 * follows exactly what was written; nothing needs to be read back.
 *
 * With `retireSets`, the deletions of old sets (the plan's `delete-backend`
 * ops that are not held back) are not applied but returned in `retired`:
 * the caller lands them after a grace period that began after this plan's
 * flips (docs/dataplane.md, "Readers and writers"). The part of a new set
 * undone after a failure is deleted at once: no frontend ever pointed at it.
 */
import { storedServiceName } from "../bpf/layout.ts";
import {
  type ApplyOptions,
  type DatapathMaps,
  type FrontendKeyModel,
  type FrontendModel,
  frontendKeyString,
  type MapOp,
  type MapState,
} from "../bpf/maps.ts";
import { frontendEntry } from "./retry-ledger.ts";

export type ApplyOutcome = {
  /** ops that reached the maps, in order (undone parts of new sets included, then their deletes) */
  landed: MapOp[];
  /** entry → why it is not in step (the adapter's error) */
  failed: Map<string, string>;
  /** entries skipped because their retry is not due */
  held: Set<string>;
  /** entries with at least one op tried */
  tried: Set<string>;
  /** ops tried (landed or failed), not counting undoes or skipped ops */
  triedOps: number;
  /** deletions of old sets left to the caller (`retireSets`), in plan order */
  retired: MapOp[];
};

export type ApplyPlanOptions = {
  /** keep old sets' deletions out of the maps and return them in `retired` */
  retireSets?: boolean;
  /** passed with every write: deferred deletions landing say `setsUnlinkedAt` */
  write?: ApplyOptions;
};

/** a set no frontend ever pointed at: no reader can hold it */
const NEVER_LINKED: ApplyOptions = { setsUnlinkedAt: 0 };

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The entry an op belongs to, for retries and reports. */
function entryOfOp(o: MapOp, actual: MapState, setOwner: ReadonlyMap<number, string>): string {
  switch (o.op) {
    case "put-frontend":
    case "delete-frontend":
      return frontendEntry(frontendKeyString(o.key));
    case "put-backend":
      return setOwner.get(o.setId) ?? `set ${o.setId}`;
    case "delete-backend":
    case "put-member":
    case "delete-member":
      return `set ${o.setId}`;
    case "put-name":
      return `name ${storedServiceName(o.name)}`;
    case "delete-name":
      return `name ${actual.names.get(o.svcId) ?? `#${o.svcId}`}`;
    case "put-node-ip":
    case "delete-node-ip":
      return `node-ip ${o.ip}`;
  }
}

export function applyPlan(
  maps: DatapathMaps,
  ops: readonly MapOp[],
  actual: MapState,
  isHeld: (entry: string) => boolean = () => false,
  opts: ApplyPlanOptions = {},
): ApplyOutcome {
  const out: ApplyOutcome = {
    landed: [],
    failed: new Map(),
    held: new Set(),
    tried: new Set(),
    triedOps: 0,
    retired: [],
  };
  // a new set belongs to the frontend that will point at it; a new name to the frontends that use it
  const setOwner = new Map<number, string>();
  const nameUsers = new Map<number, string[]>();
  for (const o of ops) {
    if (o.op !== "put-frontend") continue;
    const e = frontendEntry(frontendKeyString(o.key));
    if (o.value.setId !== 0) setOwner.set(o.value.setId, e);
    if (o.value.fbSetId !== 0) setOwner.set(o.value.fbSetId, e);
    nameUsers.set(o.value.svcId, [...(nameUsers.get(o.value.svcId) ?? []), e]);
  }
  /** new sets and names that must not be pointed at: why (undefined: held back) */
  const blockedSets = new Map<number, string | undefined>();
  const blockedNames = new Map<number, string | undefined>();
  /** sets and names a frontend still points at because it was not flipped or deleted */
  const keepSets = new Set<number>();
  const keepNames = new Set<number>();
  /** put-backends of this plan that landed, per set (to undo) */
  const written = new Map<number, Array<Extract<MapOp, { op: "put-backend" }>>>();

  const attempt = (o: MapOp, entry: string): string | undefined => {
    out.triedOps++;
    out.tried.add(entry);
    try {
      maps.apply([o], opts.write);
      out.landed.push(o);
      return undefined;
    } catch (e) {
      return errorText(e);
    }
  };
  const undoSet = (setId: number) => {
    const landed = written.get(setId);
    written.delete(setId);
    for (const p of (landed ?? []).reverse()) {
      const del: MapOp = { op: "delete-backend", setId, index: p.index, backend: p.backend };
      try {
        maps.apply([del], NEVER_LINKED);
        out.landed.push(del);
      } catch {
        // left as an unreferenced set: the mirror knows it, and the next full plan deletes it
      }
    }
  };
  const notFlipped = (
    entry: string,
    cur: { key: FrontendKeyModel; value: FrontendModel } | undefined,
    why: string | undefined,
  ) => {
    if (cur) {
      keepSets.add(cur.value.setId);
      keepSets.add(cur.value.fbSetId);
      keepNames.add(cur.value.svcId);
    }
    if (why === undefined) out.held.add(entry);
    else out.failed.set(entry, why);
  };

  for (const o of ops) {
    const entry = entryOfOp(o, actual, setOwner);
    switch (o.op) {
      case "put-name": {
        const users = nameUsers.get(o.svcId) ?? [];
        if (users.length > 0 && users.every(isHeld)) {
          blockedNames.set(o.svcId, undefined);
          continue;
        }
        const err = attempt(o, entry);
        if (err) blockedNames.set(o.svcId, err);
        continue;
      }
      case "put-backend": {
        if (blockedSets.has(o.setId)) continue;
        if (isHeld(entry)) {
          blockedSets.set(o.setId, undefined);
          continue;
        }
        const err = attempt(o, entry);
        if (err) {
          blockedSets.set(o.setId, err);
          undoSet(o.setId);
        } else written.set(o.setId, [...(written.get(o.setId) ?? []), o]);
        continue;
      }
      case "put-frontend": {
        const cur = actual.frontends.get(frontendKeyString(o.key));
        let why: string | undefined;
        if (isHeld(entry)) why = undefined;
        else if (blockedSets.has(o.value.setId)) why = blockedSets.get(o.value.setId);
        else if (blockedSets.has(o.value.fbSetId)) why = blockedSets.get(o.value.fbSetId);
        else if (blockedNames.has(o.value.svcId)) why = blockedNames.get(o.value.svcId);
        else {
          why = attempt(o, entry);
          if (why === undefined) {
            written.delete(o.value.setId);
            written.delete(o.value.fbSetId);
            continue;
          }
        }
        // both of its new sets go again: the frontend still points at its old ones
        undoSet(o.value.setId);
        undoSet(o.value.fbSetId);
        notFlipped(entry, cur, why);
        continue;
      }
      case "delete-frontend": {
        const cur = actual.frontends.get(frontendKeyString(o.key));
        if (isHeld(entry)) notFlipped(entry, cur, undefined);
        else {
          const err = attempt(o, entry);
          if (err) notFlipped(entry, cur, err);
        }
        continue;
      }
      case "delete-backend":
      case "delete-name": {
        const kept = o.op === "delete-backend" ? keepSets.has(o.setId) : keepNames.has(o.svcId);
        // still pointed at by a frontend that stays as it was: goes when that frontend moves on
        if (kept) continue;
        break;
      }
    }
    // independent entries: old sets and names, sy_members repairs, node addresses
    if (isHeld(entry)) {
      out.held.add(entry);
      continue;
    }
    if (opts.retireSets && o.op === "delete-backend") {
      out.retired.push(o);
      continue;
    }
    const err = attempt(o, entry);
    if (err && !out.failed.has(entry)) out.failed.set(entry, err);
  }
  // what a failed entry also tried is not in step either
  for (const e of out.failed.keys()) out.held.delete(e);
  return out;
}
