/**
 * Why the agent cannot talk to a hub, in words that say what to fix:
 * grpc-js reports a TLS mismatch as "Failed to connect" and a wrong CA as
 * OpenSSL's chain error. `explainTlsError` maps a certificate error to the
 * flag at fault (pure); `probeHubTransport` asks the hub's port, once, which
 * transport it speaks when the agent's connects fail without one.
 */
import net from "node:net";
import tls from "node:tls";

/** where the agent's trust in the hub comes from, as a person wrote it */
export type CaSource = { flag: "--hub-ca" | "--hub-ca-hash"; file: string } | undefined;

function caWords(ca: NonNullable<CaSource>): string {
  return ca.flag === "--hub-ca"
    ? `--hub-ca ${ca.file}`
    : `the CA pinned by --hub-ca-hash (kept in ${ca.file})`;
}

/** A certificate error of grpc-js/OpenSSL → what is wrong and what to do; undefined for other errors. */
export function explainTlsError(details: string, hub: string, ca: CaSource): string | undefined {
  if (!ca) return undefined;
  if (
    /unable to verify the first certificate|unable to get local issuer|self[- ]signed certificate|certificate signature failure|unable to get issuer certificate/i.test(
      details,
    )
  )
    return `the hub's certificate (${hub}) is not signed by ${caWords(ca)}; give the CA that signed the hub's --tls-cert`;
  if (/does not match certificate's altnames|Hostname\/IP does not match/i.test(details))
    return `the hub's certificate is not for the address dialled (${hub}); dial an address in its subjectAltName, or make its certificate with this one`;
  if (/certificate has expired|certificate is not yet valid/i.test(details))
    return `the hub's certificate (${hub}) ${/expired/i.test(details) ? "has expired" : "is not valid yet"}; renew it (or check this host's clock)`;
  return undefined;
}

/** whether grpc-js's message is a failure to set up the connection at all (where a transport mismatch hides) */
export function isConnectFailure(details: string): boolean {
  return /Failed to connect|Connection dropped|wrong version number|packet length too long|ECONNRESET|socket hang up|Protocol error|unexpected eof/i.test(
    details,
  );
}

function splitHostPort(hub: string): { host: string; port: number } | undefined {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(hub);
  return m ? { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) } : undefined;
}

/**
 * What the hub's port speaks: "tls" when a TLS handshake completes, "h2c"
 * when it answers the HTTP/2 preface in clear with a SETTINGS frame,
 * "unreachable" (with the socket's error) when nothing accepts, "unknown"
 * otherwise.
 */
export async function probeHubTransport(
  hub: string,
  timeoutMs = 3000,
): Promise<{ speaks: "tls" | "h2c" | "unknown" } | { speaks: "unreachable"; error: string }> {
  const hp = splitHostPort(hub);
  if (!hp) return { speaks: "unknown" };
  const tlsAnswer = await new Promise<"tls" | string>((resolve) => {
    const s = tls.connect({
      host: hp.host,
      port: hp.port,
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
      ...(net.isIP(hp.host) ? {} : { servername: hp.host }),
    });
    const done = (r: string) => {
      s.destroy();
      resolve(r);
    };
    s.once("secureConnect", () => done("tls"));
    s.once("error", (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    s.setTimeout(timeoutMs, () => done("timeout"));
  });
  if (tlsAnswer === "tls") return { speaks: "tls" };
  if (tlsAnswer === "ECONNREFUSED" || tlsAnswer === "EHOSTUNREACH" || tlsAnswer === "ENETUNREACH")
    return { speaks: "unreachable", error: tlsAnswer };
  const h2c = await new Promise<boolean>((resolve) => {
    const s = net.connect(hp.port, hp.host);
    let got = Buffer.alloc(0);
    const done = (r: boolean) => {
      s.destroy();
      resolve(r);
    };
    s.once("connect", () => s.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"));
    s.on("data", (d: Buffer) => {
      got = Buffer.concat([got, d]);
      // a frame header: 3 bytes length, 1 byte type (4 = SETTINGS)
      if (got.length >= 9) done(got[3] === 4);
    });
    s.once("error", () => done(false));
    s.once("close", () => done(false));
    s.setTimeout(timeoutMs, () => done(false));
  });
  return { speaks: h2c ? "h2c" : "unknown" };
}

/** The mismatch between what the hub speaks and what this agent expects, said with the flags to fix it. */
export function explainTransportMismatch(hub: string, speaks: string, ca: CaSource): string | undefined {
  if (!ca && speaks === "tls")
    return `the hub (${hub}) speaks TLS, and this agent has no CA for it; give --hub-ca FILE (the CA of the hub's --tls-cert) or --hub-ca-hash sha256:… (as switchyard-hub serve prints it)`;
  if (ca && speaks === "h2c")
    return `the hub (${hub}) speaks plain gRPC (no TLS), and this agent expects TLS (${caWords(ca)}); start the hub with --tls-cert/--tls-key, or run the agent without a CA on a trusted network`;
  return undefined;
}
