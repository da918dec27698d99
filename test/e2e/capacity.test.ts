/**
 * Capacity is bound only by the map sizes set at load: one agent sized with
 * --max-frontends 131072 takes 40,000 Services and 30,000 BalancingPolicies
 * (address frontends; one backend each) and a few LocalRedirectPolicies —
 * more than 65,535 frontends, beyond the 65,536 names the build's fixed
 * `sy_svc_names` held — and a real connect from the sandbox reaches the last
 * Service's backend, the last BalancingPolicy's backend and the last
 * LocalRedirectPolicy's local pod.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Resource } from "@switchyard/proto/assignment";
import { bpResource } from "../../services/nodeagent/src/testing/balancing.ts";
import { lrpbResource, lrpResource } from "../../services/nodeagent/src/testing/local-redirect.ts";
import { DatapathHarness, serviceResource, sliceResource } from "../kit/datapath-harness.ts";

const SERVICES = 40_000;
const BALANCING = 30_000;
const POLICIES = 3;
const SHARED_BACKEND = "198.18.70.1";
const LAST_BACKEND = "198.18.70.2";
const LAST_BALANCED = "198.18.70.4";
const LOCAL_POD = "198.18.70.3";
const POD_UID = "0d5e7a10-0000-4000-8000-00000000ca9a";

/** the i-th Service's ClusterIP: 10.100.0.1 onwards (10.101.x.y past 65,535) */
function clusterIp(i: number): string {
  const n = i + 1;
  return `10.${100 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

/** the i-th BalancingPolicy's virtual address: 10.120.0.1 onwards */
function virtualIp(i: number): string {
  const n = i + 1;
  return `10.${120 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

function resources(): Resource[] {
  const out: Resource[] = [];
  for (let i = 0; i < SERVICES; i++) {
    const name = `s${i}`;
    out.push(serviceResource(name, [{ ip: clusterIp(i), port: 80 }]));
    out.push(sliceResource(name, 8080, [{ ip: i === SERVICES - 1 ? LAST_BACKEND : SHARED_BACKEND }]));
  }
  for (let i = 0; i < BALANCING; i++) {
    const backend = i === BALANCING - 1 ? LAST_BALANCED : SHARED_BACKEND;
    out.push(
      bpResource(
        `bp${i}`,
        { address: true },
        [{ ip: virtualIp(i), port: 80 }],
        [{ name: "p", port: 8080 }],
        [backend],
      ),
    );
  }
  for (let p = 0; p < POLICIES; p++) {
    const name = `lrp${p}`;
    out.push(lrpResource(name, "address", [{ ip: `169.254.70.${p + 1}`, port: 53, portName: "dns" }]));
    out.push(
      lrpbResource(
        name,
        "node-1",
        [{ name: "dns", port: 5353 }],
        [{ name: "local", ips: [LOCAL_POD], uid: POD_UID }],
      ),
    );
  }
  return out;
}

describe("capacity: bound only by the map sizes set at load", () => {
  let h: DatapathHarness;
  before(async () => {
    h = DatapathHarness.create("cap", { maxFrontends: 131_072, maxBackends: 131_072 });
    await h.sandbox.startEchoServers([
      { name: "last", ip: LAST_BACKEND, port: 8080 },
      { name: "local", ip: LOCAL_POD, port: 5353 },
      { name: "balanced", ip: LAST_BALANCED, port: 8080 },
    ]);
  });
  after(() => h?.cleanup());

  it(`applies ${SERVICES} Services, ${BALANCING} BalancingPolicies and ${POLICIES} LocalRedirectPolicies (more than 65,535 frontends and names) and resolves the last of each`, async () => {
    assert.deepEqual(h.assign(resources()), []);
    const maps = h.dp.maps.read();
    assert.equal(
      maps.names.size,
      SERVICES + BALANCING + POLICIES,
      "one name per Service and per policy in sy_svc_names",
    );
    assert.ok(maps.frontends.size > 65_535, `${maps.frontends.size} frontends`);
    const svc = await h.tcp(clusterIp(SERVICES - 1), 80);
    assert.ok(svc.ok, JSON.stringify(svc));
    assert.match(svc.reply, /^last /, "the last Service's own backend answered");
    assert.equal(svc.peer, `${clusterIp(SERVICES - 1)}:80`, "and the client saw the Service's address");
    const bp = await h.tcp(virtualIp(BALANCING - 1), 80);
    assert.ok(bp.ok, JSON.stringify(bp));
    assert.match(bp.reply, /^balanced /, "the last BalancingPolicy's backend answered");
    assert.equal(bp.peer, `${virtualIp(BALANCING - 1)}:80`);
    const lrp = await h.tcp(`169.254.70.${POLICIES}`, 53);
    assert.ok(lrp.ok, JSON.stringify(lrp));
    assert.match(lrp.reply, /^local /, "the last policy's local pod answered");
  });
});
