/**
 * Old backend sets a plan unlinked (its frontends flipped or deleted) are
 * deleted in a later turn, once a grace period that began after the flips
 * has ended (run off the main thread). Until then they stay in the mirror,
 * so their ids are taken, and plans leave them alone (`sets`). This holds
 * the waiting deletions and lands them together; the caller writes them.
 */
import type { MapOp, MapReaders } from "../bpf/maps.ts";

/** one plan's deletions of the sets it unlinked, landing after the readers of `mark` */
type Retirement = { mark: number; ops: readonly MapOp[]; due: boolean };

/** writes a batch of retired deletions; `mark`: the latest write their sets were unlinked at */
export type LandRetired = (ops: MapOp[], mark: number) => void;

export class SetRetirements {
  private readonly retirements = new Set<Retirement>();
  /** the ids of the retiring sets: in the maps (taken) until their deletions land, and no plan's business */
  private readonly retiringSets = new Set<number>();
  private landingQueued = false;
  /** resolved when no retirement is left (`whenRetired`) */
  private waiters: Array<() => void> = [];
  private stopped = false;
  private readonly readers: () => MapReaders | undefined;
  private readonly land: LandRetired;

  constructor(readers: () => MapReaders | undefined, land: LandRetired) {
    this.readers = readers;
    this.land = land;
  }

  /** the ids of the sets whose deletion waits for a grace period */
  get sets(): ReadonlySet<number> {
    return this.retiringSets;
  }

  /** how many plans' deletions wait */
  get pending(): number {
    return this.retirements.size;
  }

  /** Holds a plan's deletions of the sets it unlinked until a grace period has covered them. */
  retire(ops: readonly MapOp[]): void {
    const readers = this.readers();
    if (ops.length === 0 || !readers) return;
    const r: Retirement = { mark: readers.mark(), ops, due: false };
    for (const o of ops) if (o.op === "delete-backend") this.retiringSets.add(o.setId);
    this.retirements.add(r);
    readers.afterReaders(r.mark, () => {
      r.due = true;
      // retirements a grace period releases together land together (one write burst, one UDP socket walk)
      if (this.landingQueued) return;
      this.landingQueued = true;
      setImmediate(() => {
        this.landingQueued = false;
        this.landBatch([...this.retirements].filter((x) => x.due));
      });
    });
  }

  /** Deletes retired plans' old sets: no reader can hold them any more, so nothing waits. */
  private landBatch(batch: readonly Retirement[]): void {
    if (this.stopped || batch.length === 0) return;
    const ops: MapOp[] = [];
    let mark = 0;
    for (const r of batch) {
      this.retirements.delete(r);
      for (const o of r.ops) {
        if (o.op === "delete-backend") this.retiringSets.delete(o.setId);
        ops.push(o);
      }
      mark = Math.max(mark, r.mark);
    }
    this.land(ops, mark);
    if (this.retirements.size === 0) for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves once every set unlinked so far is deleted (or at once when none waits; or when stopped). */
  whenRetired(): Promise<void> {
    if (this.retirements.size === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Lands every retirement now, waiting on this thread for a grace period if none has covered them. */
  landNow(): void {
    const readers = this.readers();
    if (!readers || this.retirements.size === 0) return;
    const batch = [...this.retirements];
    readers.waitForReaders(Math.max(...batch.map((r) => r.mark)));
    this.landBatch(batch);
  }

  /** No landing after this; whoever waits is let go. */
  stop(): void {
    this.stopped = true;
    for (const w of this.waiters.splice(0)) w();
  }
}
