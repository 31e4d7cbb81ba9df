#!/usr/bin/env bash
# The pooler benchmark: pgbench through pgcohered, through Debian's PgBouncer with the
# same settings, and straight to PostgreSQL, in one run. Usage: run.sh [OUT_DIR] [bench.py options]
# (e.g. run.sh bench/results/pooler --duration 30 --repeats 3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../results/pooler}
shift || true
exec /usr/bin/python3 "$here/bench.py" --out "$out" "$@"
