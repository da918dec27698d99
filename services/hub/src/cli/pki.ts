/** `switchyard-hub pki init`: a CA and the hub's certificate, and the CA hash agents pin. */
import { type Command, parseFlags, parseIntFlag, usageError } from "@switchyard/lib/cli";
import { createHubPki, parseSans } from "../pki/openssl-pki.ts";

const HELP = `switchyard-hub pki — the hub's CA and serving certificate

Usage:
  switchyard-hub pki init --out DIR --san NAME-OR-IP [--san …] [--days N] [--ca-days N] [--cn NAME]

Makes a CA (DIR/ca.crt, DIR/ca.key) and the hub's certificate signed by it
(DIR/hub.crt, DIR/hub.key; ECDSA P-256, keys 0600, DIR 0700 when made) for
every --san, and prints on stdout the CA's hash, which agents pin with
--hub-ca-hash (install and run). Never overwrites: a DIR that holds any of
these files is refused. Serve with them:
  switchyard-hub serve --tls-cert DIR/hub.crt --tls-key DIR/hub.key --tls-ca DIR/ca.crt …
(--tls-ca puts the CA in the served chain, so an agent fetches it on its
first join and checks it against the hash.) Keep DIR/ca.key offline once
the hub's certificate is made; a new hub certificate from the same CA:
openssl, or pki init into a new DIR (then agents need the new hash).
Needs openssl.

Flags:
  --out DIR              where the four files go
  --san NAME-OR-IP       a DNS name or IP address agents dial the hub by (repeatable; at least one)
  --days N               the hub certificate's validity in days (default 365)
  --ca-days N            the CA's validity in days (default 3650)
  --cn NAME              the certificates' common name (default switchyard-hub)
`;

export const pkiCommand: Command = {
  name: "pki",
  summary: [["pki init --out DIR --san NAME", "make a CA and the hub's certificate; print the CA hash"]],
  help: HELP,
  run: runPki,
};

function runPki(argv: string[]): void {
  const { values, positionals } = parseFlags(
    argv,
    {
      out: { type: "string" },
      san: { type: "string", multiple: true, default: [] },
      days: { type: "string", default: "365" },
      "ca-days": { type: "string", default: "3650" },
      cn: { type: "string", default: "switchyard-hub" },
    },
    { positionals: true },
  );
  if (positionals[0] !== "init" || positionals.length > 1)
    usageError(`pki: the command is \`pki init --out DIR --san NAME\` (got "${positionals.join(" ")}")`);
  if (!values.out) usageError("give --out DIR: where the CA and the hub's certificate go");
  const sans = parseSans(values.san);
  if (!sans.ok) usageError(sans.error);
  const days = parseIntFlag("days", values.days, 1, 36500);
  const caDays = parseIntFlag("ca-days", values["ca-days"], days, 36500);
  if (!/^[A-Za-z0-9 .-]{1,60}$/.test(values.cn))
    usageError(`--cn "${values.cn}": letters, digits, spaces, . and - only`);
  const pki = createHubPki(values.out, { sans: sans.value, days, caDays, cn: values.cn });
  process.stderr.write(
    `wrote ${pki.caCert}, ${pki.caKey} (0600), ${pki.cert} and ${pki.key} (0600): the hub's certificate for ${[...sans.value.dns, ...sans.value.ips].join(", ")}, ${days} days
serve with: --tls-cert ${pki.cert} --tls-key ${pki.key} --tls-ca ${pki.caCert}
agents join with: --hub-ca-hash ${pki.caHash}
`,
  );
  process.stdout.write(`${pki.caHash}\n`);
}
