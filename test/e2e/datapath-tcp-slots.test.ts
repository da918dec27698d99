/**
 * Kernel tests of connected TCP's reverse translation (`sy_tcp_nats`): a
 * connect through a frontend takes its socket's slot (cookie modulo the
 * slots), getpeername reads it back as the frontend, and the socket's close
 * frees it (`sy_sock_release`). A socket whose slot another open socket
 * holds keeps its translation in socket storage instead: getpeername is
 * still the frontend, and the programs count it (`tcp_slot_taken`). A kernel
 * socket (here an MPTCP subflow) takes none: its close runs no program.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ffi } from "../../services/nodeagent/src/bpf/libbpf.ts";
import { DatapathHarness, serviceResource, sliceResource } from "../kit/datapath-harness.ts";
import { type Proc, REPO, waitUntil, watchProcess } from "../kit/proc.ts";

const VIP = "10.96.6.10";
const VIP6 = "fd00:96::6:10";
/** struct sy_tcp_nat: the owner's cookie (0: free), then its sy_sock_nat */
const SLOT_SIZE = 48;

describe("connected TCP: reverse translation in per-socket slots", () => {
  let h: DatapathHarness;
  const holders: Proc[] = [];
  before(async () => {
    h = DatapathHarness.create("tslot");
    await h.startBackend("a", "198.18.6.11", 8080);
    await h.startBackend("v6a", "fd00:18::6:11", 8080);
    assert.deepEqual(
      h.assign([
        serviceResource("web", [{ ip: VIP, port: 80 }]),
        sliceResource("web", 8080, [{ ip: "198.18.6.11" }]),
        serviceResource("web6", [{ ip: VIP6, port: 80 }]),
        sliceResource("web6", 8080, [{ ip: "fd00:18::6:11" }]),
      ]),
      [],
    );
  });
  after(async () => {
    for (const p of holders) await p.stop("SIGKILL");
    h?.cleanup();
  });

  const fd = () => h.dp.maps.fds.sy_tcp_nats;
  /** the slots an open socket holds (a non-zero cookie) */
  function held(): bigint[] {
    return h.dp.maps
      .entries(fd(), 4, SLOT_SIZE)
      .map(([, v]) => v.readBigUInt64LE(0))
      .filter((c) => c !== 0n);
  }
  /** writes `cookie` as the owner of every slot (0 frees them all) */
  function ownAllSlots(cookie: bigint): void {
    const slots = h.dp.maps.entries(fd(), 4, SLOT_SIZE).length;
    const value = Buffer.alloc(SLOT_SIZE);
    value.writeBigUInt64LE(cookie, 0);
    for (let i = 0; i < slots; i++) {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i, 0);
      assert.equal(ffi.mapUpdate(fd(), key, value, 0n), 0, `writing slot ${i}`);
    }
  }
  async function hold(ip: string): Promise<{ proc: Proc; peer: string }> {
    const proc = watchProcess(
      h.sandbox.spawnInCgroup(process.execPath, [path.join(REPO, "test/kit/tcp-hold.ts"), ip, "80"]),
    );
    holders.push(proc);
    const m = await proc.waitFor(/^\{.*\}$/m);
    const line = JSON.parse(m[0]) as { ok: boolean; peer?: string; code?: string };
    assert.ok(line.ok, m[0]);
    return { proc, peer: line.peer! };
  }

  it("an open connection through a frontend holds one slot and reads it back; its close frees it", async () => {
    assert.deepEqual(held(), []);
    const v4 = await hold(VIP);
    assert.equal(v4.peer, `${VIP}:80`);
    const v6 = await hold(VIP6);
    assert.equal(v6.peer, `${VIP6}:80`);
    assert.equal(held().length, 2, "one slot per open connection");
    await v4.proc.stop();
    await waitUntil("the closed socket's slot is free", () => held().length === 1 || undefined);
    await v6.proc.stop();
    await waitUntil("both slots are free", () => held().length === 0 || undefined);
  });

  it("connects that come and go leave no slot held, and a direct connect to a pod takes none", async () => {
    const r = await h.tcpMany(VIP, 80, 50);
    assert.equal(r.ok, 50, JSON.stringify(r));
    const direct = await h.tcp("198.18.6.11", 8080);
    assert.ok(direct.ok, JSON.stringify(direct));
    assert.equal(direct.peer, "198.18.6.11:8080");
    await waitUntil("no slot held once every client has closed", () => held().length === 0 || undefined);
  });

  it("an MPTCP connection through a frontend (its subflow is a kernel socket, whose close runs no program) takes no slot", async () => {
    // IPPROTO_MPTCP = 262; the plain TCP echo server answers it (MPTCP falls back to TCP)
    const py = [
      "import json, socket",
      "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)",
      `s.connect(("${VIP}", 80))`,
      "print(json.dumps({'ok': True, 'reply': s.recv(100).decode()}), flush=True)",
      "s.close()",
    ].join("\n");
    const proc = watchProcess(h.sandbox.spawnInCgroup("python3", ["-c", py]));
    const m = await proc.waitFor(/^\{.*\}$/m);
    await proc.stop();
    assert.match((JSON.parse(m[0]) as { reply: string }).reply, /^a /, m[0]);
    assert.deepEqual(held(), [], "no slot taken by a socket whose close the programs never see");
  });

  it("a socket whose slot another open socket holds keeps its translation in socket storage", async () => {
    const taken = () => h.dp.maps.counters().tcp_slot_taken ?? 0n;
    const before = taken();
    // a cookie no socket will have for a long time: every slot looks held by another open socket
    ownAllSlots(0xffff_ffff_ffffn);
    try {
      const r = await h.tcp(VIP, 80);
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(r.peer, `${VIP}:80`, "getpeername still reports the frontend");
      const open = await hold(VIP);
      assert.equal(open.peer, `${VIP}:80`);
      assert.equal(taken() - before, 2n, "both connects counted tcp_slot_taken");
      await open.proc.stop();
      assert.equal(
        held().length,
        h.dp.maps.entries(fd(), 4, SLOT_SIZE).length,
        "nobody freed a slot it did not hold",
      );
    } finally {
      ownAllSlots(0n);
    }
    const again = await hold(VIP);
    assert.equal(again.peer, `${VIP}:80`);
    assert.equal(held().length, 1, "with the slots free again, the connect takes its own");
    assert.equal(taken() - before, 2n);
    await again.proc.stop();
  });
});
