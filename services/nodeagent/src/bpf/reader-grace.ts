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
 * op by op and calls the wait only when one of them needs it: a plan that
 * only adds (a cold start) waits never; one that swaps sets waits once
 * before its deletions and, if the previous plan deleted, once before its
 * first insert (`settleSoon` usually takes that one off the critical path).
 */
import os from "node:os";
import { SwitchyardError } from "@switchyard/lib/errors";
import { errnoName, koffi } from "./libbpf.ts";
import type { MapOp } from "./maps.ts";

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

/** Waits for one grace period; `settle`, when given, starts one off the main thread and calls back. */
export type GracePeriod = {
  wait(): void;
  settle?: (done: () => void) => void;
  /** how the wait is made, for the log: "membarrier" or a fallback */
  kind: string;
};

/**
 * Applies the two rules around each op. Every op is numbered; a grace
 * period that started after op n covers every free and frontend change up
 * to n.
 */
export class ReaderGrace {
  private readonly period: GracePeriod;
  private seq = 0;
  private covered = 0;
  private readonly lastFree = new Map<ReadMap, number>();
  private lastUnlink = 0;
  private settling = false;
  private settleQueued = false;
  /** grace periods waited for on the calling thread */
  waits = 0;

  constructor(period: GracePeriod) {
    this.period = period;
  }

  /** Call before writing `o`: waits when `o` would break a rule. */
  before(o: MapOp): void {
    const e = opEffect(o);
    const reusesFreed = e.allocates.some((m) => (this.lastFree.get(m) ?? 0) > this.covered);
    if (reusesFreed || (e.dropsSetEntries && this.lastUnlink > this.covered)) {
      const upTo = this.seq;
      this.period.wait();
      this.waits++;
      this.covered = Math.max(this.covered, upTo);
    }
  }

  /** Call after `o` was written (or may have been, when it failed). */
  after(o: MapOp): void {
    const e = opEffect(o);
    this.seq++;
    for (const m of e.frees) this.lastFree.set(m, this.seq);
    if (e.unlinksSets) this.lastUnlink = this.seq;
  }

  /** how a grace period is waited for ("membarrier", or the fallback) */
  get kind(): string {
    return this.period.kind;
  }

  /** true when a later op might have to wait */
  get owed(): boolean {
    return this.lastUnlink > this.covered || [...this.lastFree.values()].some((s) => s > this.covered);
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
   * plan seldom waits (its first insert after this plan's deletions). One at
   * a time; what happens meanwhile is covered by the next.
   */
  settleAsync(): void {
    if (!this.period.settle || this.settling || !this.owed) return;
    this.settling = true;
    const upTo = this.seq;
    this.period.settle(() => {
      this.settling = false;
      this.covered = Math.max(this.covered, upTo);
    });
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
      settle: (done) => setTimeout(done, FALLBACK_WAIT_MS).unref(),
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
        // a failed one is simply not counted: the next op waits on the main thread instead
        if (!err && Number(rc) === 0) done();
      }),
  };
}
