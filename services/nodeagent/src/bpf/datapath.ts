/**
 * The kernel side of the agent: loads bpf/build/switchyard.bpf.o through
 * libbpf, reuses maps pinned by an earlier run (never clears them), attaches
 * the cgroup programs with multi-attach links (or swaps the program inside a
 * link pinned earlier, atomically), and reads the event ring buffer on the
 * Node event loop.
 *
 * When the pinned maps cannot serve this build (another layout or size), the
 * object is loaded with new maps pinned in `maps-next/` and the links are
 * left alone: the previous build's programs go on serving from its maps
 * until the agent has filled the new ones and calls `commitStaged()`.
 */
import fs from "node:fs";
import path from "node:path";
import { SwitchyardError } from "@switchyard/lib/errors";
import type { Logger } from "@switchyard/lib/log";
import { mountsOfType } from "@switchyard/lib/mounts";
import { EVENTS_DRAIN_MS, EVENTS_RING_BYTES } from "./layout.ts";
import {
  checkPtr,
  checkRc,
  errnoName,
  ffi,
  koffi,
  loadRingDrain,
  type Ptr,
  routeLibbpfLogs,
} from "./libbpf.ts";
import { FRONTEND_SIZED_MAPS, LibbpfMaps, MAPS, type MapName } from "./libbpf-maps.ts";
import {
  BPF_MAP_INFO_SIZE,
  computeMapIncompatibility,
  type MapDefinition,
  parseMapInfo,
} from "./map-compat.ts";
import { type ProgStats, readProgStats } from "./prog-stats.ts";
import { UdpSocketReaper, type UdpSocketWalker } from "./udp-reaper.ts";
import {
  ThreadUdpSocketWalker,
  type ThreadUdpSocketWalkerOptions,
  WALK_SKIP_PROCESS_LEFT,
} from "./udp-walker.ts";

/**
 * Attached in this order: sy_sock_release first, so no connect takes a
 * reverse-translation slot (sy_tcp_nats) while nothing would free it.
 */
export const PROGRAMS = [
  "sy_sock_release",
  "sy_connect4",
  "sy_connect6",
  "sy_sendmsg4",
  "sy_sendmsg6",
  "sy_recvmsg4",
  "sy_recvmsg6",
  "sy_getpeername4",
  "sy_getpeername6",
] as const;
/**
 * Maps the programs fill per socket or flow (reverse translation, affinity)
 * and the counters and events: when an upgrade is staged, each of these that
 * is still compatible is shared by the previous build's programs and the new
 * ones, so connections made before the swap keep their reverse translation.
 * Every other map (the ones the agent writes) is new in a staged upgrade.
 */
const CARRIED_MAPS: ReadonlySet<string> = new Set([
  "sy_qos",
  "sy_sock_nats",
  "sy_tcp_nats",
  "sy_revnat",
  "sy_affinity",
  "sy_counters",
  "sy_events",
]);
/** where a staged upgrade pins its new maps until the swap */
export const STAGED_MAPS_DIR = "maps-next";
/** not attached to the cgroup: run on demand to destroy connected UDP sockets to removed backends */
export const ITER_PROGRAM = "sy_destroy_udp";

/** bpf_sock_destroy arrived in Linux 6.5; its name is in the kernel's BTF when it is there. */
function kernelHasSockDestroy(): boolean {
  try {
    return fs.readFileSync("/sys/kernel/btf/vmlinux").includes("bpf_sock_destroy");
  } catch {
    return false;
  }
}

export type DatapathOptions = {
  objectPath: string;
  pinDir: string;
  cgroupPath: string;
  log: Logger;
  maxFrontends?: number;
  maxBackends?: number;
  /** the UDP socket walk (default: ThreadUdpSocketWalker, on a thread of its own) */
  udpWalker?: (opts: ThreadUdpSocketWalkerOptions) => UdpSocketWalker;
};

const libc = koffi.load("libc.so.6");
const mountFn = libc.func(
  "int mount(const char *src, const char *target, const char *type, unsigned long flags, const void *data)",
);

