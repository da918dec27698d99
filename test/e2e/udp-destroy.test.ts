/**
 * Kernel tests of destroying connected UDP sockets to removed backends:
 * which sockets the walk may touch (only the ones the agent translated, in
 * its cgroup), that it runs on a thread of its own with removals folded
 * into the next walk, and that a thread that cannot return to the agent's
 * network namespace ends instead of running on there.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import type { Resource } from "@switchyard/proto/assignment";
import { ThreadUdpSocketWalker, WalkThreadEnded } from "../../services/nodeagent/src/bpf/udp-walker.ts";
import { DatapathHarness, serviceResource, sliceResource } from "../kit/datapath-harness.ts";
import { type Proc, REPO, waitUntil, watchProcess } from "../kit/proc.ts";

const SESSION = path.join(REPO, "test/kit/udp-session.ts");

type Second = { ok: boolean; reply?: string; code?: string };

/** A UDP Service "dns" at vip:53 whose one backend listens on :5353. */
function dnsService(vip: string): (backend: string) => Resource[] {
  return (backend) => [
    serviceResource("dns", [{ ip: vip, port: 53, protocol: "UDP" }]),
    sliceResource("dns", 5353, [{ ip: backend }], "UDP"),
  ];
}

/** A long-lived connected UDP client (test/kit/udp-session.ts), in the agent's cgroup or only in the sandbox's namespace. */
function session(h: DatapathHarness, ip: string, port: number, inCgroup = true): Proc {
  const args = [SESSION, ip, String(port)];
  return watchProcess(
    inCgroup
      ? h.sandbox.spawnInCgroup(process.execPath, args)
      : h.sandbox.spawnInNetns(process.execPath, args),
  );
}

/** Asks a udp-session.ts client to send again on its socket; returns what happened. */
async function sendAgain(p: Proc): Promise<Second> {
  if (p.cp.pid) process.kill(p.cp.pid, "SIGUSR1");
  return JSON.parse((await p.waitFor(/\{"phase":"second".*\}/))[0]) as Second;
}

