#!/usr/bin/env bash
# Installs dependencies, builds the extension and the daemon, installs the extension into
# PostgreSQL 15 (needs root). Shared first step of `make check`, `make run`, `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
make -s extension daemon
if [[ $(id -u) -eq 0 ]]; then
  make -s install-extension >/dev/null
else
  echo "build: not root, so the extension is not installed into PostgreSQL; run 'sudo make install-extension'" >&2
fi
