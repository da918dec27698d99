/**
 * A destination as people write it on a command line: IP:PORT[/tcp|udp],
 * [IPv6]:PORT[/proto] (the brackets may be left out for IPv6 when the port
 * is the last colon's). Used by `switchyard-hub lookup` and
 * `switchyard-agent dump IP:PORT`.
 */
import net from "node:net";
import { err, ok, type Result } from "./errors.ts";

export type Destination = { ip: string; port: number; protocol: "tcp" | "udp" };

export function parseDestination(text: string): Result<Destination> {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^/]+)):(\d{1,5})(?:\/(tcp|udp|TCP|UDP))?$/.exec(text.trim());
  const ip = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !ip || !net.isIP(ip) || port < 1 || port > 65535)
    return err(`"${text}" is not IP:PORT[/tcp|udp] (e.g. 10.96.0.10:53/udp, [fd00::10]:443)`);
  return ok({ ip, port, protocol: (m[4]?.toLowerCase() as "tcp" | "udp" | undefined) ?? "tcp" });
}
