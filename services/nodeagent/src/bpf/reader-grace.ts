/**
 * When the agent must wait for the programs before its next map write.
 *
 * A program holds a pointer to a map element only while it runs, inside an
 * RCU read-side section. The kernel's hash maps hand an element that was
 * deleted or replaced to the very next insert or update (preallocated maps
 * through their free lists; BPF_F_NO_PREALLOC maps through bpf_mem_alloc's
 * per-CPU caches, since Linux 6.1) without waiting for those readers. Two
 * rules keep every reader's element intact and every set it looked up
 * whole (docs/dataplane.md, "Readers and writers"):
 *
 *   1. No element is allocated in a map the programs read while an element
 *      freed there may still be held: after a delete, a grace period passes
 *      before the next insert into that map.
 *   2. No backend-set entry is deleted while a reader may still hold the set
 *      id: after a frontend is written or deleted, a grace period passes
 *      before the next deletion from sy_backends or sy_members.
 *
 * A grace period is one RCU grace period of the whole machine
 * (membarrier(MEMBARRIER_CMD_GLOBAL) = synchronize_rcu()): every program run
 * that started before it has returned. `ReaderGrace` tracks the two rules
 * op by op. The agent keeps both off its main thread: it retires the sets a
 * plan unlinked (`afterReaders`: their deletions land in a later turn, after
 * a grace period run on a worker thread), and deletions so announced
 * (`setsUnlinkedAt`) neither wait nor count as frees, since no reader can
 * hold an element of such a set. What is left — an insert right after a
 * frontend or node address was deleted, before the grace period started
 * after that plan (`settleSoon`) has ended, or a set deletion not announced
 * as retired — waits on the calling thread, counted in `blockingWaits`.
 */
import os from "node:os";
import { SwitchyardError } from "@switchyard/lib/errors";
import { errnoName, koffi } from "./libbpf.ts";
import type { ApplyOptions, MapOp, MapReaders } from "./maps.ts";

/** The maps the programs look up (sy_svc_names is the agent's alone; the LRU maps are the programs' own). */
type ReadMap = "sy_frontends" | "sy_backends" | "sy_members" | "sy_node_ips";

type OpEffect = {
  /** maps this op may insert an element into (and so reuse a freed one) */
  allocates: readonly ReadMap[];
  /** maps this op deletes an element from */
  frees: readonly ReadMap[];
  /** a frontend changed: a set id it held may now be held only by readers */
  unlinksSets: boolean;
  /** deletes an entry of a backend set */
  dropsSetEntries: boolean;
};

const NONE: OpEffect = { allocates: [], frees: [], unlinksSets: false, dropsSetEntries: false };
const SET_MAPS: readonly ReadMap[] = ["sy_backends", "sy_members"];

/**
 * Pure: what an op does to the maps the programs read. Puts of set entries
 * go to set ids no frontend points at (the planner allocates fresh ones),
 * and a frontend put with BPF_F_LOCK rewrites in place, so no put counts as
 * a free.
 */
export function opEffect(o: MapOp): OpEffect {
  switch (o.op) {
    case "put-backend":
      return { ...NONE, allocates: SET_MAPS };
    case "put-member":
      return { ...NONE, allocates: ["sy_members"] };
    case "delete-backend":
      return { ...NONE, frees: SET_MAPS, dropsSetEntries: true };
    case "delete-member":
      return { ...NONE, frees: ["sy_members"], dropsSetEntries: true };
    case "put-frontend":
      return { ...NONE, allocates: ["sy_frontends"], unlinksSets: true };
    case "delete-frontend":
      return { ...NONE, frees: ["sy_frontends"], unlinksSets: true };
    case "put-node-ip":
      return { ...NONE, allocates: ["sy_node_ips"] };
    case "delete-node-ip":
      return { ...NONE, frees: ["sy_node_ips"] };
    case "put-name":
    case "delete-name":
      return NONE;
  }
}

