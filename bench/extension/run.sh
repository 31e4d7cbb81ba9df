#!/usr/bin/env bash
# Extension benchmark: pgbench tpcb-like (scale 10, 16 clients, synchronous_commit=on)
# with (a) no rule, (b) preload mode + a rule on pgbench_accounts, (c) direct mode,
# (d) a PL/pgSQL trigger calling pg_notify per row; then a 1,000,000-row UPDATE with
# and without a rule (time, peak backend memory). Private cluster on loopback.
#   bench/extension/run.sh [OUTDIR]      BENCH_DURATION=20 BENCH_REPEAT=3 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-bench/results/extension}
mkdir -p "$out"
exec /usr/bin/python3 bench/extension/bench.py --out "$out" \
  --duration "${BENCH_DURATION:-20}" --repeat "${BENCH_REPEAT:-3}" "${@:2}"
