/**
 * Where the agent stands with its hubs (no I/O): `pinned` until a hub has
 * given it a complete view, then `synced`; whether the held view was loaded
 * from disk or planned into maps that held nothing; and the changes
 * accepted since the last plan, held until a message completes the view.
 * Prune only after a complete sync: until then nothing is planned from a
 * store that may hold only part of the view.
 */
import type { ResourceChange } from "../desired/resources.ts";

/**
 * `pinned`: no complete view from a hub yet — the maps are served as they
 * were found; `synced`: a complete view was received and applied (it stays
 * so when the hub goes away: the maps keep the last complete view).
 */
export type SyncState = { state: "pinned" | "synced"; since: string; heldViewFromDisk: boolean };

export class ViewSync {
  /** whether a complete view has been received (until then nothing is planned or pruned) */
  private isSynced = false;
  private syncSince: string;
  private heldViewFromDisk = false;
  /** whether the maps held nothing when the agent started (new maps of a staged upgrade) */
  readonly startedEmpty: boolean;
  /** whether the held view was planned into new maps (planHeldViewIntoNewMaps) */
  private heldViewPlanned = false;
  /** changes accepted since the last plan: applied together when a message completes the view */
  private pending: ResourceChange[] = [];
  private readonly now: () => Date;

  constructor(startedEmpty: boolean, now: () => Date = () => new Date()) {
    this.startedEmpty = startedEmpty;
    this.now = now;
    this.syncSince = now().toISOString();
  }

  get synced(): boolean {
    return this.isSynced;
  }

  /** since when the agent is pinned or synced */
  get since(): string {
    return this.syncSince;
  }

  get state(): SyncState {
    return {
      state: this.isSynced ? "synced" : "pinned",
      since: this.syncSince,
      heldViewFromDisk: this.heldViewFromDisk,
    };
  }

  /** changes received from a hub and not planned yet (their view is not complete) */
  get pendingCount(): number {
    return this.pending.length;
  }

  /** Holds accepted changes until a message completes the view. */
  hold(changes: readonly ResourceChange[]): void {
    for (const c of changes) this.pending.push(c);
  }

  /** The store holds the view kept on disk by an earlier run. */
  heldViewLoaded(): void {
    this.heldViewFromDisk = true;
  }

  /**
   * Whether the held view is to be planned into the maps now (only into maps
   * that held nothing at start, and once, and not after a hub's complete
   * view); throws when that is asked of maps that held entries, or with no
   * held view loaded.
   */
  planHeldView(): boolean {
    if (!this.startedEmpty)
      throw new Error(
        "planHeldViewIntoNewMaps: the maps held entries at start; wait for a hub's complete view",
      );
    if (!this.heldViewFromDisk) throw new Error("planHeldViewIntoNewMaps: no held view was loaded");
    if (this.isSynced || this.heldViewPlanned) return false;
    this.heldViewPlanned = true;
    return true;
  }

  /**
   * Whether what the store holds is a complete view — the hub's last one, or
   * the held view loaded from disk — and not a part of a change still
   * arriving: only then may it be kept on disk as the held view.
   */
  get holdsCompleteView(): boolean {
    return this.pending.length === 0 && (this.isSynced || this.heldViewFromDisk);
  }

  /** whether the maps were given a whole view: a hub's complete view, or the held view planned into new maps */
  get viewPlanned(): boolean {
    return this.isSynced || this.heldViewPlanned;
  }

  /**
   * A message completed the view: takes the changes held since the last
   * plan; `first`: this is the first complete view (now synced, and
   * everything is to be planned).
   */
  complete(): { changes: ResourceChange[]; first: boolean } {
    const changes = this.pending;
    this.pending = [];
    if (this.isSynced) return { changes, first: false };
    this.isSynced = true;
    this.syncSince = this.now().toISOString();
    return { changes, first: true };
  }

  /** The plan of a completed view threw: its changes are held again (and a first view is not synced). */
  undo(taken: { changes: ResourceChange[]; first: boolean }): void {
    if (taken.first) this.isSynced = false;
    this.pending = [...taken.changes, ...this.pending];
  }
}
