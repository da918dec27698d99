/**
 * Pure: the node's desired entry set (entry address:port/protocol → the
 * selected local pods) → the text of one `nft -f` transaction that replaces
 * the agent's table `inet switchyard_entry` whole, and the reverse — the
 * JSON `nft -j list table` prints → the entry set it holds — so the adapter
 * can check what the kernel has (docs/dataplane.md, "Node entry DNAT").
 */
import { formatIp16, ipFamily, parseIpTo16 } from "@switchyard/lib/ip";

export const ENTRY_TABLE = "switchyard_entry";
export const ENTRY_FAMILY = "inet";
/**
 * Before the nat chains of kube-proxy (iptables-nft's `nat PREROUTING`, its
 * nftables mode's `dstnat`, both at -100) and of CNIs that hook there: the
 * first DNAT of a connection wins, so entry:port is ours even when a
 * NodePort has the same number.
 */
export const ENTRY_PRIORITY = -110;

export type EntryProtocol = "TCP" | "UDP";
export type EntryTarget = { ip: string; port: number };
/** One entry port: traffic to address:port/protocol goes to one of the targets (none: not programmed). */
export type EntryRule = {
  address: string;
  port: number;
  protocol: EntryProtocol;
  targets: EntryTarget[];
  /** who asked for it (a policy's resource name), for the rule's comment and errors */
  owner: string;
};

export type EntryProblem = { entry: string; message: string };

export function entryKey(e: { address: string; port: number; protocol: EntryProtocol }): string {
  return `${ipFamily(e.address) === 6 ? `[${e.address}]` : e.address}:${e.port}/${e.protocol}`;
}

/** Canonical text of an address (nft prints IPv6 compressed; so do we). */
function canonicalIp(ip: string): string | undefined {
  const p = parseIpTo16(ip);
  return p.ok ? formatIp16(p.value) : undefined;
}

function badTarget(t: EntryTarget, family: 4 | 6): string | undefined {
  const fam = ipFamily(t.ip);
  if (!fam) return `target "${t.ip}" is not an IP address`;
  if (fam !== family) return `target ${t.ip} is not of the entry address's family (IPv${family})`;
  if (!(Number.isInteger(t.port) && t.port >= 1 && t.port <= 65535))
    return `target ${t.ip} port ${t.port} is out of range 1-65535`;
  const c = canonicalIp(t.ip)!;
  if (c === "::1" || c.startsWith("127."))
    return `target ${t.ip} is a loopback address: DNAT from another host to loopback needs route_localnet and is refused; select pods with their own address`;
  return undefined;
}

/**
 * Validates and normalises the entry set: sorted by key, addresses
 * canonical, targets sorted and deduplicated, entries without targets
 * dropped (nothing listens there: the host answers as for any closed
 * port). A bad entry is left out and named; the others stand.
 */
export function normaliseEntries(entries: readonly EntryRule[]): {
  entries: EntryRule[];
  problems: EntryProblem[];
} {
  const out = new Map<string, EntryRule>();
  const problems: EntryProblem[] = [];
  for (const e of entries) {
    const fam = ipFamily(e.address);
    const label = `${e.owner}: entry ${e.address}:${e.port}/${e.protocol}`;
    if (!fam) {
      problems.push({ entry: label, message: `entry address "${e.address}" is not an IP address` });
      continue;
    }
    if (!(Number.isInteger(e.port) && e.port >= 1 && e.port <= 65535)) {
      problems.push({ entry: label, message: `entry port ${e.port} is out of range 1-65535` });
      continue;
    }
    if (e.protocol !== "TCP" && e.protocol !== "UDP") {
      problems.push({ entry: label, message: `protocol ${String(e.protocol)} is not TCP or UDP` });
      continue;
    }
    const bad = e.targets.map((t) => badTarget(t, fam)).find((m) => m !== undefined);
    if (bad) {
      problems.push({ entry: label, message: bad });
      continue;
    }
    const address = canonicalIp(e.address)!;
    const key = entryKey({ ...e, address });
    const seen = new Set<string>();
    const targets = e.targets
      .map((t) => ({ ip: canonicalIp(t.ip)!, port: t.port }))
      .filter((t) => {
        const k = `${t.ip}|${t.port}`;
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      })
      .sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port));
    const held = out.get(key);
    if (held) {
      problems.push({
        entry: label,
        message: `${key} is already taken by ${held.owner}; this one is left out`,
      });
      continue;
    }
    if (targets.length > 0)
      out.set(key, { address, port: e.port, protocol: e.protocol, targets, owner: e.owner });
  }
  const sorted = [...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
  return { entries: sorted, problems };
}

function quote(s: string): string {
  // nft comments are double-quoted strings of at most 128 bytes; keep them plain
  return `"${s.replace(/[^A-Za-z0-9_./:[\] -]/g, "_").slice(0, 120)}"`;
}

/**
 * The whole table as one transaction: create it if missing, delete it, and
 * define it again — nft applies the file atomically (all or nothing, one
 * generation), so there is no moment without the rules, a stale table from
 * an earlier run is replaced rather than duplicated, and established
 * connections keep their conntrack NAT binding. With no entries the table
 * still exists, empty (so a start always finds the same shape).
 */