/** Mounts bpffs at the root of pinDir's bpffs (default /sys/fs/bpf) when it is not mounted yet. */
export function ensureBpffs(pinDir: string): void {
  const bpfMounts = mountsOfType("bpf");
  if (bpfMounts.some((m) => pinDir === m || pinDir.startsWith(`${m}/`))) return;
  const root = "/sys/fs/bpf";
  if (!pinDir.startsWith(`${root}/`)) {
    throw new SwitchyardError(
      "invalid_argument",
      `pin dir ${pinDir} is not on a bpffs mount; use a path under ${root}`,
    );
  }
  fs.mkdirSync(root, { recursive: true });
  const rc = mountFn("bpf", root, "bpf", 0, null) as number;
  if (rc !== 0)
    throw new SwitchyardError("bpf", `mounting bpffs at ${root} failed: ${errnoName(koffi.errno())}`);
}

export type EventReader = { close(): void };

export class LibbpfDatapath {
  readonly maps: LibbpfMaps;
  readonly pinDir: string;
  private obj: Ptr;
  private links: Ptr[] = [];
  private iterLink: Ptr | undefined;
  private reaper: UdpSocketReaper | undefined;
  readonly cgroupPath: string;
  private readonly log: Logger;
  /** the BPF object file; libsyring.so is built beside it */
  private readonly objectPath: string;
  /** the maps pinned in maps-next/ while an upgrade is staged (undefined: none is) */
  private stagedMaps: MapName[] | undefined;
  /** no program is attached yet: a first start waits for a complete view (attachPending) */
  private unattached = false;
  /** the pins this start made (none of an earlier run): what `abandon()` removes */
  private readonly madePins: string[] = [];
  /** the pin directories this start created */
  private madeDirs: Array<string | undefined> = [];

  private constructor(
    obj: Ptr,
    maps: LibbpfMaps,
    pinDir: string,
    cgroupPath: string,
    log: Logger,
    objectPath: string,
  ) {
    this.obj = obj;
    this.objectPath = objectPath;
    this.cgroupPath = cgroupPath;
    this.maps = maps;
    this.pinDir = pinDir;
    this.log = log;
  }

