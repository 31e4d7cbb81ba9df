#!/usr/bin/env bash
# `make fuzz-budget`: the long libFuzzer runs of issue 13 (CI runs each target for seconds, in
# tests/test_fuzz.py). Builds the targets (build/fuzz, the same configuration as CI), then runs
# them one at a time at `nice -n 15`, each for FUZZ_RUNS executions (10 M) or at most
# FUZZ_MAX_SECONDS (40 min), starting from the corpus kept in daemon/fuzz/corpus/<target>/, and
# merges what it found back into that directory, minimized (-merge=1 into an empty directory,
# so only inputs that add coverage stay). Prints one table row per target for
# docs/reliability.md. Arguments: target names (default: all). A crash fails the run; its input
# is kept in build/fuzz-budget/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${FUZZ_RUNS:-10000000}
max_seconds=${FUZZ_MAX_SECONDS:-2400}
# libFuzzer's -timeout is wall-clock time. At nice 15 beside other work a 0.1 s input can wait
# seconds for a CPU (two 5 s "timeouts" on 2026-12-07 ran in 0.3 s alone), so the bound is
# loose here; a real hang still trips it. CI's short runs (tests/test_fuzz.py) keep 5 s.
unit_timeout=${FUZZ_UNIT_TIMEOUT:-60}
build=$PWD/build/fuzz
# target -> -max_len, the same as tests/test_fuzz.py (the largest input worth mutating)
declare -A max_len=([pg_protocol]=65536 [notify_payload]=9000 [userlist]=2048 [hba]=2048 [scram]=2048
                    [admin]=2048 [cache_query]=4096 [contract]=4096)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=($(printf '%s\n' "${!max_len[@]}" | sort)); fi
for t in "${targets[@]}"; do
  [ -n "${max_len[$t]:-}" ] || { echo "unknown fuzz target '$t' (known: ${!max_len[*]})" >&2; exit 2; }
done

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S daemon -B "$build" -DPGCOHERE_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14 \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" >/dev/null
nice -n 15 cmake --build "$build" -j"${JOBS:-2}" --target "${targets[@]/%/_fuzz}" >/dev/null

status=0
rows=()
for t in "${targets[@]}"; do
  kept=daemon/fuzz/corpus/$t
  work=build/fuzz-budget/$t
  rm -rf "$work" && mkdir -p "$work/new" "$work/merged" "$kept"
  echo "== $t: up to $runs executions or $max_seconds s"
  started=$SECONDS
  rc=0
  # New inputs go to the first directory; the kept corpus is read as seeds.
  nice -n 15 "$build/${t}_fuzz" -runs="$runs" -max_total_time="$max_seconds" -max_len="${max_len[$t]}" \
    -timeout="$unit_timeout" -rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$work/" \
    "$work/new" "$kept" >"$work/log" 2>&1 || rc=$?
  seconds=$((SECONDS - started))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  covft=$(grep -E '^#[0-9]+' "$work/log" | tail -1 | sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\).*/\1 \/ \2/p')
  crashes=0
  interrupted=""
  if [ "$rc" -eq 72 ]; then  # libFuzzer's exit code after SIGINT: stopped by hand, no finding
    interrupted=" (interrupted)"
  elif [ "$rc" -ne 0 ]; then
    crashes=$(ls "$work" | grep -cE '^(crash|leak|timeout|oom)-' || true)
    echo "$t FAILED (exit $rc): see $work/log"; tail -40 "$work/log"
    status=1
  fi
  # Minimize: keep only the inputs that add coverage, from the old corpus and this run's.
  # Hand-written seeds (named, not libFuzzer's 40-hex-digit SHA-1 names) stay as they are.
  find "$kept" -maxdepth 1 -type f ! -regex '.*/[0-9a-f]\{40\}' -exec cp {} "$work/merged/" \;
  nice -n 15 "$build/${t}_fuzz" -merge=1 -max_len="${max_len[$t]}" -timeout="$unit_timeout" -rss_limit_mb=1024 \
    "$work/merged" "$kept" "$work/new" >"$work/merge.log" 2>&1
  rm -rf "$kept" && mv "$work/merged" "$kept"
  files=$(find "$kept" -type f | wc -l)
  size=$(find "$kept" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.1f", s / 1024}')
  short=""
  if [ "${execs:-0}" -lt "$runs" ]; then short=" (short of $runs$interrupted)"; fi
  rows+=("| $t | ${execs:-?}$short | ${covft:-?} | $files files, ${size} kB | ${seconds} s | $crashes |")
  echo "${rows[-1]}"
done
echo
echo "| target | executions | cov / ft | corpus kept | time | crashes |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $status