export function computeEntryRuleset(entries: readonly EntryRule[]): string {
  const t = `${ENTRY_FAMILY} ${ENTRY_TABLE}`;
  const lines = [
    `table ${t} {}`,
    `delete table ${t}`,
    `table ${t} {`,
    `  comment "switchyard-agent: node entry DNAT (docs/dataplane.md)"`,
    `  chain prerouting {`,
    `    type nat hook prerouting priority ${ENTRY_PRIORITY}; policy accept;`,
    `    jump entries`,
    `  }`,
    `  chain output {`,
    `    type nat hook output priority ${ENTRY_PRIORITY}; policy accept;`,
    `    jump entries`,
    `  }`,
    `  chain entries {`,
  ];
  const chains: string[] = [];
  for (const fam of [4, 6] as const) {
    const elems: string[] = [];
    entries.forEach((e, i) => {
      if (ipFamily(e.address) !== fam) return;
      const proto = e.protocol.toLowerCase();
      const chain = `entry_${i}`;
      elems.push(`${e.address} . ${proto} . ${e.port} : goto ${chain}`);
      const map = e.targets.map((tg, j) => `${j} : ${tg.ip} . ${tg.port}`).join(", ");
      chains.push(
        `  chain ${chain} {`,
        `    meta l4proto ${proto} dnat ip${fam === 6 ? "6" : ""} addr . port to numgen random mod ${e.targets.length} map { ${map} } comment ${quote(`${entryKey(e)} ${e.owner}`)}`,
        `  }`,
      );
    });
    if (elems.length > 0)
      lines.push(
        `    ip${fam === 6 ? "6" : ""} daddr . meta l4proto . th dport vmap { ${elems.join(", ")} }`,
      );
  }
  lines.push(`  }`, ...chains, `}`, "");
  return lines.join("\n");
}

type Json = unknown;
const obj = (v: Json): Record<string, Json> | undefined =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, Json>) : undefined;

/** A set's elements as printed by `nft -j`: `[[key, value], …]` (one element may come unwrapped). */
function setElements(data: Json): Array<[Json, Json]> {
  const set = obj(data)?.["set"];
  if (!Array.isArray(set)) return [];
  if (set.length === 2 && !Array.isArray(set[0])) return [set as [Json, Json]];
  return set.filter((x): x is [Json, Json] => Array.isArray(x) && x.length === 2);
}

/**
 * What the table holds, read from `nft -j list table inet switchyard_entry`:
 * the entry set (owner: the rule's comment), or an error naming what it
 * could not read (then the adapter replaces the table).
 */
export function parseEntryTable(
  json: string,
): { ok: true; entries: EntryRule[] } | { ok: false; error: string } {
  let doc: Json;
  try {
    doc = JSON.parse(json);
  } catch (e) {
    return { ok: false, error: `nft -j output is not JSON: ${(e as Error).message}` };
  }
  const items = obj(doc)?.["nftables"];
  if (!Array.isArray(items)) return { ok: false, error: "nft -j output has no nftables array" };
  const dispatch: Array<{ address: string; protocol: EntryProtocol; port: number; chain: string }> = [];
  const targets = new Map<string, { targets: EntryTarget[]; owner: string }>();
  for (const item of items) {
    const rule = obj(obj(item)?.["rule"]);
    if (!rule) continue;
    const chain = String(rule["chain"]);
    const expr = Array.isArray(rule["expr"]) ? rule["expr"] : [];
    if (chain === "entries") {
      for (const x of expr) {
        const vmap = obj(obj(x)?.["vmap"]);
        if (!vmap) continue;
        for (const [k, v] of setElements(vmap["data"])) {
          const parts = obj(k)?.["concat"];
          const to = obj(obj(v)?.["goto"])?.["target"];
          if (!Array.isArray(parts) || parts.length !== 3 || typeof to !== "string")
            return { ok: false, error: `unexpected dispatch element in chain entries: ${JSON.stringify(k)}` };
          const [addr, proto, port] = parts as [Json, Json, Json];
          dispatch.push({
            address: canonicalIp(String(addr)) ?? String(addr),
            protocol: String(proto).toUpperCase() as EntryProtocol,
            port: Number(port),
            chain: to,
          });
        }
      }
    } else if (chain.startsWith("entry_")) {
      const comment = typeof rule["comment"] === "string" ? rule["comment"] : "";
      const owner = comment.includes(" ") ? comment.slice(comment.indexOf(" ") + 1) : "";
      for (const x of expr) {
        const dnat = obj(obj(x)?.["dnat"]);
        if (!dnat) continue;
        const map = obj(obj(dnat["addr"])?.["map"]);
        const list: EntryTarget[] = [];
        for (const [, v] of setElements(map?.["data"])) {
          const parts = obj(v)?.["concat"];
          if (!Array.isArray(parts) || parts.length !== 2)
            return { ok: false, error: `unexpected DNAT target in chain ${chain}: ${JSON.stringify(v)}` };
          list.push({ ip: canonicalIp(String(parts[0])) ?? String(parts[0]), port: Number(parts[1]) });
        }
        targets.set(chain, { targets: list, owner });
      }
    }
  }
  const entries: EntryRule[] = [];
  for (const d of dispatch) {
    const t = targets.get(d.chain);
    if (!t) return { ok: false, error: `dispatch to chain ${d.chain}, which holds no DNAT rule` };
    entries.push({
      address: d.address,
      port: d.port,
      protocol: d.protocol,
      targets: t.targets,
      owner: t.owner,
    });
  }
  return { ok: true, entries: normaliseEntries(entries).entries };
}

/** Whether two normalised entry sets program the same thing (owners aside: they are only comments). */
export function sameEntries(a: readonly EntryRule[], b: readonly EntryRule[]): boolean {
  const key = (e: EntryRule) => `${entryKey(e)}>${e.targets.map((t) => `${t.ip}|${t.port}`).join(",")}`;
  return a.length === b.length && a.every((e, i) => key(e) === key(b[i]!));
}
