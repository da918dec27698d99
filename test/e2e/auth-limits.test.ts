/**
 * Token guessing against the real hub: 600 wrong join tokens from one
 * client. The answers do not tell an unknown token id from a known one with
 * a wrong secret; past the per-source failure limit the hub refuses at once,
 * without checking the secret (RESOURCE_EXHAUSTED, counted as "throttled");
 * its log holds a few summary lines, not one per attempt; and a legitimate
 * agent from another address joins and gets its view right after.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { serviceYaml } from "../kit/k8s-yaml.ts";
import { waitUntil } from "../kit/proc.ts";
import { Stack } from "../kit/stack.ts";
import { type Forwarder, forwardFrom } from "../kit/tcp-forward.ts";

const VIP = "10.96.57.1";
const STREAM = "/switchyard.v1.AssignmentService/StreamAssignments";
const ATTEMPTS = 600;

describe("join-token guessing", () => {
  let stack: Stack;
  let metricsUrl: string;
  let forwarder: Forwarder | undefined;
  before(async () => {
    stack = Stack.create("authlim");
    const dir = path.join(stack.stateDir, "cluster");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "a.yaml"), serviceYaml("api", VIP, "198.18.57.11"));
    await stack.startBackend("api", "198.18.57.11", 8080);
    const hub = await stack.startHub([`prod=dir:${dir}`], ["--metrics-listen", "127.0.0.1:0"]);
    metricsUrl = (await hub.waitFor(/metrics (http:\/\/\S+)/))[1]!;
  });
  after(async () => {
    await forwarder?.close();
    await stack?.cleanup();
  });

  /** One StreamAssignments call with this bearer, from one client connection: its status. */
  const attempt = (client: grpc.Client, bearer: string) =>
    new Promise<{ code: number; details: string }>((resolve) => {
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${bearer}`);
      const call = client.makeBidiStreamRequest(
        STREAM,
        (b: Buffer) => b,
        (b: Buffer) => b,
        md,
      );
      call.on("status", (s) => resolve({ code: s.code, details: s.details }));
      call.on("error", () => {});
      call.on("data", () => {});
    });

  const refusedTotals = async () => {
    const text = await (await fetch(metricsUrl)).text();
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^switchyard_hub_auth_refused_total\{reason="([^"]+)"\} (\d+)/gm))
      out[m[1]!] = Number(m[2]);
    return out;
  };

  it("answers alike for an unknown id and a wrong secret, throttles the guesses, logs a summary, and still admits an agent", async (t) => {
    const known = stack.createToken("prod").split(".")[0]!;
    const legit = stack.createToken("prod");
    const Raw = grpc.makeGenericClientConstructor({}, "Raw");
    const client = new Raw(stack.hubAddress, grpc.credentials.createInsecure());
    try {
      const unknownId = await attempt(client, "zzzzzz.0123456789abcdef");
      const wrongSecret = await attempt(client, `${known}.0123456789abcdef`);
      assert.equal(unknownId.code, grpc.status.UNAUTHENTICATED);
      assert.deepEqual(wrongSecret, unknownId, "an unknown id and a wrong secret get the same answer");
      assert.doesNotMatch(unknownId.details, /zzzzzz|is unknown|has a wrong secret/, unknownId.details);

      // 600 guesses from one client: half at unknown ids, half at the known id, 20 at a time
      const codes: number[] = [unknownId.code, wrongSecret.code];
      for (let i = 0; i < ATTEMPTS - 2; i += 20) {
        const batch = Array.from({ length: Math.min(20, ATTEMPTS - 2 - i) }, (_, j) => {
          const secret = randomBytes(8).toString("hex");
          const id = (i + j) % 2 ? known : randomBytes(3).toString("hex");
          return attempt(client, `${id}.${secret}`);
        });
        for (const r of await Promise.all(batch)) codes.push(r.code);
      }
      const unauthenticated = codes.filter((c) => c === grpc.status.UNAUTHENTICATED).length;
      const exhausted = codes.filter((c) => c === grpc.status.RESOURCE_EXHAUSTED).length;
      assert.equal(unauthenticated + exhausted, ATTEMPTS, `codes: ${[...new Set(codes)].join(",")}`);
      assert.ok(exhausted > ATTEMPTS / 2, `most guesses refused unchecked (${exhausted} of ${ATTEMPTS})`);

      // the metric agrees: the throttled ones never reached the secret check
      const totals = await waitUntil("the refusals to be counted", async () => {
        const t = await refusedTotals();
        return (t["throttled"] ?? 0) === exhausted ? t : undefined;
      });
      assert.equal((totals["token-unknown"] ?? 0) + (totals["token-wrong-secret"] ?? 0), unauthenticated);
      assert.ok((totals["token-wrong-secret"] ?? 0) >= 1);
      t.diagnostic(
        `refused after the check ${unauthenticated}, unchecked ${exhausted}; metric ${JSON.stringify(totals)}`,
      );
    } finally {
      client.close();
    }

    // the log: a few summary lines that add up to every attempt, not 600 lines
    const hub = stack.hub!;
    const summaries = await waitUntil(
      "the hub to log its summary of the refusals",
      () => {
        const lines = hub
          .output()
          .split("\n")
          .filter((l) => l.includes('"msg":"agent authentication refused"'))
          .map(
            (l) => JSON.parse(l) as { source?: string; failures: number; throttled: number; reasons: object },
          );
        const total = lines.reduce((n, l) => n + l.failures + l.throttled, 0);
        return total >= ATTEMPTS ? lines : undefined;
      },
      60_000,
    );
    assert.equal(
      summaries.reduce((n, l) => n + l.failures + l.throttled, 0),
      ATTEMPTS,
    );
    t.diagnostic(`${summaries.length} summary line(s): ${JSON.stringify(summaries)}`);
    assert.ok(summaries.length <= 6, `${summaries.length} summary lines`);
    assert.ok(summaries.every((l) => l.source === "127.0.0.1"));
    assert.ok(
      hub.output().split("\n").length < 100,
      `the hub's log stays short: ${hub.output().split("\n").length} lines`,
    );

    // a legitimate agent at another address joins at once and gets its view
    forwarder = await forwardFrom("127.0.0.2", {
      host: "127.0.0.1",
      port: Number(stack.hubAddress.split(":")[1]),
    });
    const agent = await stack.startAgent(legit, [], [forwarder.address]);
    await agent.waitFor(/"msg":"joined hub"/);
    assert.doesNotMatch(agent.output(), /hub refused this agent|too many failed/);
    await waitUntil("the agent's view to resolve the ClusterIP", async () =>
      (await stack.probe(VIP, 80)).ok ? true : undefined,
    );
  });
});
