#!/usr/bin/env bash
# Installs the Debian 12 packages pgcohere builds, tests and benchmarks with.
# Idempotent: packages already present are skipped, so a warm machine pays nothing.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang-14 libclang-rt-14-dev
  postgresql-15 postgresql-server-dev-15 postgresql-contrib
  libpq-dev libpg-query-dev libprotobuf-c-dev
  libboost-dev libboost-program-options-dev
  libhiredis-dev libssl-dev libsystemd-dev nlohmann-json3-dev
  libgtest-dev googletest
  # servers and clients for tests and benchmarks
  redis-server redis-tools pgbouncer
  python3 python3-pytest python3-psycopg python3-asyncpg python3-redis python3-prometheus-client
  python3-yaml
  # operations: promtool and a real Prometheus (alert rules, dashboard queries),
  # systemd-analyze (the unit), matplotlib (make bench-report's plots)
  prometheus systemd python3-matplotlib
  util-linux procps iproute2
  # scripts/check_asan_extension.sh: a library copy that loads the ASan runtime first
  patchelf
  # tests/test_net_faults.py: loss, partitions and half-open connections in network namespaces
  iptables
)

missing=()
# Node.js may come from NodeSource (npm bundled); only fall back to Debian's.
command -v npm >/dev/null || packages+=(nodejs npm)
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
