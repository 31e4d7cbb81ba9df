#!/usr/bin/env bash
# The query cache benchmark: the chat load through pgcohered with the cache on and off,
# Debian's PgBouncer and direct PostgreSQL, interleaved; pgbench -S with the cache on but no
# policy matching; the cost of one hit. Needs the extension installed (bench/run.sh does it;
# by hand, under /work/.pginstall.lock on a shared machine).
# Usage: run.sh [OUT_DIR] [bench.py options], e.g. run.sh /tmp/out --clients 100 --duration 10 --repeats 1
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../results/cache}
shift || true
exec /usr/bin/python3 "$here/bench.py" --out "$out" "$@"
