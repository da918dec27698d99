/**
 * gRPC health checking (grpc.health.v1) and server reflection on the hub,
 * so load balancers can probe it and `grpcurl` works without proto files.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import type * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, protoPath as healthProto } from "grpc-health-check";

const PROTO = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../../../proto/switchyard/v1/assignment.proto",
);
export const ASSIGNMENT_SERVICE = "switchyard.v1.AssignmentService";

export function addIntrospection(server: grpc.Server): HealthImplementation {
  const health = new HealthImplementation({ "": "SERVING", [ASSIGNMENT_SERVICE]: "SERVING" });
  health.addToServer(server);
  const pkg = loadSync([PROTO, healthProto], {
    includeDirs: [path.dirname(path.dirname(path.dirname(PROTO)))],
  });
  new ReflectionService(pkg).addToServer(server);
  return health;
}
