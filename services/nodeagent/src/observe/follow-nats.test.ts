import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type NatsServer, startNatsServer } from "@switchyard/testkit/nats";
import { connectForFollow, followSubject } from "./follow-nats.ts";

/** `switchyard events --since` on a NATS that keeps no history: one clear error, not an "internal error" */
describe("followSubject --since without a history", () => {
  const servers: Record<string, NatsServer> = {};
  before(async () => {
    servers["plain"] = await startNatsServer();
    servers["jetstream"] = await startNatsServer({ jetstream: true });
  });
  after(async () => {
    for (const s of Object.values(servers)) await s.stop();
  });

  for (const [kind, want] of [
    [
      "plain",
      /^no event history on this NATS \(JetStream is not enabled on it\): .*follow live without --since$/,
    ],
    [
      "jetstream",
      /^no event history on this NATS \(stream SWITCHYARD_EVENTS\): .*follow live without --since$/,
    ],
  ] as const)
    it(`${kind} nats-server: not_found, saying why and what to do`, async () => {
      const nc = await connectForFollow({ servers: [servers[kind]!.url] });
      try {
        await assert.rejects(
          followSubject(
            nc,
            "switchyard.nat.>",
            new Date(Date.now() - 60_000),
            () => {},
            () => {},
          ),
          (e: Error & { code?: string }) => {
            assert.equal(e.code, "not_found", e.message);
            assert.match(e.message, want);
            return true;
          },
        );
      } finally {
        await nc.close();
      }
    });
});
