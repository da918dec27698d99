#!/usr/bin/env bash
# One idempotent set-up for the README's commands and CI: Debian packages,
# npm packages, the BPF object. Safe to run again; does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(clang llvm libbpf-dev libbpf1 bpftool nats-server iproute2 util-linux openssl make gcc libc6-dev iptables nftables conntrack libcap2-bin systemd libssl-dev libzstd-dev)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install ${missing[*]} (Switchyard's agent needs root for BPF anyway)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages: reinstall only when the lockfile changed since the last install
stamp=node_modules/.switchyard-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x node_modules/.bin/node ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# Node: the pinned LTS comes from the registry (node-linux-<arch>) and npm run puts it first on PATH
if ! node_modules/.bin/node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 24 ? 0 : 1)'; then
  echo "setup: node_modules/.bin/node is not Node 24; run npm ci again" >&2
  exit 1
fi

# BPF object, built against the running kernel's BTF
make -s -C bpf
