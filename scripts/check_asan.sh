#!/usr/bin/env bash
# `make check-asan`: the daemon built with AddressSanitizer and UndefinedBehaviorSanitizer
# (build/asan), its unit tests, then the end-to-end suite against that binary; then the
# extension under ASan + UBSan (scripts/check_asan_extension.sh). Every daemon sanitizer
# report goes to build/asan/reports/; any report fails the run, even one from a daemon a test
# stopped on purpose (LeakSanitizer reports at exit). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
phase() { echo "== $1 (at $((SECONDS - started)) s)"; }
scripts/build.sh  # the e2e suite needs the (uninstrumented) extension installed
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
phase "daemon built with -fsanitize=address,undefined (build/asan)"
# -O1 -g1: -O2 with both sanitizers took over 10 minutes for one coroutine-heavy file
# (cache/service.cpp) on 2 cores; -O1 is what the sanitizers' documentation suggests, and line
# tables are enough for symbolized reports.
cmake -S daemon -B build/asan -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -g1" -DPGCOHERE_SANITIZE=ON \
  "${launcher[@]}" >/dev/null
cmake --build build/asan -j"${JOBS:-2}"
reports=$PWD/build/asan/reports
rm -rf "$reports" && mkdir -p "$reports"
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:halt_on_error=1"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
# Memory-bound assertions of the e2e suite compare RSS; ASan's shadow and quarantine change it.
export PGCOHERE_SANITIZE=1
phase "unit tests under ASan + UBSan"
(cd build/asan && ctest --output-on-failure -j2)
phase "end-to-end tests against build/asan/pgcohered"
status=0
# test_fuzz.py is left out: the fuzz targets are ASan + UBSan builds of their own.
PGCOHERED=$PWD/build/asan/pgcohered /usr/bin/python3 -m pytest -p no:cacheprovider tests/ \
  --ignore=tests/test_fuzz.py "$@" || status=$?
if compgen -G "$reports/*" >/dev/null; then
  echo "sanitizer reports (daemon):"
  for f in "$reports"/*; do echo "--- $f"; head -60 "$f"; done
  status=1
fi
unset ASAN_OPTIONS UBSAN_OPTIONS
phase "extension under ASan + UBSan"
scripts/check_asan_extension.sh || status=1
phase "done, status $status"
exit $status
