/** Kubernetes YAML for directory clusters in tests. */

/** A ClusterIP Service shop/NAME on port 80 ("http") with one slice: one endpoint on port 8080. */
export function serviceYaml(name: string, vip: string, backend: string): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: shop }
spec: { clusterIP: ${vip}, ports: [{ name: http, port: 80 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: shop, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints: [{ addresses: [${backend}] }]
`;
}

/**
 * A ClusterIP Service demo/NAME on port 80 ("http", target 8080) with one
 * slice whose endpoints are all on node-1, each ready or not.
 */
export function serviceWithEndpointsYaml(name: string, vip: string, eps: Array<[string, boolean]>): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: demo }
spec: { type: ClusterIP, clusterIP: ${vip}, clusterIPs: [${vip}], ports: [{ name: http, port: 80, protocol: TCP, targetPort: 8080 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: demo, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints:
${eps.map(([a, ready]) => `  - { addresses: [${a}], nodeName: node-1, conditions: { ready: ${ready}, serving: ${ready}, terminating: false } }`).join("\n")}
`;
}
