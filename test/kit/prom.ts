/**
 * Reading a Prometheus text exposition in tests: scrape a URL, take one
 * sample's value by name and labels.
 */
export type Samples = Map<string, number>;

/** `name{a="x",b="y"}` → value, labels in the order the exposition gives them. */
export function parsePromText(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

export async function scrape(base: string): Promise<Samples> {
  const res = await fetch(`${base}/metrics`);
  if (res.status !== 200) throw new Error(`GET ${base}/metrics: ${res.status}`);
  return parsePromText(await res.text());
}

/** The value of `name` with exactly these labels (undefined when absent). */
export function sample(s: Samples, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const [key, v] of s) {
    const brace = key.indexOf("{");
    const n = brace < 0 ? key : key.slice(0, brace);
    if (n !== name) continue;
    const got = Object.fromEntries(
      [...(brace < 0 ? "" : key.slice(brace + 1, -1)).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [
        m[1]!,
        m[2]!,
      ]),
    );
    const want = Object.entries(labels);
    if (want.length === Object.keys(got).length && want.every(([k, x]) => got[k] === x)) return v;
  }
  return undefined;
}

/** GET a path; the status code and body. */
export async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}
