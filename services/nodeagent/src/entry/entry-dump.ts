/**
 * `switchyard-agent dump`'s node-entry part: what the agent's nft table
 * holds, read back (not what the agent meant to write), as text lines or
 * JSON. Pure formatting over parseEntryTable; the reading is the adapter's.
 */
import { type EntryRule, entryKey, parseEntryTable } from "./nft-ruleset.ts";
import { NftEntryTable } from "./nft-table.ts";

/** The table's entries, or undefined when there is no table; an unreadable table is an error text. */
export function readEntryTable(table = new NftEntryTable()): EntryRule[] | undefined | { error: string } {
  try {
    const json = table.read();
    if (json === undefined) return undefined;
    const parsed = parseEntryTable(json);
    return parsed.ok ? parsed.entries : { error: parsed.error };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

export function formatEntryTable(held: EntryRule[] | undefined | { error: string }): string {
  if (held === undefined) return "";
  if (!Array.isArray(held))
    return `node entry (nft table inet switchyard_entry): not readable: ${held.error}\n`;
  let out = `node entry (nft table inet switchyard_entry): ${held.length} ${held.length === 1 ? "port" : "ports"}\n`;
  for (const e of held)
    out += `  ${entryKey(e)} -> ${e.targets.map((t) => entryKey({ address: t.ip, port: t.port, protocol: e.protocol }).replace(/\/(TCP|UDP)$/, "")).join(", ")}${e.owner ? `  (${e.owner})` : ""}\n`;
  return out;
}