describe("destroying connected UDP sockets to removed backends", () => {
  it("destroys only the sockets the agent translated: not one outside its cgroup, nor one that connected to the backend by itself", async () => {
    const h = DatapathHarness.create("udpscope");
    try {
      await h.startBackend("dead", "198.18.16.11", 5353);
      await h.startBackend("alive", "198.18.16.12", 5353);
      const resources = dnsService("10.96.16.53");
      h.assign(resources("198.18.16.11"));
      // through the Service, in the agent's cgroup: translated by the agent
      const victim = session(h, "10.96.16.53", 53);
      // the same backend, same network namespace, outside the agent's cgroup
      const outsider = session(h, "198.18.16.11", 5353, false);
      // in the agent's cgroup, but connected to the backend's address directly
      const direct = session(h, "198.18.16.11", 5353);
      for (const p of [victim, outsider, direct]) await p.waitFor(/"phase":"first","ok":true,"reply":"dead /);

      h.assign(resources("198.18.16.12"));
      assert.equal(await h.destroyedUdpSockets(), 1, "only the socket the agent translated is destroyed");
      const v = await sendAgain(victim);
      assert.equal(v.ok, false, "the translated socket must not keep talking to the removed backend");
      assert.match(v.code ?? "", /ECONNABORTED|EDESTADDRREQ/);
      for (const [name, p] of [
        ["outside the cgroup", outsider],
        ["connected directly", direct],
      ] as const) {
        const r = await sendAgain(p);
        assert.equal(r.ok, true, `the socket ${name} is not the agent's to destroy: ${JSON.stringify(r)}`);
        assert.match(r.reply ?? "", /^dead /);
      }
    } finally {
      h.cleanup();
    }
  });

  it("walks on a thread of its own, never the main thread, and folds removals during a walk into one next walk", async () => {
    const h = DatapathHarness.create("udpthread");
    try {
      await h.startBackend("alive", "198.18.16.20", 5353);
      const names = ["a", "b", "c"];
      for (const [i, n] of names.entries()) await h.startBackend(n, `198.18.16.2${i + 1}`, 5353);
      // Service i goes to backend i until it is moved to the live one
      const resources = (moved: number) =>
        names.flatMap((n, i) => [
          serviceResource(n, [{ ip: `10.96.16.${i + 1}`, port: 53, protocol: "UDP" }]),
          sliceResource(n, 5353, [{ ip: i < moved ? "198.18.16.20" : `198.18.16.2${i + 1}` }], "UDP"),
        ]);
      h.assign(resources(0));
      const clients = names.map((_, i) => session(h, `10.96.16.${i + 1}`, 53));
      for (const [i, p] of clients.entries())
        await p.waitFor(new RegExp(`"phase":"first","ok":true,"reply":"${names[i]} `));
      const reaper = h.dp.udpReaper;
      assert.ok(reaper, "this kernel has bpf_sock_destroy (Linux ≥ 6.5)");

      // a backend leaves the maps when its old set is deleted (a grace period after the flip): a walk starts then
      const removed = h.core.onBackendsRemoved!;
      let atFirstRemoval: { busy: boolean; walks: number } | undefined;
      h.core.onBackendsRemoved = (dead) => {
        removed(dead);
        atFirstRemoval ??= { busy: reaper.busy, walks: reaper.totals.walks };
      };
      h.assign(resources(1)); // removes backend a
      h.assign(resources(2)); // b and c are removed while the first walk is under way
      h.assign(resources(3));
      assert.equal(await h.destroyedUdpSockets(), 3);
      assert.deepEqual(
        atFirstRemoval,
        { busy: true, walks: 0 },
        "the removal returned while its walk runs (not on the main thread's turn)",
      );
      assert.equal(reaper.totals.walks, 2, "the removals during the first walk were folded into one walk");
      const tid = reaper.lastResult?.tid;
      assert.ok(tid !== undefined && tid !== process.pid, `walked on thread ${tid}, not the main thread`);
      assert.ok(
        fs.existsSync(`/proc/self/task/${tid}`),
        "the walk thread is a thread of the agent's process",
      );
      for (const p of clients) {
        const r = await sendAgain(p);
        assert.equal(r.ok, false, JSON.stringify(r));
      }
    } finally {
      h.cleanup();
    }
  });

  it("a walk thread that cannot return to the agent's network namespace ends, and says so", async () => {
    // returning "home" to a mount namespace fails (EINVAL) after the thread entered the sandbox's network namespace
    const h = DatapathHarness.create("udpnsfail", {
      udpWalker: (o) => new ThreadUdpSocketWalker({ ...o, homeNetns: "/proc/self/ns/mnt" }),
    });
    try {
      await h.startBackend("dead", "198.18.16.31", 5353);
      await h.startBackend("alive", "198.18.16.32", 5353);
      const resources = dnsService("10.96.16.63");
      h.assign(resources("198.18.16.31"));
      const victim = session(h, "10.96.16.63", 53);
      await victim.waitFor(/"phase":"first","ok":true,"reply":"dead /);
      const reaper = h.dp.udpReaper;
      assert.ok(reaper);
      const ownNetns = fs.statSync("/proc/thread-self/ns/net").ino;

      const tids: number[] = [];
      for (const backend of ["198.18.16.32", "198.18.16.31"]) {
        const failed: number = reaper.totals.failedWalks;
        h.assign(resources(backend));
        await h.core.whenRetired();
        await reaper.idle();
        assert.equal(reaper.totals.failedWalks, failed + 1, "the walk failed");
        const err = reaper.lastError;
        assert.ok(err instanceof WalkThreadEnded, String(err));
        assert.match(
          err.message,
          /setns back to the agent's network namespace after \/proc\/\d+\/ns\/net failed: EINVAL/,
        );
        assert.ok(
          err.tid !== undefined && err.tid !== process.pid,
          `the failing thread (${err.tid}) is not the main thread`,
        );
        await waitUntil("the walk thread has ended", () =>
          fs.existsSync(`/proc/self/task/${err.tid}`) ? undefined : true,
        );
        tids.push(err.tid);
      }
      assert.notEqual(tids[0], tids[1], "the next walk ran on a new thread");
      assert.equal(
        fs.statSync("/proc/thread-self/ns/net").ino,
        ownNetns,
        "the main thread never left its namespace",
      );
    } finally {
      h.cleanup();
    }
  });
});
