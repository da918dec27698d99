/**
 * Child processes for tests and the demo: start, wait for a line on stdout,
 * collect output, stop by PID (only processes we started).
 */
import { type ChildProcess, execFile, type SpawnOptions, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export type Proc = {
  cp: ChildProcess;
  output: () => string;
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
};

export function watchProcess(cp: ChildProcess): Proc {
  let out = "";
  const waiters: Array<{ re: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of [...waiters]) {
      const m = out.match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  cp.stdout?.on("data", onData);
  cp.stderr?.on("data", onData);
  const exited = new Promise<number | null>((resolve) => cp.on("exit", (code) => resolve(code)));
  return {
    cp,
    output: () => out,
    waitFor: (re, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const m = out.match(re);
        if (m) return resolve(m);
        const t = setTimeout(
          () => reject(new Error(`timed out waiting for ${re} in output:\n${out.slice(-4000)}`)),
          timeoutMs,
        );
        const w = {
          re,
          resolve: (x: RegExpMatchArray) => {
            clearTimeout(t);
            resolve(x);
          },
        };
        waiters.push(w);
        exited.then((code) => {
          if (waiters.includes(w)) {
            clearTimeout(t);
            reject(new Error(`process exited (${code}) before ${re}; output:\n${out.slice(-4000)}`));
          }
        });
      }),
    stop: async (signal = "SIGTERM") => {
      if (cp.exitCode !== null || cp.signalCode !== null) return cp.exitCode;
      try {
        if (cp.pid) process.kill(cp.pid, signal);
      } catch (e) {
        // it ended between the check above and the signal: its exit event is on its way
        if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
      }
      const timer = setTimeout(() => cp.pid && cp.exitCode === null && process.kill(cp.pid, "SIGKILL"), 5000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/**
 * Runs a TypeScript entry point of this repo to its end, asynchronously (a
 * test server in this process keeps answering meanwhile): exit status and output.
 */
export function runNode(
  script: string,
  args: string[],
): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [path.join(REPO, script), ...args], (e, stdout, stderr) =>
      resolve({ status: e ? Number(e.code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** Runs a TypeScript entry point of this repo with the same Node. */
export function startNode(script: string, args: string[], opts: SpawnOptions = {}): Proc {
  return watchProcess(
    spawn(process.execPath, [path.join(REPO, script), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      ...opts,
    }),
  );
}

export async function waitUntil<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`gave up waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
