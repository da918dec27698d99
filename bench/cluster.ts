/** The benchmarks' cluster: Service i (10.96.x.y) and its one EndpointSlice of 10 pods spread over 1,000 nodes. */
export const ENDPOINTS_PER_SERVICE = 10;

const podIp = (k: number) => `10.${64 + ((k >> 16) & 63)}.${(k >> 8) & 255}.${k & 255}`;

export function benchService(i: number) {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: `s${i}`, namespace: "bench" },
    spec: { clusterIP: `10.96.${i >> 8}.${i & 255}`, ports: [{ name: "http", port: 80, protocol: "TCP" }] },
  };
}

/** `unready`: the index of the one endpoint that is not ready (-1: all ready) */
export function benchSlice(i: number, unready = -1) {
  const n = ENDPOINTS_PER_SERVICE;
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: `s${i}-abcde`, namespace: "bench", labels: { "kubernetes.io/service-name": `s${i}` } },
    addressType: "IPv4",
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    endpoints: Array.from({ length: n }, (_, j) => ({
      addresses: [podIp(i * n + j + 1)],
      nodeName: `node-${(i * n + j) % 1000}`,
      conditions: { ready: j !== unready, serving: true, terminating: false },
    })),
  };
}
