#!/usr/bin/env bash
# Generates TypeScript for grpc-js from proto/ with ts-proto (local plugin, offline).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-proto/gen}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#out: proto/gen#out: $tmp#" buf.gen.yaml > "$tmp/buf.gen.yaml"
npx buf generate --template "$tmp/buf.gen.yaml"
rm -f "$tmp/buf.gen.yaml"
rm -rf "$out"
mkdir -p "$out"
cp -r "$tmp"/. "$out"/
