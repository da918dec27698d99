/**
 * Why the agent cannot talk to a hub, said with the flag to fix: a CA that
 * did not sign the hub's certificate, TLS on one side only.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { makeCa, makeServerCert } from "../../../../test/kit/certs.ts";
import { explainTlsError, explainTransportMismatch, probeHubTransport } from "./transport-diagnosis.ts";

const HUB = "10.0.0.5:7443";

describe("transport diagnosis", () => {
  it("turns OpenSSL's chain errors into the flag at fault", () => {
    const ca = { flag: "--hub-ca" as const, file: "/etc/hub-ca.crt" };
    assert.equal(
      explainTlsError(
        "No connection established. Last error: Error: unable to verify the first certificate",
        HUB,
        ca,
      ),
      "the hub's certificate (10.0.0.5:7443) is not signed by --hub-ca /etc/hub-ca.crt; give the CA that signed the hub's --tls-cert",
    );
    assert.match(
      explainTlsError("self-signed certificate in certificate chain", HUB, {
        flag: "--hub-ca-hash",
        file: "/s/hub-ca.crt",
      })!,
      /not signed by the CA pinned by --hub-ca-hash \(kept in \/s\/hub-ca\.crt\)/,
    );
    assert.match(
      explainTlsError("Hostname/IP does not match certificate's altnames", HUB, ca)!,
      /not for the address dialled/,
    );
    assert.match(explainTlsError("certificate has expired", HUB, ca)!, /has expired/);
    assert.equal(explainTlsError("Failed to connect", HUB, ca), undefined);
    assert.equal(explainTlsError("unable to verify the first certificate", HUB, undefined), undefined);
  });

  it("says TLS on one side only with the flags of both", () => {
    assert.match(
      explainTransportMismatch(HUB, "tls", undefined)!,
      /^the hub \(10\.0\.0\.5:7443\) speaks TLS, and this agent has no CA for it; give --hub-ca FILE/,
    );
    assert.match(
      explainTransportMismatch(HUB, "h2c", { flag: "--hub-ca", file: "/ca.crt" })!,
      /speaks plain gRPC \(no TLS\), and this agent expects TLS \(--hub-ca \/ca\.crt\); start the hub with --tls-cert/,
    );
    assert.equal(explainTransportMismatch(HUB, "tls", { flag: "--hub-ca", file: "/ca.crt" }), undefined);
    assert.equal(explainTransportMismatch(HUB, "h2c", undefined), undefined);
  });

  it("asks a port which transport it speaks: TLS, HTTP/2 in clear, or nothing", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-probe-"));
    const pki = makeCa(dir);
    const cert = makeServerCert(pki, "hub", { ips: ["127.0.0.1"] });
    const tlsServer = http2.createSecureServer({
      cert: fs.readFileSync(cert.cert),
      key: fs.readFileSync(cert.key),
    });
    const plain = http2.createServer();
    try {
      await new Promise<void>((r) => tlsServer.listen(0, "127.0.0.1", r));
      await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
      const port = (s: { address(): unknown }) => (s.address() as AddressInfo).port;
      assert.deepEqual(await probeHubTransport(`127.0.0.1:${port(tlsServer)}`), { speaks: "tls" });
      assert.deepEqual(await probeHubTransport(`127.0.0.1:${port(plain)}`), { speaks: "h2c" });
      const closed = port(plain);
      await new Promise((r) => plain.close(r));
      assert.deepEqual(await probeHubTransport(`127.0.0.1:${closed}`), {
        speaks: "unreachable",
        error: "ECONNREFUSED",
      });
    } finally {
      tlsServer.close();
      plain.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
