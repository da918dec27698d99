/**
 * The hub's PKI: a CA and the hub's serving certificate (ECDSA P-256), made
 * with `openssl` (node:crypto reads certificates but cannot make them),
 * run with arguments, never through a shell. parseSans is pure.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { computeCaHash } from "@switchyard/lib/ca-pin";
import { err, ok, type Result, SwitchyardError } from "@switchyard/lib/errors";

export type Sans = { dns: string[]; ips: string[] };

const DNS_RE = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** --san values: IP addresses (v4, v6) and DNS names (a leading *. allowed). */
export function parseSans(values: string[]): Result<Sans> {
  if (values.length === 0)
    return err("give --san NAME-OR-IP at least once: the names agents dial the hub by");
  const out: Sans = { dns: [], ips: [] };
  for (const v of values) {
    if (net.isIP(v)) out.ips.push(v);
    else if (DNS_RE.test(v) && v.length <= 253) out.dns.push(v.toLowerCase());
    else return err(`--san "${v}" is neither an IP address nor a DNS name`);
  }
  return ok(out);
}

export type HubPki = { caCert: string; caKey: string; cert: string; key: string; caHash: string };

/** The files pki init writes into its directory. */
export function pkiFiles(dir: string) {
  return {
    caCert: path.join(dir, "ca.crt"),
    caKey: path.join(dir, "ca.key"),
    cert: path.join(dir, "hub.crt"),
    key: path.join(dir, "hub.key"),
  };
}

function openssl(args: string[]): void {
  try {
    execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    const x = e as Error & { code?: string; stderr?: Buffer };
    if (x.code === "ENOENT")
      throw new SwitchyardError("unavailable", "openssl is not installed (Debian: apt-get install openssl)");
    throw new SwitchyardError(
      "internal",
      `openssl ${args[0]} failed: ${x.stderr?.toString().trim() || x.message}`,
    );
  }
}

/**
 * Writes ca.crt, ca.key, hub.crt, hub.key (keys 0600) into dir (made 0700
 * if missing) and returns their paths and the CA's hash (the agent's
 * --hub-ca-hash). Refuses a directory that already holds any of them.
 */
export function createHubPki(
  dir: string,
  opts: { sans: Sans; days: number; caDays: number; cn: string },
): HubPki {
  const f = pkiFiles(dir);
  for (const p of Object.values(f))
    if (fs.existsSync(p))
      throw new SwitchyardError(
        "invalid_argument",
        `${p} exists: pki init never overwrites; choose another --out or remove it`,
      );
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = fs.mkdtempSync(path.join(dir, ".pki-"));
  try {
    const key = (file: string) => {
      openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file]);
      fs.chmodSync(file, 0o600);
    };
    key(f.caKey);
    openssl([
      "req",
      "-x509",
      "-new",
      "-key",
      f.caKey,
      "-sha256",
      "-days",
      String(opts.caDays),
      "-subj",
      `/CN=${opts.cn} CA`,
      "-addext",
      "basicConstraints=critical,CA:TRUE,pathlen:0",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
      "-out",
      f.caCert,
    ]);
    key(f.key);
    const csr = path.join(tmp, "hub.csr");
    const ext = path.join(tmp, "hub.ext");
    const alt = [...opts.sans.dns.map((d) => `DNS:${d}`), ...opts.sans.ips.map((i) => `IP:${i}`)].join(",");
    fs.writeFileSync(
      ext,
      `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${alt}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n`,
    );
    openssl(["req", "-new", "-key", f.key, "-subj", `/CN=${opts.cn}`, "-out", csr]);
    openssl([
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      f.caCert,
      "-CAkey",
      f.caKey,
      "-CAserial",
      path.join(tmp, "ca.srl"),
      "-CAcreateserial",
      "-days",
      String(opts.days),
      "-sha256",
      "-extfile",
      ext,
      "-out",
      f.cert,
    ]);
  } catch (e) {
    for (const p of Object.values(f)) fs.rmSync(p, { force: true });
    throw e;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return { ...f, caHash: computeCaHash(fs.readFileSync(f.caCert)) };
}
