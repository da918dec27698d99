/**
 * The agent's side of the UDP socket walk thread (udp-walk-thread.ts): a
 * worker thread, started on the first walk, that finds the network
 * namespaces of the processes in the agent's cgroup, enters each (setns acts
 * on the calling thread only, so the agent's main thread never leaves its
 * own namespace) and runs the sy_destroy_udp iterator there. The main
 * thread only posts the removed backends and reads the result.
 *
 * If the thread cannot return to its own namespace it ends itself; the walk
 * fails with WalkThreadEnded (naming the thread and the namespace) and the
 * next walk starts a new thread.
 */
import { Worker } from "node:worker_threads";
import { SwitchyardError } from "@switchyard/lib/errors";
import { checkRc, koffi } from "./libbpf.ts";
import type { Backend } from "./maps.ts";
import type { UdpSocketWalker, UdpWalkResult } from "./udp-reaper.ts";

const THREAD_URL = new URL("./udp-walk-thread.ts", import.meta.url);
/** the thread's exit code when it could not return to its own network namespace */
export const WALK_THREAD_LOST_NETNS = 70;
/** why a namespace was skipped when its process exited before the walk reached it (not worth a warning) */
export const WALK_SKIP_PROCESS_LEFT = "the process left";

export type WalkThreadData = {
  cgroupPath: string;
  iterLinkFd: number;
  deadMapFd: number;
  /** the namespace the thread returns to after each setns (default: its own at start) */
  homeNetns: string | undefined;
};
export type ToWalkThread = { walk: number; dead: Backend[] };
export type FromWalkThread =
  | { done: number; result: UdpWalkResult }
  | { failed: number; message: string }
  | { fatal: string; tid: number };

export type ThreadUdpSocketWalkerOptions = {
  /** the cgroup v2 directory the agent is attached to: only its processes' namespaces are walked */
  cgroupPath: string;
  /** fd of the sy_destroy_udp iterator link and of sy_dead_backends; duplicated, so the caller may close its own */
  iterLinkFd: number;
  deadMapFd: number;
  homeNetns?: string;
};

/** The walk thread ended (it could not return to its network namespace, or it failed). */
export class WalkThreadEnded extends SwitchyardError {
  /** OS thread id of the ended thread, when it said */
  readonly tid: number | undefined;
  constructor(message: string, tid: number | undefined) {
    super("internal", message);
    this.tid = tid;
  }
}

const libc = koffi.load("libc.so.6");
const fcntl = libc.func("int fcntl(int fd, int cmd, ...)");
const closeFd = libc.func("int close(int fd)");
const F_DUPFD_CLOEXEC = 1030;

function dupFd(fd: number, what: string): number {
  return checkRc(fcntl(fd, F_DUPFD_CLOEXEC, "int", 0) as number, `duplicating the fd of ${what}`);
}

export class ThreadUdpSocketWalker implements UdpSocketWalker {
  private readonly data: WalkThreadData;
  private worker: Worker | undefined;
  private exited: Promise<void> | undefined;
  private inflight:
    | { id: number; resolve: (r: UdpWalkResult) => void; reject: (e: Error) => void }
    | undefined;
  private nextId = 1;
  private closed = false;

  constructor(opts: ThreadUdpSocketWalkerOptions) {
    const iterLinkFd = dupFd(opts.iterLinkFd, "the udp socket iterator link");
    this.data = {
      cgroupPath: opts.cgroupPath,
      iterLinkFd,
      deadMapFd: dupFd(opts.deadMapFd, "map sy_dead_backends"),
      homeNetns: opts.homeNetns,
    };
  }

  walk(dead: readonly Backend[]): Promise<UdpWalkResult> {
    if (this.closed)
      return Promise.reject(new SwitchyardError("unavailable", "the udp socket walker is closed"));
    if (this.inflight) throw new SwitchyardError("internal", "a udp socket walk is already running");
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.inflight = { id, resolve, reject };
      worker.postMessage({
        walk: id,
        dead: dead.map((b) => ({ ip: b.ip, port: b.port })),
      } satisfies ToWalkThread);
    });
  }

  private start(): Worker {
    const worker = new Worker(THREAD_URL, { name: "switchyard-udp-walk", workerData: this.data });
    worker.unref(); // an idle walk thread does not keep the agent alive
    this.worker = worker;
    let fatal: { message: string; tid: number } | undefined;
    let failure: Error | undefined;
    worker.on("message", (m: FromWalkThread) => {
      if ("fatal" in m) {
        fatal = { message: m.fatal, tid: m.tid };
        return;
      }
      const f = this.inflight;
      if (!f || f.id !== ("done" in m ? m.done : m.failed)) return;
      this.inflight = undefined;
      if ("done" in m) f.resolve(m.result);
      else f.reject(new SwitchyardError("bpf", m.message));
    });
    worker.on("error", (e) => {
      failure = e;
    });
    this.exited = new Promise((resolve) =>
      worker.on("exit", (code) => {
        if (this.worker === worker) this.worker = undefined;
        const f = this.inflight;
        this.inflight = undefined;
        if (f) {
          const message = fatal
            ? `udp socket walk thread ${fatal.tid} ended: ${fatal.message}`
            : code === WALK_THREAD_LOST_NETNS
              ? "udp socket walk thread ended: it could not return to the agent's network namespace"
              : `udp socket walk thread ended (exit code ${code})${failure ? `: ${failure.message}` : ""}`;
          f.reject(new WalkThreadEnded(message, fatal?.tid));
        }
        resolve();
      }),
    );
    return worker;
  }

  /** Ends the thread (a walk in flight fails) and releases the duplicated fds once it has exited. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const worker = this.worker;
    if (worker) {
      await worker.terminate();
      await this.exited;
    }
    closeFd(this.data.iterLinkFd);
    closeFd(this.data.deadMapFd);
  }
}
