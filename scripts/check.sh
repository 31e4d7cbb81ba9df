#!/usr/bin/env bash
# The test command (`make check`): builds everything, then runs the unit tests (ctest),
# the extension's regression and isolation tests (pg_regress against a throwaway
# cluster, with and without shared_preload_libraries), and the end-to-end suite (pytest
# with its own PostgreSQL, Redis and pgcohered). Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh

echo "== unit tests (ctest; the extension's PostgreSQL-free core)"
(cd build/daemon && ctest --output-on-failure -j2)
make -s -C extension core-test

echo "== extension regression + isolation tests (make installcheck)"
# As users run it: against servers that have a signing secret, preloaded or not.
tmp=$(mktemp -d /tmp/pgcohere-check-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tmp/secret"
chmod 600 "$tmp/secret"
if [[ $(id -u) -eq 0 ]]; then chown postgres "$tmp/secret"; fi
for preload in pgcohere ''; do
  echo "-- shared_preload_libraries = '$preload'"
  if ! pg_virtualenv -t -v 15 -o "shared_preload_libraries=$preload" -o "pgcohere.secret_file=$tmp/secret" \
      make -s installcheck; then
    cat extension/regression.diffs extension/output_iso/regression.diffs 2>/dev/null || true
    exit 1
  fi
done

echo "== end-to-end tests (pytest)"
/usr/bin/python3 -m pytest -p no:cacheprovider tests/ "$@"