  /**
   * Loads the object, reusing pinned maps, and re-targets the pinned link of
   * every program when an earlier run pinned them (a restart or upgrade
   * serves on). On a first start (no links pinned) nothing is attached yet:
   * `attachPending` is true until the caller has filled the maps with a
   * complete view and calls `attachNow()`. Nothing already in the maps is
   * cleared; a failed start removes the pins it made.
   *
   * When a pinned map cannot be reused by this build (checked per map, as
   * libbpf checks it: type, key and value size, max_entries, flags), the
   * upgrade is staged instead: the object is loaded with new, empty maps
   * pinned in `maps-next/` (the compatible maps of CARRIED_MAPS excepted:
   * those are shared), the links are not touched — the previous build's
   * programs keep serving from its maps — and `staged` is true until
   * `commitStaged()`.
   */
  static open(opts: DatapathOptions): LibbpfDatapath {
    const log = opts.log;
    routeLibbpfLogs(log);
    if (!fs.existsSync(opts.objectPath)) {
      throw new SwitchyardError(
        "not_found",
        `BPF object ${opts.objectPath} not found: run "npm run setup" (it builds bpf/)`,
      );
    }
    ensureBpffs(opts.pinDir);
    const mapDir = path.join(opts.pinDir, "maps");
    const nextDir = path.join(opts.pinDir, STAGED_MAPS_DIR);
    const linkDir = path.join(opts.pinDir, "links");
    // the first directory each call created (undefined: it was there): removed again if the start fails
    const created = [fs.mkdirSync(mapDir, { recursive: true }), fs.mkdirSync(linkDir, { recursive: true })];

    const obj = checkPtr(ffi.openFile(opts.objectPath, null), `opening BPF object ${opts.objectPath}`);
    let staged: MapName[] | undefined;
    // the maps this start pins in maps/ (an earlier run's stay whatever happens)
    const madeMapPins = MAPS.map((n) => path.join(mapDir, n)).filter((p) => !fs.existsSync(p));
    try {
      const fds = {} as Record<MapName, number>;
      const mapPtrs = {} as Record<MapName, Ptr>;
      for (const name of MAPS) mapPtrs[name] = checkPtr(ffi.findMap(obj, name), `finding map ${name}`);
      // every map that grows with frontends takes --max-frontends: a Service or policy name per frontend
      // at most (sy_svc_names), a QoS window per frontend (sy_qos), a skip entry per redirecting policy
      // and selected pod (sy_lrp_skip); the build's 65,536 (SY_MAX_SERVICES) is only the default
      if (opts.maxFrontends)
        for (const name of FRONTEND_SIZED_MAPS)
          checkRc(ffi.mapSetMaxEntries(mapPtrs[name], opts.maxFrontends) as number, `sizing ${name}`);
      if (opts.maxBackends) {
        checkRc(ffi.mapSetMaxEntries(mapPtrs.sy_backends, opts.maxBackends) as number, "sizing sy_backends");
        checkRc(ffi.mapSetMaxEntries(mapPtrs.sy_members, opts.maxBackends) as number, "sizing sy_members");
      }
      const incompatible = incompatiblePins(mapPtrs, mapDir);
      if (incompatible.size > 0) {
        // a previous staged start that did not swap left its maps here: no program uses them
        unpinAll(nextDir);
        fs.mkdirSync(nextDir, { recursive: true });
        staged = MAPS.filter(
          (name) =>
            !CARRIED_MAPS.has(name) || incompatible.has(name) || !fs.existsSync(path.join(mapDir, name)),
        );
        log.warn(
          {
            incompatible: Object.fromEntries(incompatible),
            newMaps: nextDir,
            shared: MAPS.filter((n) => !staged!.includes(n)),
          },
          "upgrade staged: serving the previous build's maps until a complete view is ready",
        );
      }
      for (const name of MAPS) {
        const dir = staged?.includes(name) ? nextDir : mapDir;
        checkRc(
          ffi.mapSetPinPath(mapPtrs[name], path.join(dir, name)) as number,
          `setting pin path of ${name}`,
        );
      }
      const iterProg = checkPtr(ffi.findProgram(obj, ITER_PROGRAM), `finding program ${ITER_PROGRAM}`);
      const canDestroy = kernelHasSockDestroy();
      if (!canDestroy) {
        ffi.setAutoload(iterProg, false);
        log.warn(
          {},
          "kernel has no bpf_sock_destroy (Linux < 6.5): connected UDP sockets to removed backends will not be destroyed",
        );
      }
      const rc = ffi.load(obj) as number;
      if (rc < 0) throw new SwitchyardError("bpf", `loading ${opts.objectPath} failed: ${errnoName(-rc)}`);
      for (const name of MAPS) fds[name] = checkRc(ffi.mapFd(mapPtrs[name]) as number, `fd of ${name}`);
      const dp = new LibbpfDatapath(
        obj,
        new LibbpfMaps(fds),
        opts.pinDir,
        opts.cgroupPath,
        log,
        opts.objectPath,
      );
      dp.madeDirs = created;
      dp.madePins.push(...madeMapPins.filter((p) => !staged?.includes(path.basename(p) as MapName)));
      if (staged) dp.stagedMaps = staged;
      else if (PROGRAMS.some((name) => fs.existsSync(path.join(linkDir, name)))) dp.attach();
      else dp.unattached = true;
      if (dp.maps.grace.kind !== "membarrier")
        log.warn({ gracePeriod: dp.maps.grace.kind }, "map writes wait for the programs with a fixed delay");
      if (canDestroy) {
        dp.iterLink = checkPtr(ffi.attachIter(iterProg, null), `attaching iterator ${ITER_PROGRAM}`);
        dp.reaper = dp.startUdpReaper(dp.iterLink, opts.udpWalker);
      }
      return dp;
    } catch (e) {
      ffi.close(obj);
      if (staged) unpinAll(nextDir);
      unlinkAll(madeMapPins);
      removeIfEmpty([linkDir, mapDir, opts.pinDir], created);
      throw e;
    }
  }

  /** A first start: no program is attached until `attachNow()`. */
  get attachPending(): boolean {
    return this.unattached;
  }

