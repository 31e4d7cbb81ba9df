#!/usr/bin/env bash
# `make bench`: every benchmark suite under bench/*/run.sh, each side by side with its
# anchor (PgBouncer, direct PostgreSQL, plain trigger + pg_notify) in the same run.
# Results go to bench/results/<suite>/. `make bench SUITES="pooler"` runs a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
suites=${SUITES:-$(ls -d bench/*/ | xargs -n1 basename | grep -v -e '^results$' -e '^report$')}
for suite in $suites; do
  [[ -x bench/$suite/run.sh ]] || continue
  echo "== bench/$suite"
  mkdir -p "bench/results/$suite"
  bench/$suite/run.sh "bench/results/$suite"
done
