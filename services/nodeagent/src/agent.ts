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
import { applyOpToState, type Backend, type DatapathMaps, type MapOp, type MapState } from "./bpf/maps.ts";
import { DesiredIndex } from "./desired/compute-desired.ts";
import { type ResourceChange, type ResourceError, ResourceStore } from "./desired/resources.ts";
import { type EntrySync, entriesFromResources, forwardingProblems } from "./entry/entry-sync.ts";
import { computeEventSubject, computeNatEvent, type NatEvent } from "./events/nat-event.ts";
import type { EventPublisher } from "./events/publisher.ts";
import { MapStateIndex, type PlanScope, planMaps } from "./plan/plan-maps.ts";
import { type ApplyOutcome, applyPlan } from "./reconcile/apply-plan.ts";
import { frontendKeyOfEntry, RetryLedger } from "./reconcile/retry-ledger.ts";
import { computeSkipEntries, syncSkipCgroups } from "./reconcile/skip-cgroups.ts";

/** entries named one by one in the log per plan (the rest are counted) */
const LOGGED_ENTRIES = 20;

export type SyncStats = { deltas: number; writes: number; lastPlanOps: number; failures: number };

/**
 * `pinned`: no complete view from a hub yet — the maps are served as they
 * were found; `synced`: a complete view was received and applied (it stays
 * so when the hub goes away: the maps keep the last complete view).
 */
export type SyncState = { state: "pinned" | "synced"; since: string; heldViewFromDisk: boolean };

export class AgentCore {
  readonly store = new ResourceStore();
  private mirror: MapState;
  /** how many backend-set slots hold each backend ("ip|port"): a backend at 0 left the maps */
  private backendRefs: Map<string, number>;
  /** names and free ids of the mirror, for scoped plans */
  private mirrorIndex: MapStateIndex;
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
  readForwarding: (() => { ipv4: string | undefined; ipv6: string | undefined }) | undefined;
  /** called after a complete view was planned into the maps (to keep it on disk) */
  onViewApplied: (() => void) | undefined;
  /** whether a complete view has been received (until then nothing is planned or pruned) */
  private synced = false;
  private syncSince = new Date().toISOString();
  private heldViewFromDisk = false;
  /** whether the maps held nothing when this core started (new maps of a staged upgrade) */
  private readonly startedEmpty: boolean;
  /** whether the held view was planned into new maps (planHeldViewIntoNewMaps) */
  private heldViewPlanned = false;
  /** changes accepted since the last plan: applied together when a message completes the view */
  private pending: ResourceChange[] = [];
  /** deletions of sets that plans unlinked, waiting for the readers of the flip (`retire`) */
  private readonly retirements = new Set<Retirement>();
  /** the ids of those sets: in the maps (taken) until their deletions land, and no plan's business */
  private readonly retiringSets = new Set<number>();
  private landingQueued = false;
  /** resolved when no retirement is left (`whenRetired`) */
  private retiredWaiters: Array<() => void> = [];
  private stopped = false;

  constructor(maps: DatapathMaps, node: string, nodeAddresses: string[], log: Logger) {
    this.maps = maps;
    this.node = node;
    this.nodeAddresses = nodeAddresses;
    this.log = log;
    // what a previous run left in the pinned maps: kept, and diffed against
    this.mirror = maps.read();
    this.backendRefs = countBackends(this.mirror);
    this.mirrorIndex = MapStateIndex.of(this.mirror);
    this.startedEmpty =
      this.mirror.frontends.size === 0 &&
      this.mirror.backendSets.size === 0 &&
      this.mirror.names.size === 0 &&
      this.mirror.nodeIps.size === 0;
    log.info(
      { frontends: this.mirror.frontends.size, services: this.mirror.names.size },
      "maps adopted from pins",
    );
  }

  get syncState(): SyncState {
    return {
      state: this.synced ? "synced" : "pinned",
      since: this.syncSince,
      heldViewFromDisk: this.heldViewFromDisk,
    };
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
    this.heldViewFromDisk = true;
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
    if (!this.startedEmpty)
      throw new Error(
        "planHeldViewIntoNewMaps: the maps held entries at start; wait for a hub's complete view",
      );
    if (!this.heldViewFromDisk) throw new Error("planHeldViewIntoNewMaps: no held view was loaded");
    if (this.synced || this.heldViewPlanned) return undefined;
    this.heldViewPlanned = true;
    this.log.info(
      { resources: this.store.resources.size },
      "held view planned into the new maps (they held nothing); a hub's complete view corrects the difference",
    );
    return this.reconcile();
  }

