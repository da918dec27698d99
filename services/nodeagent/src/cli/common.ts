/** What the agent's commands share: the default paths and how a command fails. */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { usageError } from "@switchyard/lib/cli";

const here = path.dirname(fileURLToPath(import.meta.url));
export const DEFAULT_OBJECT = path.resolve(here, "../../../../bpf/build/switchyard.bpf.o");
export const DEFAULT_PIN_DIR = "/sys/fs/bpf/switchyard";
export const DEFAULT_STATE_DIR = "/var/lib/switchyard-agent";

/** A wrong flag or a refused command: the reason on stderr in one line, exit code 2 (lib/cli.ts). */
export function fail(msg: string): never {
  return usageError(msg);
}
