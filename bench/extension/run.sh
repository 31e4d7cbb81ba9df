#!/usr/bin/env bash
# Extension benchmark: pgbench tpcb-like (scale 10, synchronous_commit=on, fsync=on) at
# 1, 4, 16 and 64 clients, interleaved, with (a) no rule, (b) preload mode + a rule on
# pgbench_accounts, (d) a PL/pgSQL trigger calling pg_notify per row ((c) direct mode on
# request); pgcohered and a private Redis consume the invalidations. For every run, the
# breakdown: CPU, wakeups, WAL and NOTIFYs per committed transaction for each process
# (bench/extension/breakdown.py). Then a 1,000,000-row UPDATE with and without a rule.
#   bench/extension/run.sh [OUTDIR] [--clients 1,4,16,64] [--configs b,d] [--skip-big-update]
#   BENCH_DURATION=20 BENCH_REPEAT=3 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-bench/results/extension}
mkdir -p "$out"
exec /usr/bin/python3 bench/extension/bench.py --out "$out" \
  --duration "${BENCH_DURATION:-20}" --repeat "${BENCH_REPEAT:-3}" "${@:2}"
