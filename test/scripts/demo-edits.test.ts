import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeEdit, summarizeObjects } from "../../scripts/demo-edits.ts";
import { readObjects } from "../../services/hub/src/sources/directory.ts";

const slice = (addrs: string[], port = 8080) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-abc12, namespace: demo, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: ${port}, protocol: TCP }]
endpoints: [${addrs.map((a) => `{ addresses: [${a}] }`).join(", ")}]
`;
const svc = (port: number) => `apiVersion: v1
kind: Service
metadata: { name: web, namespace: demo }
spec: { clusterIP: 10.96.0.10, ports: [{ name: http, port: ${port}, targetPort: http }] }
`;
const summary = (yaml: string) => summarizeObjects(readObjects(yaml).objects);

describe("demo: an edit of its YAML in words", () => {
  it("says an endpoint removed or added, and a port changed", () => {
    const before = summary(`${svc(80)}---\n${slice(["198.18.0.11", "198.18.0.12"])}`);
    assert.deepEqual(describeEdit(before, summary(`${svc(80)}---\n${slice(["198.18.0.11"])}`)), [
      "endpoint removed: demo/web 198.18.0.12",
    ]);
    assert.deepEqual(
      describeEdit(before, summary(`${svc(81)}---\n${slice(["198.18.0.11", "198.18.0.12", "198.18.0.13"])}`)),
      [
        "service changed: demo/web: 10.96.0.10 ports 80/TCP → http → 10.96.0.10 ports 81/TCP → http",
        "endpoint added: demo/web 198.18.0.13 (port 8080, ready)",
      ],
    );
    assert.deepEqual(describeEdit(before, before), []);
  });
});
