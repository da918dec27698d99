/** `switchyard-agent events [on|off] [--sample N]`: shows or changes NAT events at run time, in the pinned settings. */
import { type Command, parseFlags } from "@switchyard/lib/cli";
import { DEFAULT_PIN_DIR, fail } from "./common.ts";

const HELP = `switchyard-agent events — show or change NAT events at run time (no reload)

Usage:
  switchyard-agent events [on|off] [--sample N] [--pin-dir DIR]

With no argument, prints whether events are on and the sampling.

Flags:
  --sample N             emit one event in N translations (1 = every one)
  --pin-dir DIR          bpffs directory of the agent's maps (default ${DEFAULT_PIN_DIR})
`;

export const eventsCommand: Command = {
  name: "events",
  summary: [["events [on|off] [--sample N]", "show or change NAT events at run time (no reload)"]],
  help: HELP,
  run: runEvents,
};

async function runEvents(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(
    argv,
    { "pin-dir": { type: "string", default: DEFAULT_PIN_DIR }, sample: { type: "string" } },
    { positionals: true },
  );
  if (positionals.length > 1) fail(`events takes one argument, on or off (got "${positionals.join(" ")}")`);
  // the command line is checked before the pins are looked for
  const [onOff] = positionals;
  if (onOff !== undefined && onOff !== "on" && onOff !== "off") fail(`events: "${onOff}" is not on or off`);
  const sample = values.sample === undefined ? undefined : Number(values.sample);
  if (sample !== undefined && (!Number.isInteger(sample) || sample < 1))
    fail(`--sample "${values.sample}" must be a whole number ≥ 1`);
  const { openPinnedMaps } = await import("../bpf/pinned.ts");
  const maps = openPinnedMaps(values["pin-dir"]);
  const cur = maps.readSettings();
  const sampleOneIn = sample ?? (cur.sampleOneIn || 1);
  const next = { eventsOn: onOff === undefined ? cur.eventsOn : onOff === "on", sampleOneIn };
  if (onOff !== undefined || values.sample !== undefined) maps.writeSettings(next);
  process.stdout.write(`events ${next.eventsOn ? "on" : "off"}, sampling one in ${next.sampleOneIn}\n`);
}