  /** Attaches every program to the cgroup (a first start, once the maps hold a complete view). */
  attachNow(): void {
    if (!this.unattached) return;
    this.attach();
    this.unattached = false;
  }

  /**
   * A start that failed, or ended before it served: releases the handles
   * and removes every pin this start made (maps and links; an earlier run's
   * stay), so nothing is left attached or pinned by it.
   */
  abandon(): void {
    this.close();
    unlinkAll(this.madePins.splice(0));
    removeIfEmpty(
      [path.join(this.pinDir, "links"), path.join(this.pinDir, "maps"), this.pinDir],
      this.madeDirs,
    );
  }

  /**
   * Whether an upgrade is staged: this build's programs are loaded with new
   * maps (`maps`) that the previous build's programs do not see yet.
   */
  get staged(): boolean {
    return this.stagedMaps !== undefined;
  }

  /**
   * Ends a staged upgrade; call it once `maps` hold a complete view. Swaps
   * this build's programs into every pinned link (atomic per hook; a hook
   * with no link is attached), then moves the new maps' pins over the old
   * ones in `maps/` (a rename on bpffs). The previous build's programs and
   * maps are freed by the kernel once nothing holds them. Nothing to do when
   * no upgrade is staged.
   */
  commitStaged(): void {
    if (!this.stagedMaps) return;
    const mapDir = path.join(this.pinDir, "maps");
    const nextDir = path.join(this.pinDir, STAGED_MAPS_DIR);
    this.attach();
    for (const name of this.stagedMaps) fs.renameSync(path.join(nextDir, name), path.join(mapDir, name));
    fs.rmdirSync(nextDir);
    this.log.info(
      { maps: this.stagedMaps.length, links: this.links.length },
      "upgrade swapped: this build's programs serve from its maps; the previous build's maps are released",
    );
    this.stagedMaps = undefined;
  }