/**
 * Waits for one grace period. `settle`, when given, runs one off the main
 * thread and calls back with whether it completed (a failed one covers
 * nothing).
 */
export type GracePeriod = {
  wait(): void;
  settle?: (done: (ok: boolean) => void) => void;
  /** how the wait is made, for the log: "membarrier" or a fallback */
  kind: string;
};

/** after a failed grace period off the main thread and a failed wait on it: try again after this */
const RETRY_AFTER_FAILURE_MS = 1000;

/**
 * Applies the two rules around each op. Every op is numbered; a grace
 * period that started after op n covers every free and frontend change up
 * to n. Grace periods run off the main thread (`settle`) wherever the
 * writer can wait for them (`afterReaders`); a wait on the main thread
 * (`blockingWaits`) is the fallback for an insert that comes too soon after
 * a delete, or a deletion not announced as retired.
 */
export class ReaderGrace implements MapReaders {
  private readonly period: GracePeriod;
  private seq = 0;
  private covered = 0;
  private readonly lastFree = new Map<ReadMap, number>();
  private lastUnlink = 0;
  private settling = false;
  private settleQueued = false;
  /** callbacks waiting for the readers of their mark (`afterReaders`), oldest first */
  private waiters: Array<{ mark: number; done: () => void }> = [];
  /** grace periods waited for on the calling (main) thread */
  blockingWaits = 0;

  constructor(period: GracePeriod) {
    this.period = period;
  }

  /** Call before writing `o`: waits when `o` would break a rule. */
  before(o: MapOp, opts?: ApplyOptions): void {
    const e = opEffect(o);
    const reusesFreed = e.allocates.some((m) => (this.lastFree.get(m) ?? 0) > this.covered);
    const unlinkedAt = opts?.setsUnlinkedAt ?? this.lastUnlink;
    if (reusesFreed || (e.dropsSetEntries && unlinkedAt > this.covered)) this.waitNow();
  }

  /** Call after `o` was written (or may have been, when it failed). */
  after(o: MapOp, opts?: ApplyOptions): void {
    const e = opEffect(o);
    this.seq++;
    // the entries of a set no reader can reach (retired, or never linked) are held by none: free to reuse at once
    const heldByNone = e.dropsSetEntries && opts?.setsUnlinkedAt !== undefined;
    if (!heldByNone) for (const m of e.frees) this.lastFree.set(m, this.seq);
    if (e.unlinksSets) this.lastUnlink = this.seq;
  }

  write(ops: readonly MapOp[], opts: ApplyOptions | undefined, writeOne: (o: MapOp) => void): void {
    try {
      for (const o of ops) {
        this.before(o, opts);
        try {
          writeOne(o);
        } finally {
          this.after(o, opts);
        }
      }
    } finally {
      this.settleSoon();
    }
  }

  mark(): number {
    return this.seq;
  }

  afterReaders(mark: number, done: () => void): void {
    if (mark <= this.covered) {
      setImmediate(done);
      return;
    }
    this.waiters.push({ mark, done });
    this.settleAsync();
  }

  waitForReaders(mark: number): void {
    if (mark > this.covered) this.waitNow();
  }

  private waitNow(): void {
    const upTo = this.seq;
    this.period.wait();
    this.blockingWaits++;
    this.covered = Math.max(this.covered, upTo);
  }

  /** how a grace period is waited for ("membarrier", or the fallback) */
  get kind(): string {
    return this.period.kind;
  }

  /** true when a later op might have to wait, or a caller waits for readers */
  get owed(): boolean {
    return (
      this.lastUnlink > this.covered ||
      [...this.lastFree.values()].some((s) => s > this.covered) ||
      this.waiters.length > 0
    );
  }

  /**
   * `settleAsync` once the current turn of the event loop is over: a plan is
   * applied within one turn, op by op, so this runs after its last op.
   */
  settleSoon(): void {
    if (this.settleQueued || !this.period.settle) return;
    this.settleQueued = true;
    setImmediate(() => {
      this.settleQueued = false;
      this.settleAsync();
    }).unref();
  }

