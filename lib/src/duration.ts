/** "500ms", "30s", "15m", "24h", "7d" → milliseconds. */
import { err, ok, type Result } from "./errors.ts";

export function parseDuration(s: string): Result<number> {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(s.trim());
  if (!m) return err(`duration "${s}" is not like 500ms, 30s, 15m, 24h or 7d`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms"];
  return ok(Number(m[1]) * mult);
}