  private attach(): void {
    const cgroupPath = this.cgroupPath;
    const linkDir = path.join(this.pinDir, "links");
    let cgfd: number;
    try {
      cgfd = fs.openSync(cgroupPath, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch (e) {
      throw new SwitchyardError(
        "not_found",
        `cannot open cgroup ${cgroupPath}: ${(e as Error).message}; pass --cgroup with a cgroup v2 directory`,
      );
    }
    const links: Ptr[] = [];
    const made: string[] = [];
    try {
      for (const name of PROGRAMS) {
        const prog = checkPtr(ffi.findProgram(this.obj, name), `finding program ${name}`);
        const pin = path.join(linkDir, name);
        if (fs.existsSync(pin)) {
          // An earlier agent's link: swap our program into it atomically.
          const link = checkPtr(ffi.linkOpen(pin), `opening pinned link ${pin}`);
          links.push(link);
          checkRc(ffi.linkUpdateProgram(link, prog) as number, `updating program of link ${pin}`);
          this.log.info({ program: name, pin }, "program replaced in pinned link");
        } else {
          const link = checkPtr(ffi.attachCgroup(prog, cgfd), `attaching ${name} to cgroup ${cgroupPath}`);
          links.push(link);
          checkRc(ffi.linkPin(link, pin) as number, `pinning link ${pin}`);
          made.push(pin);
          this.log.info({ program: name, cgroup: cgroupPath, pin }, "program attached");
        }
      }
      this.links = links;
      this.madePins.push(...made);
    } catch (e) {
      // our handles go; the links this attempt pinned go too (an earlier run's stay, a later attempt finds them)
      for (const l of links) {
        ffi.linkDisconnect(l);
        ffi.linkDestroy(l);
      }
      unlinkAll(made);
      throw e;
    } finally {
      fs.closeSync(cgfd);
    }
  }

  /**
   * Calls `onEvent` with every ring-buffer record, from the event loop. The
   * record is a view into a reused buffer, valid only during the call: copy
   * it to keep it. Records are drained in batches through libsyring.so
   * (bpf/ringdrain.c, next to the BPF object): one FFI call per wakeup, not
   * one per event.
   */
  readEvents(onEvent: (record: Buffer) => void): EventReader {
    const libPath = path.join(path.dirname(this.objectPath), "libsyring.so");
    if (!fs.existsSync(libPath))
      throw new SwitchyardError(
        "bpf",
        `${libPath} not found: it is built beside the BPF object by "npm run setup" (make -C bpf)`,
      );
    const ring = loadRingDrain(libPath);
    const h = checkPtr(ring.open(this.maps.fds.sy_events), "creating ring buffer reader");
    // the whole ring fits (records carry an 8-byte header there, a 4-byte length here)
    const out = Buffer.allocUnsafe(EVENTS_RING_BYTES);
    let lostReported = 0n;
    const drain = () => {
      const n = Number(ring.drain(h, out, out.length));
      if (n < 0) {
        this.log.error({ err: errnoName(-n) }, "draining the events ring buffer failed");
        return;
      }
      let off = 0;
      while (off + 4 <= n) {
        const len = out.readUInt32LE(off);
        off += 4;
        try {
          onEvent(out.subarray(off, off + len));
        } catch (e) {
          this.log.error({ err: e }, "event handler failed");
        }
        off += len;
      }
      const lost = BigInt(ring.lost(h) as number | bigint);
      if (lost > lostReported) {
        this.log.error({ lost: String(lost) }, "events lost: the drain buffer was smaller than the ring");
        lostReported = lost;
      }
    };
    const handle = koffi.node.poll(ring.epollFd(h) as number, { readable: true }, drain);
    // each CPU wakes us only per batch of events (SY_EVENTS_WAKEUP_EVERY): drain the rest on a short timer
    const timer = setInterval(drain, EVENTS_DRAIN_MS);
    timer.unref();
    let closed = false;
    return {
      close: () => {
        if (closed) return;
        closed = true;
        handle.close();
        clearInterval(timer);
        drain();
        ring.free(h);
      },
    };
  }

  private startUdpReaper(iterLink: Ptr, make: DatapathOptions["udpWalker"]): UdpSocketReaper {
    const o: ThreadUdpSocketWalkerOptions = {
      cgroupPath: this.cgroupPath,
      iterLinkFd: checkRc(ffi.linkFd(iterLink) as number, `fd of iterator ${ITER_PROGRAM}`),
      deadMapFd: this.maps.fds.sy_dead_backends,
    };
    return new UdpSocketReaper(make ? make(o) : new ThreadUdpSocketWalker(o), {
      onWalk: (r, backends) => {
        for (const s of r.skipped)
          this.log[s.reason === WALK_SKIP_PROCESS_LEFT ? "debug" : "warn"](
            { netns: s.netns, reason: s.reason },
            "network namespace skipped by the udp socket walk",
          );
        if (r.destroyed > 0)
          this.log.info(
            { sockets: r.destroyed, backends: backends.length, namespaces: r.namespaces, tid: r.tid },
            "connected udp sockets to removed backends destroyed",
          );
      },
      onError: (e, backends) =>
        this.log.error(
          { err: e, backends: backends.length },
          "udp socket walk failed: connected sockets to these removed backends were not destroyed",
        ),
    });
  }

  /**
   * Destroys, off the main thread, the connected UDP sockets this agent
   * translated to one of `dead` (in the namespaces of the processes in its
   * cgroup). Returns at once; removals during a walk fold into the next one.
   * `udpReaper.idle()` resolves when every walk asked for has run.
   */
  destroyUdpSockets(dead: ReadonlyArray<{ ip: string; port: number }>): void {
    if (dead.length > 0) this.reaper?.add(dead);
  }

  /** The UDP socket walks (undefined when the kernel has no bpf_sock_destroy). */
  get udpReaper(): UdpSocketReaper | undefined {
    return this.reaper;
  }

  /** The kernel's run counters of each attached program (counted while `enableKernelStats()` is on). */
  programStats(): Record<(typeof PROGRAMS)[number], ProgStats> {
    const out = {} as Record<(typeof PROGRAMS)[number], ProgStats>;
    for (const name of PROGRAMS) {
      const prog = checkPtr(ffi.findProgram(this.obj, name), `finding program ${name}`);
      out[name] = readProgStats(checkRc(ffi.programFd(prog) as number, `fd of program ${name}`));
    }
    return out;
  }

  /**
   * Releases this process's handles; pinned maps and links stay (resolution
   * keeps working). A staged upgrade that was not swapped is dropped: its
   * maps are unpinned (no program uses them; the next start stages again).
   */
  close(): void {
    // the walk thread holds its own copies of the fds: it ends on its own time
    void this.reaper?.close();
    this.reaper = undefined;
    if (this.iterLink) ffi.linkDestroy(this.iterLink);
    this.iterLink = undefined;
    for (const l of this.links) {
      ffi.linkDisconnect(l);
      ffi.linkDestroy(l);
    }
    this.links = [];
    ffi.close(this.obj);
    if (this.stagedMaps) unpinAll(path.join(this.pinDir, STAGED_MAPS_DIR));
    this.stagedMaps = undefined;
  }
}

/**
 * The maps pinned in `mapDir` that this object's definitions (sized as
 * loaded) cannot reuse, each with what differs; and, when an earlier build
 * pinned maps, each map the agent writes that it did not pin (new in this
 * build: its programs would read it empty). With nothing pinned (a first
 * start), none.
 */
function incompatiblePins(mapPtrs: Record<MapName, Ptr>, mapDir: string): Map<MapName, string> {
  const out = new Map<MapName, string>();
  const anyPinned = MAPS.some((name) => fs.existsSync(path.join(mapDir, name)));
  for (const name of MAPS) {
    const pin = path.join(mapDir, name);
    if (!fs.existsSync(pin)) {
      if (anyPinned && !CARRIED_MAPS.has(name))
        out.set(name, "not pinned by the previous build (new in this one)");
      continue;
    }
    const m = mapPtrs[name];
    const wanted: MapDefinition = {
      type: ffi.mapType(m) as number,
      keySize: ffi.mapKeySize(m) as number,
      valueSize: ffi.mapValueSize(m) as number,
      maxEntries: ffi.mapMaxEntries(m) as number,
      flags: ffi.mapFlags(m) as number,
      extra: BigInt(ffi.mapExtra(m) as number | bigint),
    };
    const fd = ffi.objGet(pin) as number;
    if (fd < 0) throw new SwitchyardError("bpf", `opening pinned map ${pin} failed: ${errnoName(-fd)}`);
    try {
      const info = Buffer.alloc(BPF_MAP_INFO_SIZE);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(info.length, 0);
      checkRc(ffi.objGetInfoByFd(fd, info, len) as number, `reading the definition of pinned map ${pin}`);
      const why = computeMapIncompatibility(wanted, parseMapInfo(info, len.readUInt32LE(0)));
      if (why) out.set(name, why);
    } finally {
      ffi.close_fd(fd);
    }
  }
  return out;
}

/** Removes pins (a map or link goes once nothing else holds it); ones already gone are skipped. */
function unlinkAll(pins: string[]): void {
  for (const p of pins) fs.rmSync(p, { force: true });
}

/** Unpins every map in `dir` and removes it (a map is freed when no program or pin holds it). */
function unpinAll(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const f of fs.readdirSync(dir)) fs.unlinkSync(path.join(dir, f));
  fs.rmdirSync(dir);
}

/**
 * After a failed start: removes the pin directories this start created, if
 * nothing was pinned in them (pins of an earlier run, or of another process,
 * keep their directories).
 */
function removeIfEmpty(dirs: string[], created: Array<string | undefined>): void {
  const roots = created.filter((c): c is string => c !== undefined);
  for (const d of dirs) {
    if (!roots.some((r) => d === r || d.startsWith(`${r}/`))) continue;
    try {
      fs.rmdirSync(d); // fails, and keeps it, unless it is empty
    } catch {}
  }
}

/** Detaches the programs and removes every pin under pinDir (uninstall). */
export function uninstallPins(pinDir: string): string[] {
  const removed: string[] = [];
  for (const sub of ["links", "maps", STAGED_MAPS_DIR]) {
    const dir = path.join(pinDir, sub);
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir)) {
      fs.unlinkSync(path.join(dir, f));
      removed.push(path.join(dir, f));
    }
    fs.rmdirSync(dir);
  }
  if (fs.existsSync(pinDir)) fs.rmdirSync(pinDir);
  return removed;
}
