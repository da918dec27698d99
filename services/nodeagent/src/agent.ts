/**
 * The agent's wiring: hub deltas → accepted resources → desired frontends →
 * plan against what the maps hold → map writes; ring buffer → named NAT
 * events → publisher. Map write failures are retried here and never reach
 * the hub as anything but a NACK with the reason.
 *
 * Prune only after a complete sync. Until a hub has given this agent a
 * complete view (a message with `view_complete`, or a Welcome saying the
 * view the agent resumed with is current), the agent serves what its pinned
 * maps hold and writes nothing: no plan, no resync, no "drift repair" from a
 * store that holds only part of the view. Messages are applied together when
 * one completes the view, so a cold start's chunks (a Service in one, its
 * slices in the next) land as one change.
 */
import type { Logger } from "@switchyard/lib/log";
import { type Resource, StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import { decodeEvent } from "./bpf/layout.ts";
import type { Backend, DatapathMaps, MapOp } from "./bpf/maps.ts";
import { DesiredIndex } from "./desired/compute-desired.ts";
import { type ResourceChange, type ResourceError, ResourceStore } from "./desired/resources.ts";
import { applyNodeEntries, type ReadForwarding } from "./entry/apply-entries.ts";
import type { EntrySync } from "./entry/entry-sync.ts";
import { computeEventSubject, computeNatEvent, type NatEvent } from "./events/nat-event.ts";
import type { EventPublisher } from "./events/publisher.ts";
import { type PlanScope, planMaps } from "./plan/plan-maps.ts";
import { type ApplyOutcome, applyPlan } from "./reconcile/apply-plan.ts";
import { MapMirror } from "./reconcile/map-mirror.ts";
import { frontendKeyOfEntry, RetryLedger } from "./reconcile/retry-ledger.ts";
import { SetRetirements } from "./reconcile/set-retirements.ts";
import { settleRetries } from "./reconcile/settle-retries.ts";
import { computeSkipEntries, syncSkipCgroups } from "./reconcile/skip-cgroups.ts";
import { type SyncState, ViewSync } from "./state/view-sync.ts";

export type SyncStats = { deltas: number; writes: number; lastPlanOps: number; failures: number };

export class AgentCore {
  readonly store = new ResourceStore();
  /** what the maps hold, as this agent knows (reconcile/map-mirror.ts) */
  private mirror: MapMirror;
  /** the desired frontends, kept up to date delta by delta */
  private desired: DesiredIndex | undefined;
  private readonly maps: DatapathMaps;
  private readonly log: Logger;
  cluster = "";
  readonly node: string;
  nodeAddresses: string[];
  readonly stats: SyncStats = { deltas: 0, writes: 0, lastPlanOps: 0, failures: 0 };
  private retryTimer: NodeJS.Timeout | undefined;
  private retryTimerAt: number | undefined;
  /** map entries that failed to be written: why, and when each is tried again (its own backoff) */
  readonly retries = new RetryLedger();
  /** the clock of retry backoff (ms); tests set a fake one */
  clock: () => number = () => Date.now();
  onEventHook: ((e: NatEvent) => void) | undefined;
  /** this node's topology zone (--zone, else the hub's Welcome), for trafficDistribution */
  zone: string | undefined;
  /** called with backends no frontend uses any more, after the maps stopped pointing at them */
  onBackendsRemoved: ((dead: Backend[]) => void) | undefined;
  /**
   * skipRedirectFromBackend: pod UID → the cgroup ids of the pod and its
   * containers (a bounded walk of the agent's cgroup tree; unset: no skips)
   */
  findPodCgroups: ((uids: readonly string[]) => Map<string, bigint[]>) | undefined;
  /** node-entry DNAT (nftables, docs/dataplane.md "Node entry DNAT"); unset: this agent programs none */
  entries: EntrySync | undefined;
  /** the forwarding sysctls an entry node needs (checked when its entries are written and at every resync) */
  readForwarding: ReadForwarding | undefined;
  /** called after a complete view was planned into the maps (to keep it on disk) */
  onViewApplied: (() => void) | undefined;
  /** pinned or synced, the held view, the changes held until the view is complete (state/view-sync.ts) */
  private readonly sync: ViewSync;
  /** deletions of sets that plans unlinked, waiting for the readers of the flip (reconcile/set-retirements.ts) */
  private readonly retiring: SetRetirements;

  constructor(maps: DatapathMaps, node: string, nodeAddresses: string[], log: Logger) {
    this.maps = maps;
    this.node = node;
    this.nodeAddresses = nodeAddresses;
    this.log = log;
    this.retiring = new SetRetirements(
      () => this.maps.readers,
      (ops, mark) => this.landRetired(ops, mark),
    );
    // what a previous run left in the pinned maps: kept, and diffed against
    this.mirror = new MapMirror(maps.read());
    this.sync = new ViewSync(this.mirror.isEmpty);
    log.info(
      { frontends: this.mirror.state.frontends.size, services: this.mirror.state.names.size },
      "maps adopted from pins",
    );
  }

  get syncState(): SyncState {
    return this.sync.state;
  }

  /**
   * Takes a view kept on disk by an earlier run as what is held: its version
   * goes in the Hello, so the hub sends only what changed. Nothing is written
   * to the maps: they may be newer than the file, and the hub decides.
   * Returns an error text when the resources do not add up to the file's
   * view version (the store is then left empty).
   */
  loadHeldView(resources: Resource[], viewVersion: string): string | undefined {
    const outcome = this.store.applyDelta(StreamAssignmentsResponse.fromPartial({ resources }));
    const problem =
      outcome.errors.length > 0
        ? `${outcome.errors.length} resource(s) refused, first ${outcome.errors[0]!.name}: ${outcome.errors[0]!.message}`
        : this.store.viewVersion !== viewVersion
          ? `its resources make view version ${this.store.viewVersion}, its header says ${viewVersion}`
          : undefined;
    if (problem) {
      this.store.clear();
      return problem;
    }
    this.sync.heldViewLoaded();
    this.log.info({ resources: resources.length, viewVersion }, "held view resumed from the state directory");
    return undefined;
  }

  /**
   * Only for maps this start created empty — an upgrade staged beside a
   * previous build's maps, which its programs serve from until the new maps
   * hold a view: plans the view loaded from disk (`loadHeldView`) into them
   * at once, with or without a hub. The held view is complete by
   * construction (written only after a complete view was applied) and maps
   * that hold nothing have nothing to prune, so the rule "no plan before a
   * complete view" is kept: nothing the maps held is lost. The agent still
   * counts as not synced until a hub gives it a complete view (no resync,
   * deltas held until one completes the view). Returns the failure text when
   * entries were not written (retried with backoff, as always).
   */
  planHeldViewIntoNewMaps(): string | undefined {
    if (!this.sync.planHeldView()) return undefined;
    this.log.info(
      { resources: this.store.resources.size },
      "held view planned into the new maps (they held nothing); a hub's complete view corrects the difference",
    );
    return this.reconcile();
  }

  /** whether the maps held nothing when this core started (new maps, or bpffs emptied by a reboot) */
  get mapsStartedEmpty(): boolean {
    return this.sync.startedEmpty;
  }

  /**
   * Whether what the store holds is a complete view — the hub's last one, or
   * the held view loaded from disk — and not a part of a change still
   * arriving: only then may it be kept on disk as the held view.
   */
  get holdsCompleteView(): boolean {
    return this.sync.holdsCompleteView;
  }

  /**
   * Whether the maps hold a whole view — a hub's complete view, or the held
   * view planned into new maps — with every entry written (none failing).
   * A staged upgrade is swapped in only then.
   */
  get viewInMaps(): boolean {
    return this.sync.viewPlanned && this.retries.size === 0;
  }

  /** Handles one hub delta; the returned errors become the NACK (empty = ACK). */
  onDelta(msg: StreamAssignmentsResponse): ResourceError[] {
    const t0 = performance.now();
    this.stats.deltas++;
    const outcome = this.store.applyDelta(msg);
    for (const e of outcome.errors)
      this.log.warn({ resource: e.name, reason: e.message }, "resource rejected");
    this.sync.hold(outcome.changes);
    let failure: string | undefined;
    this.stats.lastPlanOps = 0;
    if (msg.viewComplete) failure = this.applyCompleteView();
    this.log.info(
      {
        nonce: msg.nonce,
        changed: msg.resources.length,
        removed: msg.removedResources.length,
        complete: msg.viewComplete,
        held: msg.viewComplete ? 0 : this.sync.pendingCount,
        ops: this.stats.lastPlanOps,
        rejected: outcome.errors.length,
        ms: Math.round((performance.now() - t0) * 10) / 10,
      },
      msg.viewComplete ? "delta applied" : "delta held until the view is complete",
    );
    return failure ? [...outcome.errors, { name: "(datapath)", message: failure }] : outcome.errors;
  }

  /**
   * The hub says the agent holds its whole view (a resume whose version is
   * current): the first time, plan everything against the maps.
   */
  onViewInSync(): string | undefined {
    return this.applyCompleteView();
  }

  /** The store holds a complete view: plan what changed since the last plan (everything, the first time). */
  private applyCompleteView(): string | undefined {
    const taken = this.sync.complete();
    const { changes } = taken;
    let failure: string | undefined;
    if (taken.first) {
      // everything from the store (a held view planned into new maps left an index of the file's view)
      this.desired = undefined;
      try {
        failure = this.reconcile();
      } catch (e) {
        // not applied: the next complete view (or a resumed stream) plans it all again
        this.sync.undo(taken);
        throw e;
      }
      // after the plan, with what it wrote: the line says the maps now follow the hub
      this.log.info(
        { resources: this.store.resources.size, ops: this.stats.lastPlanOps, failed: failure !== undefined },
        "complete view from the hub; maps follow it from now on (pruning what it does not hold)",
      );
    } else if (changes.length > 0) {
      try {
        failure = this.reconcile(changes);
      } catch (e) {
        this.sync.undo(taken);
        throw e;
      }
    }
    if (!failure) this.onViewApplied?.();
    return failure;
  }

  /** A full plan when a complete view is held (a new zone, say); nothing before. */
  reconcileIfSynced(): string | undefined {
    return this.sync.synced ? this.reconcile() : undefined;
  }

  /**
   * Makes the maps match the accepted resources; returns an error text when a
   * write failed (for the NACK). With `changes` (one delta's accepted
   * changes) only the Services they touch are recomputed and only their
   * frontends planned; with `retryKeys`, only those frontends (failed ones
   * whose retry is due); with neither, everything (start, resync, a new node
   * identity, a retry of other entries).
   *
   * The plan is applied entry by entry (`applyPlan`): an entry the maps
   * refuse keeps what it had, is recorded with its reason and retried on its
   * own backoff, and the others land. The mirror follows exactly what landed,
   * so nothing is read back after a failure.
   */
  reconcile(changes?: readonly ResourceChange[], retryKeys?: ReadonlySet<string>): string | undefined {
    const node = { name: this.node, addresses: this.nodeAddresses, zone: this.zone };
    let keys: ReadonlySet<string> | undefined;
    if (!this.desired?.isFor(node)) {
      // first time, or the node's addresses or zone changed: every Service is computed again
      this.desired = new DesiredIndex(node);
      this.desired.update(
        Array.from(this.store.resources.values(), (r) => ({ before: undefined, after: r })),
      );
    } else if (changes) keys = this.desired.update(changes);
    else if (retryKeys) keys = retryKeys;
    const index = this.desired;
    const scope: PlanScope | undefined = keys
      ? { keys, ownsFrontends: (s) => index.ownsFrontends(s), index: this.mirror.index }
      : undefined;
    for (const p of index.problems(keys)) this.log.warn({ reason: p }, "frontend conflict");
    const now = this.clock();
    // a delta's or a due retry's entries are tried at once; a full plan leaves failing ones to their backoff
    const isHeld = scope ? undefined : (e: string) => this.retries.isHeld(e, now);
    const want = { frontends: index.frontends, nodeIps: index.nodeIps };
    const run = () => {
      const plan = planMaps(want, this.mirror.state, scope, this.retiring.sets);
      const out = applyPlan(this.maps, plan.ops, this.mirror.state, isHeld, {
        retireSets: !!this.maps.readers,
      });
      this.track(out.landed);
      this.retiring.retire(out.retired);
      return out;
    };
    let outcome = run();
    if (outcome.failed.size > 0 && this.retiring.pending > 0) {
      // the rare fallback: room the retiring sets still hold may be what a full map lacked —
      // land them now (a grace period on this thread, counted) and try once more what failed
      this.retiring.landNow();
      const again = run();
      outcome = {
        landed: [...outcome.landed, ...again.landed],
        failed: again.failed,
        held: again.held,
        tried: new Set([...outcome.tried, ...again.tried]),
        triedOps: outcome.triedOps + again.triedOps,
        retired: [],
      };
    }
    this.stats.lastPlanOps = outcome.triedOps;
    if (outcome.landed.length > 0)
      this.log.info(
        {
          ops: outcome.landed.length,
          frontends: index.frontends.size,
          retiringSets: this.retiring.sets.size,
          graceWaitsBlocking: this.graceWaitsBlocking,
        },
        "maps updated",
      );
    // sy_members as read back serves one full plan; between resyncs it follows from the sets
    if (!scope) delete this.mirror.state.members;
    // the policies' pod cgroups: on a change of policies or their pods, and on every full plan (start, resync)
    if (changes ? changes.some(isPolicyChange) : !retryKeys) this.syncSkipCgroups();
    // the entry table: on a change of this node's entry resource, and read back on every full plan (start, resync)
    const entryFailure = (changes ? changes.some(isEntryChange) : !retryKeys)
      ? this.syncEntries(!changes)
      : undefined;
    const mapFailure = this.settleRetries(outcome, keys, now);
    return mapFailure && entryFailure ? `${mapFailure}; ${entryFailure}` : (mapFailure ?? entryFailure);
  }

  /**
   * The node's entry DNAT follows its `entry/<cluster>/<node>` resource
   * (entry/entry-sync.ts); returns the NACK text when something could not be
   * programmed (a full plan, `verify`, tries again: every resync).
   */
  private syncEntries(verify: boolean): string | undefined {
    if (!this.entries) return undefined;
    const where = { cluster: this.cluster, node: this.node };
    return applyNodeEntries(
      this.entries,
      this.store.resources.values(),
      where,
      verify,
      this.readForwarding,
      this.log,
    );
  }

  /** `sy_lrp_skip` follows the skip-from-backend policies' local pods (reconcile/skip-cgroups.ts). */
  private syncSkipCgroups(): void {
    const skips = this.maps.skips;
    if (!skips || !this.desired) return;
    const pods = this.desired.skipPods();
    const cgroups =
      pods.size > 0 && this.findPodCgroups
        ? this.findPodCgroups([...new Set([...pods.values()].flat())])
        : new Map<string, bigint[]>();
    const want = computeSkipEntries(pods, cgroups, (policy) => this.mirror.index.svcIdOf(policy));
    syncSkipCgroups(skips, want, this.log, (id) => this.serviceName(id));
  }

  /** grace periods the map writes waited for on the main thread (the rare fallback; 0 in the common path) */
  get graceWaitsBlocking(): number {
    return this.maps.readers?.blockingWaits ?? 0;
  }

  /** the backend sets unlinked from every frontend whose deletion waits for a grace period */
  get retiringSetCount(): number {
    return this.retiring.sets.size;
  }

  /** entries of the maps the agent writes, as its mirror of them knows (no map read) */
  get mapEntries(): Record<string, number> {
    return this.mirror.entryCounts;
  }

  /** changes received from a hub and not in the maps yet (their view is not complete) */
  get pendingChanges(): number {
    return this.sync.pendingCount;
  }

  /** Follows ops that landed in the mirror; tells about backends no set holds any more. */
  private track(landed: readonly MapOp[]): void {
    if (landed.length === 0) return;
    const dead = this.mirror.track(landed);
    if (dead.length > 0) this.onBackendsRemoved?.(dead);
    this.stats.writes += landed.length;
  }

  /** Deletes retired plans' old sets (their readers are gone, so nothing waits) and follows what landed. */
  private landRetired(ops: MapOp[], mark: number): void {
    const now = this.clock();
    const outcome = applyPlan(this.maps, ops, this.mirror.state, undefined, {
      write: { setsUnlinkedAt: mark },
    });
    this.track(outcome.landed);
    this.log.debug(
      { ops: outcome.landed.length, retiringSets: this.retiring.sets.size },
      "retired backend sets deleted",
    );
    // a failed deletion leaves an orphan set: recorded, and the full plan of its retry retires it again
    this.settleRetries(outcome, new Set(), now);
  }

  /** Resolves once every set unlinked so far is deleted (or at once when none waits; or when stopped). */
  whenRetired(): Promise<void> {
    return this.retiring.whenRetired();
  }

  /** Settles the retry ledger after a plan (reconcile/settle-retries.ts) and sets the retry timer; returns the NACK text. */
  private settleRetries(
    outcome: ApplyOutcome,
    keys: ReadonlySet<string> | undefined,
    now: number,
  ): string | undefined {
    const nack = settleRetries(this.retries, outcome, keys, now, this.log, (e) => this.serviceOfEntry(e));
    this.scheduleRetry();
    if (nack !== undefined) this.stats.failures++;
    return nack;
  }

  private serviceOfEntry(entry: string): string | undefined {
    const key = frontendKeyOfEntry(entry);
    return key === undefined ? undefined : this.desired?.frontends.get(key)?.service;
  }

  /**
   * Full reconcile: forget what we believe the maps hold, read them back, and
   * write whatever differs from the desired state. Repairs drift (entries
   * changed or removed by anyone else); writes nothing when there is none.
   */
  resync(): number {
    if (!this.sync.synced) {
      // nothing to compare with: what the store holds may be a part of the view
      this.log.info(
        { since: this.sync.since, resources: this.store.resources.size },
        "no complete view from a hub yet; serving the pinned maps as they are",
      );
      return 0;
    }
    this.mirror = new MapMirror(this.maps.read());
    const failure = this.reconcile();
    if (failure) return -1;
    if (this.stats.lastPlanOps > 0)
      this.log.warn({ ops: this.stats.lastPlanOps }, "maps had drifted; repaired");
    return this.stats.lastPlanOps;
  }

  /** Sets the timer for the next entry that falls due (none when nothing is failing). */
  private scheduleRetry(): void {
    const at = this.retries.nextRetryAt();
    if (this.retryTimer && this.retryTimerAt === at) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.retryTimerAt = at;
    if (at === undefined) return;
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = undefined;
        this.retryDue();
      },
      Math.max(0, at - this.clock()),
    );
    this.retryTimer.unref();
  }

  /**
   * Tries again the entries whose backoff ran out: only those frontends when
   * they all are frontends, else a full plan against the mirror (entries not
   * yet due stay held). Nothing is read back from the maps.
   */
  retryDue(): string | undefined {
    const due = this.retries.due(this.clock());
    if (due.length === 0 || !this.desired) {
      this.scheduleRetry();
      return undefined;
    }
    const keys = new Set<string>();
    for (const r of due) {
      const key = frontendKeyOfEntry(r.entry);
      if (key === undefined) return this.reconcile();
      keys.add(key);
    }
    return this.reconcile(undefined, keys);
  }

  serviceName(svcId: number): string | undefined {
    return this.mirror.state.names.get(svcId);
  }

  /** Decodes one ring-buffer record and publishes it. */
  handleEventRecord(record: Buffer, publisher: EventPublisher | undefined, subjectPrefix: string): void {
    const ev = computeNatEvent(decodeEvent(record), {
      cluster: this.cluster,
      node: this.node,
      serviceName: (id) => this.serviceName(id),
      nowWallMs: Date.now(),
      nowMonoNs: process.hrtime.bigint(),
    });
    publisher?.publish(computeEventSubject(subjectPrefix, ev), ev);
    this.onEventHook?.(ev);
  }

  /**
   * No map write after this (the maps may be closed next). Retirements not
   * yet landed stay in the maps as unreferenced sets: the next start's first
   * full plan retires them.
   */
  stop(): void {
    this.retiring.stop();
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }
}

function isEntryChange(c: ResourceChange): boolean {
  return c.before?.body?.$case === "nodeEntry" || c.after?.body?.$case === "nodeEntry";
}

function isPolicyChange(c: ResourceChange): boolean {
  const kinds = [c.before?.body?.$case, c.after?.body?.$case];
  return kinds.includes("localRedirect") || kinds.includes("localBackends");
}
