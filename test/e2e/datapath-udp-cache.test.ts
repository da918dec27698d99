/**
 * Kernel tests of unconnected UDP's per-socket translation (`sy_udp_lasts`):
 * a socket that keeps sending to one frontend stays on one backend and pays
 * one lookup a datagram; the translation is resolved again as soon as the
 * frontend's backends change or it is removed; replies still come from the
 * frontend; a flow emits one event per second with its datagram count.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { DatapathHarness, serviceResource, sliceResource } from "../kit/datapath-harness.ts";
import { type Proc, REPO, waitUntil, watchProcess } from "../kit/proc.ts";

const VIP = "10.96.8.53";
const A = "198.18.8.11";
const B = "198.18.8.12";
type Line = { i: number; ok: boolean; reply?: string; from?: string; code?: string };

describe("unconnected UDP: the socket's last translation", () => {
  let h: DatapathHarness;
  const flows: Proc[] = [];
  const dns = (ips: string[]) => [
    serviceResource("dns", [{ ip: VIP, port: 53, protocol: "UDP" }]),
    sliceResource(
      "dns",
      8080,
      ips.map((ip) => ({ ip })),
      "UDP",
    ),
  ];
  before(async () => {
    h = DatapathHarness.create("udpc");
    await h.startBackend("a", A, 8080);
    await h.startBackend("b", B, 8080);
    assert.deepEqual(h.assign(dns([A, B])), []);
  });
  after(async () => {
    for (const f of flows) await f.stop("SIGKILL");
    h?.cleanup();
  });

  /** a udp-flow.ts client in the cgroup; resolves the lines of its first burst */
  async function startFlow(
    burst: number,
    next = burst,
  ): Promise<{ proc: Proc; lines: (upTo: number) => Promise<Line[]> }> {
    const proc = watchProcess(
      h.sandbox.spawnInCgroup(process.execPath, [
        path.join(REPO, "test/kit/udp-flow.ts"),
        VIP,
        "53",
        String(burst),
        String(next),
      ]),
    );
    flows.push(proc);
    const lines = async (upTo: number) => {
      await proc.waitFor(new RegExp(`"i":${upTo},`));
      return proc
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Line);
    };
    return { proc, lines };
  }

  it("keeps a socket's datagrams on one backend, re-resolves when the frontend's set changes, and stops at its removal", async () => {
    const flow = await startFlow(8);
    const first = await flow.lines(7);
    assert.ok(
      first.every((l) => l.ok),
      JSON.stringify(first),
    );
    const names = new Set(first.map((l) => l.reply!.split(" ")[0]));
    assert.equal(names.size, 1, `one backend for the flow: ${[...names]}`);
    assert.ok(
      first.every((l) => l.from === `${VIP}:53`),
      "replies come from the frontend",
    );
    // the set changes to the backend the flow did not use: its next datagrams go there
    const chosen = [...names][0]!;
    const other = chosen === "a" ? B : A;
    assert.deepEqual(h.assign(dns([other])), []);
    flow.proc.cp.kill("SIGUSR1");
    const moved = (await flow.lines(15)).slice(8);
    assert.ok(
      moved.every((l) => l.ok && l.reply!.startsWith(chosen === "a" ? "b " : "a ") && l.from === `${VIP}:53`),
      JSON.stringify(moved),
    );
    // the Service goes: nothing translates the VIP any more (the namespace has no route to it)
    assert.deepEqual(h.assign([]), []);
    flow.proc.cp.kill("SIGUSR1");
    const gone = (await flow.lines(23)).slice(16);
    assert.ok(
      gone.every((l) => !l.ok),
      JSON.stringify(gone),
    );
    assert.deepEqual(h.assign(dns([A, B])), []);
  });

  it("emits an event for a flow's first datagram, then one a second at most, counting the datagrams it stands for", async () => {
    const flow = await startFlow(20, 1);
    assert.ok((await flow.lines(19)).every((l) => l.ok));
    // this process's events only (the client execs in place: its pid is the spawned one)
    const ofFlow = () =>
      h.events.filter((e) => e.pid === flow.proc.cp.pid && e.originalDestIp === VIP && e.hook === "sendmsg4");
    const firstEv = await waitUntil("the flow's first event", () => ofFlow()[0]);
    assert.equal(firstEv.datagrams, 1);
    assert.equal(firstEv.service, "test/ns/dns");
    // more than a second after the burst, one more datagram emits with every datagram not in an event yet
    await new Promise((r) => setTimeout(r, 1200));
    flow.proc.cp.kill("SIGUSR1");
    await flow.lines(20);
    await waitUntil("every datagram in an event", () =>
      ofFlow().reduce((n, e) => n + (e.datagrams ?? 0), 0) >= 21 ? true : undefined,
    );
    const evs = ofFlow();
    assert.equal(
      evs.reduce((n, e) => n + (e.datagrams ?? 0), 0),
      21,
    );
    // not one per datagram (21 before): the first, one a second during the bursts, the one after the pause
    assert.ok(evs.length <= 5, `${evs.length} events for 21+ datagrams`);
    // the counters count every datagram all the same
    const names = h.dp.maps.read().names;
    const id = [...names].find(([, n]) => n === "svc/test/ns/dns")![0];
    assert.ok(h.dp.maps.readResolutionCounters().get(id)!.ok >= 21n);
  });
});