  /**
   * Starts a grace period off the main thread when one is owed, so the next
   * plan seldom waits (its first insert after this plan's deletions) and
   * `afterReaders` callers are called back. One at a time; what happens
   * meanwhile is covered by the next, started as this one ends.
   */
  settleAsync(): void {
    if (this.settling || !this.owed) return;
    if (!this.period.settle) {
      // no grace period off the main thread: the waiters are served by a wait on it, in a later turn
      if (this.waiters.length > 0 && !this.settleQueued) {
        this.settleQueued = true;
        setImmediate(() => {
          this.settleQueued = false;
          this.waitNow();
          this.release();
        });
      }
      return;
    }
    this.settling = true;
    const upTo = this.seq;
    this.period.settle((ok) => {
      this.settling = false;
      if (!ok) {
        // it covers nothing: waiters get a wait on this thread (counted); other debts wait for the next plan
        if (this.waiters.length === 0) return;
        try {
          this.waitNow();
        } catch {
          setTimeout(() => this.settleAsync(), RETRY_AFTER_FAILURE_MS).unref();
          return;
        }
        this.release();
        return;
      }
      this.covered = Math.max(this.covered, upTo);
      this.release();
      this.settleAsync();
    });
  }

  /** Calls back the waiters whose mark is covered. */
  private release(): void {
    const ready = this.waiters.filter((w) => w.mark <= this.covered);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.mark > this.covered);
    for (const w of ready) w.done();
  }
}

const MEMBARRIER_CMD_QUERY = 0;
const MEMBARRIER_CMD_GLOBAL = 1;
/** __NR_membarrier */
const SYSCALL_NR: Partial<Record<NodeJS.Architecture, number>> = { x64: 324, arm64: 283 };
/** without a kernel grace period: long past any program run, short enough for a plan */
const FALLBACK_WAIT_MS = 50;

/**
 * The machine's RCU grace period through membarrier(MEMBARRIER_CMD_GLOBAL),
 * which the kernel implements as synchronize_rcu(). Where it is missing
 * (CONFIG_MEMBARRIER off, nohz_full) or returns at once (one online CPU,
 * where a preempted program could still be inside its read section), a
 * fixed wait stands in; `kind` says which, for the agent's start log.
 */
export function kernelGracePeriod(): GracePeriod {
  const nr = SYSCALL_NR[process.arch];
  const libc = koffi.load("libc.so.6");
  const syscall = libc.func("long syscall(long nr, long cmd, long flags, long cpu)");
  const supported =
    nr !== undefined &&
    os.cpus().length > 1 && // the online CPUs (/proc/stat)
    ((Number(syscall(nr, MEMBARRIER_CMD_QUERY, 0, 0)) | 0) & MEMBARRIER_CMD_GLOBAL) !== 0;
  if (!supported) {
    const cell = new Int32Array(new SharedArrayBuffer(4));
    const sleep = () => Atomics.wait(cell, 0, 0, FALLBACK_WAIT_MS);
    return {
      kind: `fixed ${FALLBACK_WAIT_MS} ms wait (no membarrier grace period on this machine)`,
      wait: sleep,
      settle: (done) => setTimeout(() => done(true), FALLBACK_WAIT_MS).unref(),
    };
  }
  const wait = () => {
    if (Number(syscall(nr, MEMBARRIER_CMD_GLOBAL, 0, 0)) !== 0)
      throw new SwitchyardError(
        "bpf",
        `waiting for the programs (membarrier MEMBARRIER_CMD_GLOBAL) failed: ${errnoName(koffi.errno())}`,
      );
  };
  return {
    kind: "membarrier",
    wait,
    settle: (done) =>
      syscall.async(nr, MEMBARRIER_CMD_GLOBAL, 0, 0, (err: unknown, rc: unknown) => {
        // a failed one covers nothing: the next op waits on the main thread instead
        done(!err && Number(rc) === 0);
      }),
  };
}