  /**
   * Whether the maps hold a whole view — a hub's complete view, or the held
   * view planned into new maps — with every entry written (none failing).
   * A staged upgrade is swapped in only then.
   */
  /** whether the maps held nothing when this core started (new maps, or bpffs emptied by a reboot) */
  get mapsStartedEmpty(): boolean {
    return this.startedEmpty;
  }

  /**
   * Whether what the store holds is a complete view — the hub's last one, or
   * the held view loaded from disk — and not a part of a change still
   * arriving: only then may it be kept on disk as the held view.
   */
  get holdsCompleteView(): boolean {
    return this.pending.length === 0 && (this.synced || this.heldViewFromDisk);
  }

  get viewInMaps(): boolean {
    return (this.synced || this.heldViewPlanned) && this.retries.size === 0;
  }

  /** Handles one hub delta; the returned errors become the NACK (empty = ACK). */
  onDelta(msg: StreamAssignmentsResponse): ResourceError[] {
    const t0 = performance.now();
    this.stats.deltas++;
    const outcome = this.store.applyDelta(msg);
    for (const e of outcome.errors)
      this.log.warn({ resource: e.name, reason: e.message }, "resource rejected");
    for (const c of outcome.changes) this.pending.push(c);
    let failure: string | undefined;
    this.stats.lastPlanOps = 0;
    if (msg.viewComplete) failure = this.applyCompleteView();
    this.log.info(
      {
        nonce: msg.nonce,
        changed: msg.resources.length,
        removed: msg.removedResources.length,
        complete: msg.viewComplete,
        held: msg.viewComplete ? 0 : this.pending.length,
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
    const changes = this.pending;
    this.pending = [];
    let failure: string | undefined;
    if (!this.synced) {
      this.synced = true;
      this.syncSince = new Date().toISOString();
      // everything from the store (a held view planned into new maps left an index of the file's view)
      this.desired = undefined;
      try {
        failure = this.reconcile();
      } catch (e) {
        // not applied: the next complete view (or a resumed stream) plans it all again
        this.synced = false;
        this.pending = [...changes, ...this.pending];
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
        this.pending = [...changes, ...this.pending];
        throw e;
      }
    }
    if (!failure) this.onViewApplied?.();
    return failure;
  }

  /** A full plan when a complete view is held (a new zone, say); nothing before. */
  reconcileIfSynced(): string | undefined {
    return this.synced ? this.reconcile() : undefined;
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
      ? { keys, ownsFrontends: (s) => index.ownsFrontends(s), index: this.mirrorIndex }
      : undefined;
    for (const p of index.problems(keys)) this.log.warn({ reason: p }, "frontend conflict");
    const now = this.clock();
    // a delta's or a due retry's entries are tried at once; a full plan leaves failing ones to their backoff
    const isHeld = scope ? undefined : (e: string) => this.retries.isHeld(e, now);
    const want = { frontends: index.frontends, nodeIps: index.nodeIps };
    const run = () => {
      const plan = planMaps(want, this.mirror, scope, this.retiringSets);
      const out = applyPlan(this.maps, plan.ops, this.mirror, isHeld, { retireSets: !!this.maps.readers });
      this.track(out.landed);
      this.retire(out.retired);
      return out;
    };
    let outcome = run();
    if (outcome.failed.size > 0 && this.retirements.size > 0) {
      // the rare fallback: room the retiring sets still hold may be what a full map lacked —
      // land them now (a grace period on this thread, counted) and try once more what failed
      this.landRetiredNow();
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
          retiringSets: this.retiringSets.size,
          graceWaitsBlocking: this.graceWaitsBlocking,
        },
        "maps updated",
      );
    // sy_members as read back serves one full plan; between resyncs it follows from the sets
    if (!scope) delete this.mirror.members;
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
    const want = entriesFromResources(this.store.resources.values(), this.cluster, this.node);
    const out = this.entries.sync(want, verify);
    if (out.written) this.log.info({ entries: out.entries }, "node entry table written");
    if (out.forgotten)
      this.log.info(
        { targets: out.forgotten.targets, conntrackEntries: out.forgotten.deleted },
        "node entry flows of removed pods deleted",
      );
    if (out.flowProblem) this.log.warn({ reason: out.flowProblem }, "node entry flows of removed pods kept");
    for (const p of out.problems)
      this.log.error({ entry: p.entry, reason: p.message }, "node entry not programmed");
    if ((out.written || verify) && this.readForwarding)
      for (const reason of forwardingProblems(want, this.readForwarding()))
        this.log.warn({ reason }, "node entry needs forwarding");
    const first = out.problems[0];
    if (!first) return undefined;
    const more = out.problems.length > 1 ? ` (and ${out.problems.length - 1} more)` : "";
    return `node entry not programmed: ${first.entry}: ${first.message}${more}`;
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
    const want = computeSkipEntries(pods, cgroups, (policy) => this.mirrorIndex.svcIdOf(policy));
    syncSkipCgroups(skips, want, this.log, (id) => this.serviceName(id));
  }

  /** grace periods the map writes waited for on the main thread (the rare fallback; 0 in the common path) */
  get graceWaitsBlocking(): number {
    return this.maps.readers?.blockingWaits ?? 0;
  }

  /** the backend sets unlinked from every frontend whose deletion waits for a grace period */
  get retiringSetCount(): number {
    return this.retiringSets.size;
  }

  /** entries of the maps the agent writes, as its mirror of them knows (no map read) */
  get mapEntries(): Record<string, number> {
    let backends = 0;
    for (const set of this.mirror.backendSets.values()) backends += set.length;
    return {
      sy_frontends: this.mirror.frontends.size,
      sy_backends: backends,
      sy_members: backends,
      sy_svc_names: this.mirror.names.size,
      sy_node_ips: this.mirror.nodeIps.size,
    };
  }

  /** changes received from a hub and not in the maps yet (their view is not complete) */
  get pendingChanges(): number {
    return this.pending.length;
  }

  /** Follows ops that landed in the mirror; tells about backends no set holds any more. */
  private track(landed: readonly MapOp[]): void {
    if (landed.length === 0) return;
    const dead = applyTracked(this.mirror, this.backendRefs, landed, this.mirrorIndex);
    if (dead.length > 0) this.onBackendsRemoved?.(dead);
    this.stats.writes += landed.length;
  }

  /**
   * Old sets a plan unlinked (its frontends flipped or deleted): deleted in a
   * later turn, once a grace period that began after the flips has ended
   * (run off the main thread). Until then they stay in the mirror, so their
   * ids are taken, and plans leave them alone (`retiringSets`).
   */
  private retire(ops: readonly MapOp[]): void {
    const readers = this.maps.readers;
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
        this.landRetired([...this.retirements].filter((x) => x.due));
      });
    });
  }

  /** Deletes retired plans' old sets: no reader can hold them any more, so nothing waits. */
  private landRetired(batch: readonly Retirement[]): void {
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
    const now = this.clock();
    const outcome = applyPlan(this.maps, ops, this.mirror, undefined, { write: { setsUnlinkedAt: mark } });
    this.track(outcome.landed);
    this.log.debug(
      { ops: outcome.landed.length, retiringSets: this.retiringSets.size },
      "retired backend sets deleted",
    );
    // a failed deletion leaves an orphan set: recorded, and the full plan of its retry retires it again
    this.settleRetries(outcome, new Set(), now);
    if (this.retirements.size === 0) for (const w of this.retiredWaiters.splice(0)) w();
  }

  /** Resolves once every set unlinked so far is deleted (or at once when none waits; or when stopped). */
  whenRetired(): Promise<void> {
    if (this.retirements.size === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.retiredWaiters.push(resolve));
  }

  /** Lands every retirement now, waiting on this thread for a grace period if none has covered them. */
  private landRetiredNow(): void {
    const readers = this.maps.readers;
    if (!readers || this.retirements.size === 0) return;
    const batch = [...this.retirements];
    readers.waitForReaders(Math.max(...batch.map((r) => r.mark)));
    this.landRetired(batch);
  }

  /**
   * Records each failed entry (its backoff grows) and each entry the plan
   * left in step (forgotten: its backoff resets), logs what is news, sets
   * the retry timer; returns the NACK text when something failed.
   */
  private settleRetries(
    outcome: ApplyOutcome,
    keys: ReadonlySet<string> | undefined,
    now: number,
  ): string | undefined {
    let logged = 0;
    for (const [entry, reason] of outcome.failed) {
      const { retry, news } = this.retries.fail(entry, reason, now);
      if (news && logged++ < LOGGED_ENTRIES)
        this.log.warn(
          {
            entry,
            service: this.serviceOfEntry(entry),
            reason,
            attempts: retry.attempts,
            retryInMs: retry.retryAt - now,
          },
          "map entry not written; retried with backoff",
        );
    }
    const recovered: string[] = [];
    if (this.retries.size > outcome.failed.size) {
      for (const r of this.retries.entries()) {
        if (outcome.failed.has(r.entry) || outcome.held.has(r.entry)) continue;
        // in step: tried and landed, or planned (full plan, or its frontend in scope) with nothing to write
        const key = frontendKeyOfEntry(r.entry);
        if (outcome.tried.has(r.entry) || !keys || (key !== undefined && keys.has(key))) {
          this.retries.succeed(r.entry);
          recovered.push(r.entry);
        }
      }
    }
    if (recovered.length > 0)
      this.log.info(
        { recovered: recovered.length, entries: recovered.slice(0, LOGGED_ENTRIES) },
        "map entries in step again",
      );
    this.scheduleRetry();
    const first = outcome.failed.entries().next();
    if (first.done) return undefined;
    this.stats.failures++;
    const [entry, reason] = first.value;
    const next = this.retries.nextRetryAt();
    this.log.error(
      {
        failed: outcome.failed.size,
        failing: this.retries.size,
        landed: outcome.landed.length,
        first: entry,
        reason,
        nextRetryInMs: next === undefined ? undefined : next - now,
      },
      "map writes failed; the other entries were written",
    );
    const n = outcome.failed.size;
    return `${n} map ${n === 1 ? "entry" : "entries"} not written (retried with backoff); ${entry}: ${reason}`;
  }

  private serviceOfEntry(entry: string): string | undefined {
    const key = frontendKeyOfEntry(entry);
    return key === undefined ? undefined : this.desired?.frontends.get(key)?.service;
  }

  /** Takes what the maps hold as the truth to plan against. */
  private adopt(state: MapState): void {
    this.mirror = state;
    this.backendRefs = countBackends(state);
    this.mirrorIndex = MapStateIndex.of(state);
  }

  /**
   * Full reconcile: forget what we believe the maps hold, read them back, and
   * write whatever differs from the desired state. Repairs drift (entries
   * changed or removed by anyone else); writes nothing when there is none.
   */
  resync(): number {
    if (!this.synced) {
      // nothing to compare with: what the store holds may be a part of the view
      this.log.info(
        { since: this.syncSince, resources: this.store.resources.size },
        "no complete view from a hub yet; serving the pinned maps as they are",
      );
      return 0;
    }
    this.adopt(this.maps.read());
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
    return this.mirror.names.get(svcId);
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
    this.stopped = true;
    for (const w of this.retiredWaiters.splice(0)) w();
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

/** one plan's deletions of the sets it unlinked, landing after the readers of `mark` */
type Retirement = { mark: number; ops: readonly MapOp[]; due: boolean };

const backendKey = (b: Backend) => `${b.ip}|${b.port}`;

/** Pure: how many backend-set slots hold each backend. */
export function countBackends(state: MapState): Map<string, number> {
  const refs = new Map<string, number>();
  for (const set of state.backendSets.values())
    for (const b of set) if (b) refs.set(backendKey(b), (refs.get(backendKey(b)) ?? 0) + 1);
  return refs;
}

/**
 * Applies ops (already written to the maps) to the mirror and the backend
 * counts; returns the backends that are in no set any more (for UDP sockets
 * to let go of them). Costs the ops, not the size of the maps.
 */
export function applyTracked(
  state: MapState,
  refs: Map<string, number>,
  ops: readonly MapOp[],
  index?: MapStateIndex,
): Backend[] {
  const dropped = new Map<string, Backend>();
  const dec = (b: Backend | undefined) => {
    if (!b) return;
    const k = backendKey(b);
    const n = (refs.get(k) ?? 1) - 1;
    if (n <= 0) {
      refs.delete(k);
      dropped.set(k, b);
    } else refs.set(k, n);
  };
  for (const o of ops) {
    if (o.op === "put-backend") {
      dec(state.backendSets.get(o.setId)?.[o.index]);
      const k = backendKey(o.backend);
      refs.set(k, (refs.get(k) ?? 0) + 1);
    } else if (o.op === "delete-backend") dec(state.backendSets.get(o.setId)?.[o.index]);
    index?.note(state, o);
    applyOpToState(state, o);
  }
  return [...dropped].filter(([k]) => !refs.has(k)).map(([, b]) => b);
}
