/**
 * A throw-away CA and server certificates (openssl, ECDSA P-256) for tests
 * and the demo: the test API server and the hub serve real TLS with them.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

export type Pki = { dir: string; caCert: string; caKey: string };
export type ServerCert = { cert: string; key: string };

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

export function makeCa(dir: string, cn = "switchyard-test-ca"): Pki {
  fs.mkdirSync(dir, { recursive: true });
  const caKey = path.join(dir, "ca.key");
  const caCert = path.join(dir, "ca.crt");
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", caKey]);
  openssl([
    "req",
    "-x509",
    "-new",
    "-key",
    caKey,
    "-sha256",
    "-days",
    "2",
    "-subj",
    `/CN=${cn}`,
    "-out",
    caCert,
  ]);
  return { dir, caCert, caKey };
}

export function makeServerCert(pki: Pki, name: string, sans: { ips?: string[]; dns?: string[] }): ServerCert {
  const key = path.join(pki.dir, `${name}.key`);
  const csr = path.join(pki.dir, `${name}.csr`);
  const cert = path.join(pki.dir, `${name}.crt`);
  const ext = path.join(pki.dir, `${name}.ext`);
  const alt = [...(sans.ips ?? []).map((i) => `IP:${i}`), ...(sans.dns ?? []).map((d) => `DNS:${d}`)].join(
    ",",
  );
  fs.writeFileSync(
    ext,
    `subjectAltName=${alt}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n`,
  );
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
  openssl(["req", "-new", "-key", key, "-subj", `/CN=${name}`, "-out", csr]);
  openssl([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    pki.caCert,
    "-CAkey",
    pki.caKey,
    "-CAcreateserial",
    "-days",
    "2",
    "-sha256",
    "-extfile",
    ext,
    "-out",
    cert,
  ]);
  return { cert, key };
}
