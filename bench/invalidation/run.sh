#!/usr/bin/env bash
# bench/invalidation: commit-to-purge latency at 1,000 tx/s, pattern purge on 1,000,000 keys
# (daemon vs redis-cli --scan | xargs unlink), sustained 1,000 pattern invalidations/s.
# Usage: bench/invalidation/run.sh [OUTDIR] [--quick]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-bench/results/invalidation}
shift || true
exec /usr/bin/python3 bench/invalidation/bench.py --out "$out" "$@"
