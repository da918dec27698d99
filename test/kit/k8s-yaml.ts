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
