/**
 * Hub CA pinning, like kubeadm's --discovery-token-ca-cert-hash: the hash is
 * SHA-256 over the CA certificate's SubjectPublicKeyInfo (DER), written
 * "sha256:<hex>". The agent fetches the hub's chain once over TLS without
 * trusting it, accepts it only if a certificate in it has the pinned hash
 * and signed the hub's certificate for the address dialled, and from then on
 * trusts that CA like any --hub-ca.
 */
import { createHash, X509Certificate } from "node:crypto";
import tls from "node:tls";
import { err, ok, type Result } from "./errors.ts";

export function computeCaHash(pem: string | Buffer): string {
  const spki = new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(spki).digest("hex")}`;
}

/** Fetches the hub's CA (PEM) from its TLS chain, checked against the pinned hash. */
export async function fetchPinnedCa(address: string, wantHash: string): Promise<Result<string>> {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(address);
  if (!m) return err(`hub address "${address}" is not HOST:PORT`);
  const host = m[1]!.replace(/^\[|\]$/g, "");
  return new Promise((resolve) => {
    const sock = tls.connect(
      { host, port: Number(m[2]), rejectUnauthorized: false, ALPNProtocols: ["h2"] },
      () => {
        const leafInfo = sock.getPeerCertificate(true);
        sock.end();
        const chain: X509Certificate[] = [];
        let cur: tls.DetailedPeerCertificate | undefined = leafInfo;
        const seen = new Set<string>();
        while (cur?.raw && !seen.has(cur.fingerprint256)) {
          seen.add(cur.fingerprint256);
          chain.push(new X509Certificate(cur.raw));
          cur = cur.issuerCertificate;
        }
        const leaf = chain[0];
        if (!leaf) return resolve(err(`hub ${address} presented no certificate`));
        const ca = chain.find((c) => computeCaHash(c.toString()) === wantHash);
        if (!ca) {
          return resolve(
            err(
              `no certificate in hub ${address}'s chain matches ${wantHash}; the hub must serve its CA (--tls-ca) and the hash must be the one it prints`,
            ),
          );
        }
        if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey))
          return resolve(err(`hub ${address}'s certificate is not signed by the pinned CA`));
        if (leaf.checkHost(host) === undefined && leaf.checkIP(host) === undefined) {
          return resolve(err(`hub ${address}'s certificate is not for "${host}"`));
        }
        resolve(ok(ca.toString()));
      },
    );
    sock.on("error", (e) => resolve(err(`cannot reach hub ${address} to fetch its CA: ${e.message}`)));
    sock.setTimeout(10_000, () => {
      sock.destroy();
      resolve(err(`hub ${address} did not answer the TLS handshake`));
    });
  });
}
