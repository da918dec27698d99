/**
 * The UDP socket walk thread (a worker; its other side is udp-walker.ts).
 * For each walk: writes the removed backends into sy_dead_backends, finds
 * the network namespaces of the processes in the agent's cgroup subtree
 * (one per namespace), and in each creates the sy_destroy_udp iterator —
 * it walks the sockets of the namespace it is created in — then reads it
 * to the end. The iterator destroys only sockets this agent translated
 * (they carry sy_sock_nats) that are still connected to a removed backend,
 * and writes one record per destroyed socket, which is counted here.
 *
 * setns(2) acts on the calling thread only: this thread, never the agent's
 * main thread. Every setns is checked. Entering a namespace that fails is
 * reported and skipped; returning that fails — or that leaves the thread
 * anywhere but its own namespace — ends this thread at once (exit code
 * WALK_THREAD_LOST_NETNS), so it never runs on in a foreign namespace.
 */
import fs from "node:fs";
import path from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import { parseIpTo16 } from "@switchyard/lib/ip";
import { encodeDeadKey, LAYOUT } from "./layout.ts";
import { errnoName, ffi, koffi } from "./libbpf.ts";
import type { UdpWalkResult } from "./udp-reaper.ts";
import {
  type FromWalkThread,
  type ToWalkThread,
  WALK_SKIP_PROCESS_LEFT,
  WALK_THREAD_LOST_NETNS,
  type WalkThreadData,
} from "./udp-walker.ts";

const CLONE_NEWNET = 0x40000000;
/** max_entries of sy_dead_backends: a longer list is walked in parts */
const DEAD_MAP_ENTRIES = 65536;
const OWN_NETNS = "/proc/thread-self/ns/net";

const libc = koffi.load("libc.so.6");
const gettid = libc.func("int gettid(void)");

const data = workerData as WalkThreadData;
const port = parentPort;
if (!port) throw new Error("udp-walk-thread.ts runs only as a worker thread");
const tid = gettid() as number;
const ownIno = fs.statSync(OWN_NETNS).ino;
const homeFd = fs.openSync(data.homeNetns ?? OWN_NETNS, "r");
const deadKeySize = LAYOUT.sy_dead_key.size;

function post(m: FromWalkThread): void {
  port?.postMessage(m);
}

/** Ends this thread: it is (or may be) in a foreign network namespace. */
function die(message: string): never {
  post({ fatal: message, tid });
  process.exit(WALK_THREAD_LOST_NETNS); // in a worker: ends this thread, not the agent
}

function returnHome(from: string): void {
  const rc = ffi.setns(homeFd, CLONE_NEWNET) as number;
  const errno = rc === 0 ? 0 : koffi.errno();
  let ino: number | undefined;
  try {
    ino = fs.statSync(OWN_NETNS).ino;
  } catch {}
  if (rc !== 0) die(`setns back to the agent's network namespace after ${from} failed: ${errnoName(errno)}`);
  if (ino !== ownIno)
    die(
      `after setns back from ${from} the thread is in network namespace ${ino ?? "(unknown)"}, not the agent's (${ownIno})`,
    );
}

/** One /proc/PID/ns/net per network namespace of the processes in the cgroup subtree, keyed by inode. */
function namespacesOfCgroup(root: string): Map<number, string> {
  const seen = new Map<number, string>();
  const walk = (dir: string) => {
    let procs: string[];
    try {
      procs = fs.readFileSync(path.join(dir, "cgroup.procs"), "utf8").split("\n");
    } catch {
      return; // removed meanwhile
    }
    for (const pid of procs) {
      if (!pid) continue;
      const ns = `/proc/${pid}/ns/net`;
      try {
        const ino = fs.statSync(ns).ino;
        if (!seen.has(ino)) seen.set(ino, ns);
      } catch {} // the process left
    }
    let entries: fs.Dirent[] = [];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {}
    for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name));
  };
  walk(root);
  return seen;
}

/** Creates the iterator in the namespace `ns` (this thread's own when `ino` is), returning its fd or why not. */
function iteratorIn(ino: number, ns: string): number | string {
  const linkFd = data.iterLinkFd;
  if (ino === ownIno) {
    const fd = ffi.iterCreate(linkFd) as number;
    return fd >= 0 ? fd : `creating the iterator failed: ${errnoName(-fd)}`;
  }
  let nsfd: number;
  try {
    nsfd = fs.openSync(ns, "r");
  } catch {
    return WALK_SKIP_PROCESS_LEFT;
  }
  try {
    if ((ffi.setns(nsfd, CLONE_NEWNET) as number) !== 0) return `setns failed: ${errnoName(koffi.errno())}`;
    const fd = ffi.iterCreate(linkFd) as number;
    returnHome(ns);
    return fd >= 0 ? fd : `creating the iterator failed: ${errnoName(-fd)}`;
  } finally {
    fs.closeSync(nsfd);
  }
}

/** Reads the iterator to its end (that is what runs it); returns how many sockets it destroyed. */
function runIterator(fd: number): number {
  const buf = Buffer.alloc(64 * 1024);
  let bytes = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, buf);
      if (n <= 0) break;
      bytes += n;
    }
  } finally {
    ffi.close_fd(fd); // not fs.closeSync: the fd is libbpf's, not one fs opened
  }
  return Math.floor(bytes / deadKeySize);
}

function clearDeadMap(): void {
  const key = Buffer.alloc(deadKeySize);
  while ((ffi.mapGetNextKey(data.deadMapFd, null, key) as number) === 0) {
    if ((ffi.mapDelete(data.deadMapFd, key) as number) < 0) return;
  }
}

function walkPart(keys: Buffer[], result: UdpWalkResult): void {
  for (const k of keys) {
    const rc = ffi.mapUpdate(data.deadMapFd, k, Buffer.from([1]), 0) as number;
    if (rc < 0)
      throw new Error(`writing a removed backend to map sy_dead_backends failed: ${errnoName(-rc)}`);
  }
  try {
    const namespaces = namespacesOfCgroup(data.cgroupPath);
    for (const [ino, ns] of namespaces) {
      const it = iteratorIn(ino, ns);
      if (typeof it === "string") {
        result.skipped.push({ netns: ns, reason: it });
        continue;
      }
      result.namespaces++;
      result.destroyed += runIterator(it);
    }
  } finally {
    for (const k of keys) ffi.mapDelete(data.deadMapFd, k);
  }
}

function walk(dead: ToWalkThread["dead"]): UdpWalkResult {
  const result: UdpWalkResult = { destroyed: 0, namespaces: 0, skipped: [], tid };
  const keys: Buffer[] = [];
  for (const b of dead) {
    const a = parseIpTo16(b.ip);
    if (!a.ok) throw new Error(`removed backend ${b.ip}:${b.port}: ${a.error}`);
    keys.push(encodeDeadKey(a.value, b.port));
  }
  for (let i = 0; i < keys.length; i += DEAD_MAP_ENTRIES)
    walkPart(keys.slice(i, i + DEAD_MAP_ENTRIES), result);
  return result;
}

// a thread that ended in the middle of a walk may have left its keys behind
clearDeadMap();
port.on("message", (m: ToWalkThread) => {
  try {
    post({ done: m.walk, result: walk(m.dead) });
  } catch (e) {
    post({ failed: m.walk, message: (e as Error).message });
  }
});
