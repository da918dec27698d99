/**
 * Kernel tests of running the data plane: living next to another vendor's
 * cgroup program, restarting and upgrading in place, full maps, switching
 * events at run time, and affinity expiry.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { LibbpfDatapath } from "../../services/nodeagent/src/bpf/datapath.ts";
import { checkPtr, checkRc, ffi } from "../../services/nodeagent/src/bpf/libbpf.ts";
import { BPF_OBJECT, DatapathHarness, serviceResource, sliceResource } from "../kit/datapath-harness.ts";
import { REPO, waitUntil, watchProcess } from "../kit/proc.ts";
import { AGENT } from "../kit/stack.ts";

/** Builds and attaches test/fixtures/bpf/neighbour.bpf.c (a CNI stand-in); returns a reader of its counter. */
function attachNeighbour(cgroup: string): { connects: () => bigint; detach: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-neighbour-"));
  const obj = path.join(dir, "neighbour.bpf.o");
  execFileSync("clang", [
    "-g",
    "-O2",
    "-target",
    "bpf",
    "-I",
    path.join(REPO, "bpf/build"),
    "-c",
    path.join(REPO, "test/fixtures/bpf/neighbour.bpf.c"),
    "-o",
    obj,
  ]);
  const o = checkPtr(ffi.openFile(obj, null), "open neighbour");
  checkRc(ffi.load(o) as number, "load neighbour");
  const prog = checkPtr(ffi.findProgram(o, "neighbour_connect4"), "find neighbour prog");
  const cgfd = fs.openSync(cgroup, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  const link = checkPtr(ffi.attachCgroup(prog, cgfd), "attach neighbour");
  fs.closeSync(cgfd);
  const mapFd = ffi.mapFd(checkPtr(ffi.findMap(o, "neighbour_connects"), "find neighbour map")) as number;
  return {
    connects: () => {
      const v = Buffer.alloc(8);
      ffi.mapLookup(mapFd, Buffer.alloc(4), v);
      return v.readBigUInt64LE(0);
    },
    detach: () => {
      ffi.linkDestroy(link);
      ffi.close(o);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe("running the data plane", () => {
  const cleanups: Array<() => void> = [];
  after(() => {
    for (const c of cleanups.reverse()) c();
  });

  it("coexists with another program on the same cgroup, across a restart and an in-place upgrade", async () => {
    const h = DatapathHarness.create("coexist");
    cleanups.push(() => h.cleanup());
    await h.startBackend("a", "198.18.10.11", 8080);
    h.assign([
      serviceResource("web", [{ ip: "10.96.10.10", port: 80 }]),
      sliceResource("web", 8080, [{ ip: "198.18.10.11" }]),
    ]);
    const neighbour = attachNeighbour(h.sandbox.cgroup);
    cleanups.push(() => neighbour.detach());
    const r = await h.tcp("10.96.10.10", 80);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(neighbour.connects(), 1n, "the other program saw the connect too");
    // a new agent build opens the same pins: its programs replace ours inside the pinned links
    const upgraded = LibbpfDatapath.open({
      objectPath: BPF_OBJECT,
      pinDir: h.pinDir,
      cgroupPath: h.sandbox.cgroup,
      log: silentLogger(),
    });
    cleanups.push(() => upgraded.close());
    const again = await h.tcp("10.96.10.10", 80);
    assert.ok(again.ok, JSON.stringify(again));
    assert.equal(neighbour.connects(), 2n);
    const attached = JSON.parse(
      execFileSync("bpftool", ["-j", "cgroup", "show", h.sandbox.cgroup], { encoding: "utf8" }),
    ) as Array<{ name: string }>;
    assert.equal(
      attached.filter((p) => p.name === "sy_connect4").length,
      1,
      "the upgrade replaced our program, it did not add a second one",
    );
    assert.equal(attached.filter((p) => p.name === "neighbour_connect4").length, 1);
  });

  it("a start whose load fails says so and leaves no empty pin directories behind", () => {
    const pinDir = `/sys/fs/bpf/sy-failed-${process.pid}-${Date.now()}`;
    try {
      assert.throws(
        () =>
          LibbpfDatapath.open({
            objectPath: BPF_OBJECT,
            pinDir,
            cgroupPath: "/nonexistent",
            log: silentLogger(),
            // more entries than the kernel will allocate: the load fails before anything is pinned
            maxFrontends: 2 ** 31,
          }),
        /loading .* failed: \w+/,
      );
      assert.equal(fs.existsSync(pinDir), false, `${pinDir} was left behind`);
    } finally {
      fs.rmSync(pinDir, { recursive: true, force: true });
    }
  });

  it("reports a full backend map (NACK with the reason) and keeps what it had", async () => {
    const h = DatapathHarness.create("full", { maxBackends: 4 });
    cleanups.push(() => h.cleanup());
    await h.startBackend("a", "198.18.11.11", 8080);
    const first = [
      serviceResource("one", [{ ip: "10.96.11.1", port: 80 }]),
      sliceResource("one", 8080, [{ ip: "198.18.11.11" }]),
    ];
    assert.deepEqual(h.assign(first), []);
    const errors = h.assign([
      ...first,
      serviceResource("big", [{ ip: "10.96.11.2", port: 80 }]),
      sliceResource(
        "big",
        8080,
        ["198.18.11.21", "198.18.11.22", "198.18.11.23", "198.18.11.24"].map((ip) => ({ ip })),
      ),
    ]);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /map full/);
    const r = await h.tcp("10.96.11.1", 80);
    assert.ok(r.ok, "the service that fitted still resolves");
  });

  it("switches events off and on at run time through the pinned settings, without a reload", async () => {
    const h = DatapathHarness.create("events");
    cleanups.push(() => h.cleanup());
    await h.startBackend("a", "198.18.12.11", 8080);
    h.assign([
      serviceResource("web", [{ ip: "10.96.12.10", port: 80 }]),
      sliceResource("web", 8080, [{ ip: "198.18.12.11" }]),
    ]);
    const cli = (...args: string[]) =>
      execFileSync(process.execPath, [path.join(REPO, AGENT), "events", ...args, "--pin-dir", h.pinDir], {
        encoding: "utf8",
      });
    assert.match(cli("off"), /events off/);
    assert.ok((await h.tcp("10.96.12.10", 80)).ok);
    assert.match(cli("on"), /events on, sampling one in 1/);
    h.events.length = 0;
    const r = await h.tcp("10.96.12.10", 80);
    assert.ok(r.ok);
    // the ring buffer is ordered: once the second connect's event is here, an event of the first would be too
    await waitUntil("the event of the second connect", () => (h.events.length > 0 ? true : undefined));
    assert.equal(h.events.length, 1, "no event while events were off");
    assert.match(cli("--sample", "1000000000"), /sampling one in 1000000000/);
    const before = h.dp.maps.counters()["events_sampled_out"]!;
    await h.tcp("10.96.12.10", 80);
    assert.equal(h.dp.maps.counters()["events_sampled_out"], before + 1n);
  });

  it("affinity expires after the Service's timeout: the next connect makes a fresh choice", async () => {
    const h = DatapathHarness.create("affexp");
    cleanups.push(() => h.cleanup());
    await h.startBackend("a", "198.18.13.11", 8080);
    h.assign([
      serviceResource("sticky", [{ ip: "10.96.13.10", port: 80 }], { affinityTimeoutSeconds: 1 }),
      sliceResource("sticky", 8080, [{ ip: "198.18.13.11" }]),
    ]);
    const hits = () => h.dp.maps.counters()["affinity_hit"]!;
    const h0 = hits();
    // two connects from one process, milliseconds apart: the second reuses the first's choice
    const pair = await h.tcpMany("10.96.13.10", 80, 2);
    assert.equal(pair.ok, 2);
    assert.equal(hits(), h0 + 1n, "within the timeout the pinned backend is reused");
    await new Promise((r) => setTimeout(r, 1100)); // let the 1 s affinity lapse
    await h.tcp("10.96.13.10", 80);
    assert.equal(hits(), h0 + 1n, "after the timeout the entry is not used");
  });
});

describe("connected UDP sockets and removed backends", () => {
  it("destroys a connected UDP socket whose backend is removed, and leaves others alone", async () => {
    const h = DatapathHarness.create("udpdestroy");
    try {
      await h.startBackend("dead", "198.18.14.11", 5353);
      await h.startBackend("alive", "198.18.14.12", 5353);
      const resources = (deadPresent: boolean) => [
        serviceResource("dns", [{ ip: "10.96.14.53", port: 53, protocol: "UDP" }]),
        sliceResource("dns", 5353, deadPresent ? [{ ip: "198.18.14.11" }] : [{ ip: "198.18.14.12" }], "UDP"),
        serviceResource("other", [{ ip: "10.96.14.54", port: 53, protocol: "UDP" }]),
        sliceResource("other", 5353, [{ ip: "198.18.14.12" }], "UDP"),
      ];
      h.assign(resources(true));
      const start = (ip: string) => {
        const p = watchProcess(
          h.sandbox.spawnInCgroup(process.execPath, [path.join(REPO, "test/kit/udp-session.ts"), ip, "53"]),
        );
        return p;
      };
      const victim = start("10.96.14.53");
      const bystander = start("10.96.14.54");
      await victim.waitFor(/"phase":"first","ok":true,"reply":"dead /);
      await bystander.waitFor(/"phase":"first","ok":true,"reply":"alive /);
      h.assign(resources(false));
      assert.equal(
        await h.destroyedUdpSockets(),
        1,
        "exactly the socket connected to the removed backend is destroyed",
      );
      for (const p of [victim, bystander]) if (p.cp.pid) process.kill(p.cp.pid, "SIGUSR1");
      const v = JSON.parse((await victim.waitFor(/\{"phase":"second".*\}/))[0]) as {
        ok: boolean;
        code?: string;
      };
      assert.equal(v.ok, false, "the destroyed socket must not keep talking to the dead backend");
      assert.match(v.code ?? "", /ECONNABORTED|EDESTADDRREQ/);
      const b = JSON.parse((await bystander.waitFor(/\{"phase":"second".*\}/))[0]) as {
        ok: boolean;
        reply?: string;
      };
      assert.equal(b.ok, true);
      assert.match(b.reply ?? "", /^alive /);
    } finally {
      h.cleanup();
    }
  });
});

describe("drift repair", () => {
  it("a full reconcile restores entries removed behind the agent's back, and writes nothing otherwise", async () => {
    const h = DatapathHarness.create("drift");
    try {
      await h.startBackend("a", "198.18.15.11", 8080);
      h.assign([
        serviceResource("web", [{ ip: "10.96.15.10", port: 80 }]),
        sliceResource("web", 8080, [{ ip: "198.18.15.11" }]),
      ]);
      assert.equal(h.core.resync(), 0, "no drift, no writes");
      // someone deletes the frontend entry
      h.dp.maps.apply([{ op: "delete-frontend", key: { ip: "10.96.15.10", port: 80, proto: 6, scope: 0 } }]);
      assert.deepEqual(await h.tcp("10.96.15.10", 80), { ok: false, code: "ENETUNREACH" });
      assert.ok(h.core.resync() > 0, "the repair writes");
      assert.equal(h.core.resync(), 0, "and then the maps match again");
      const r = await h.tcp("10.96.15.10", 80);
      assert.ok(r.ok, JSON.stringify(r));
    } finally {
      h.cleanup();
    }
  });
});
