#!/usr/bin/env bash
# make bench-report: runs every benchmark suite at a size that fits about 20 minutes on this
# 2-core machine, each beside its anchor in the same run, and writes docs/benchmarks.md with
# PNG plots in docs/benchmarks/ (matplotlib). Steps: pooler sweep (direct / PgBouncer /
# pgcohered against clients), invalidation (latency CDF beside trigger + pg_notify, pattern
# purges against keyspace size), bench/cache, bench/extension. A failing step is listed in
# the report and the others still run.
#   BENCH_REPORT_SIZE=smoke   a ~3 minute run to check the scripts (numbers meaningless)
#   BENCH_REPORT_OUT=DIR      raw results (default bench/results/report)
#   BENCH_REPORT_DOC=FILE     the report (default docs/benchmarks.md; plots beside it in
#                             FILE's directory/benchmarks/)
# It installs the extension (scripts/build.sh); on a machine shared with other builds run it
# under their install lock, e.g. flock /work/.pginstall.lock make bench-report.
set -uo pipefail
cd "$(dirname "$0")/../.."
size=${BENCH_REPORT_SIZE:-full}
out=${BENCH_REPORT_OUT:-bench/results/report}
doc=${BENCH_REPORT_DOC:-docs/benchmarks.md}
plots=$(dirname "$doc")/benchmarks
py=/usr/bin/python3

scripts/build.sh || exit 1
rm -rf "$out"
mkdir -p "$out" "$plots"
rm -f "$plots"/*.png
start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
failures=()

case $size in
  full)
    pooler_args=(--clients 10,50,200,500 --duration 10 --repeats 1)
    inv_args=(--seconds 20 --rate 1000 --keyspaces 10000,100000,1000000)
    cache_args=(--clients 200 --duration 24 --repeats 1 --pgbench-duration 10)  # bench/cache's own warm-up
    ext_env=(BENCH_DURATION=10 BENCH_REPEAT=1)
    ext_args=(--clients 1,16 --configs b,d --skip-big-update)
    ;;
  smoke)
    pooler_args=(--clients 5,20 --duration 2 --repeats 1)
    inv_args=(--seconds 2 --rate 200 --keyspaces 3000,10000)
    cache_args=(--clients 20 --duration 4 --warmup 1 --repeats 1 --pgbench-duration 2 --burst-every 3 --burst-len 1)
    ext_env=(BENCH_DURATION=2 BENCH_REPEAT=1)
    ext_args=(--clients 4 --configs b,d --skip-big-update)
    ;;
  *) echo "bench-report: BENCH_REPORT_SIZE is full or smoke, not '$size'" >&2; exit 2 ;;
esac

step() {  # step NAME COMMAND...: runs it, logs to $out/NAME.log, records a failure
  local name=$1
  shift
  echo "== bench-report: $name: $*"
  if ! "$@" > >(tee "$out/$name.log") 2>&1; then
    failures+=("$name: \`$*\` failed (last lines of $out/$name.log: $(tail -n 3 "$out/$name.log" | tr '\n' ' ' | cut -c1-300))")
  fi
}

step pooler $py bench/report/pooler_sweep.py --out "$out" "${pooler_args[@]}"
step invalidation $py bench/report/invalidation.py --out "$out" "${inv_args[@]}"
cache_command="bench/cache/run.sh OUT ${cache_args[*]}"
step cache bench/cache/run.sh "$out/cache" "${cache_args[@]}"
ext_command="${ext_env[*]} bench/extension/run.sh OUT ${ext_args[*]}"
step extension env "${ext_env[@]}" bench/extension/run.sh "$out/extension" "${ext_args[@]}"

# The machine and the run, for the report's header.
FAILURES=$(printf '%s\n' "${failures[@]+"${failures[@]}"}") \
CACHE_COMMAND=$cache_command EXT_COMMAND=$ext_command SIZE=$size START=$start LOAD_BEFORE=$load_before \
$py - "$out/env.json" <<'PY'
import json, os, platform, re, subprocess, sys, time

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001 - a missing tool leaves a blank, not a failed report
        return ""

cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
mem_kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
os_name = re.search(r'PRETTY_NAME="([^"]*)"', open("/etc/os-release").read())
env = {
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int(os.environ["START"]))),
    "minutes": round((time.time() - int(os.environ["START"])) / 60, 1),
    "cpu": cpu.group(1) if cpu else platform.processor(), "cores": os.cpu_count(),
    "memory": f"{mem_kb / 1024 / 1024:.0f} GiB", "os": os_name.group(1) if os_name else "", "kernel": platform.release(),
    "software": "; ".join(filter(None, [sh("psql --version"), sh("pgbouncer --version | head -1"),
                                        sh("redis-server --version | cut -d' ' -f1-3"),
                                        sh("build/daemon/pgcohered --version")])),
    "commit": sh("git rev-parse --short HEAD") + (" (with uncommitted changes)" if sh("git status --porcelain --untracked-files=no") else ""),
    "load_before": os.environ["LOAD_BEFORE"], "load_after": " ".join(open("/proc/loadavg").read().split()[:3]),
    "command": "make bench-report" + ("" if os.environ["SIZE"] == "full" else f" BENCH_REPORT_SIZE={os.environ['SIZE']}"),
    "cache_command": os.environ["CACHE_COMMAND"], "extension_command": os.environ["EXT_COMMAND"],
    "failures": [f for f in os.environ["FAILURES"].split("\n") if f],
}
json.dump(env, open(sys.argv[1], "w"), indent=2)
PY
$py bench/report/render.py --in "$out" --doc "$doc" --plots "$plots" || exit 1
echo "bench-report: wrote $doc and $plots/ in $(( ($(date +%s) - start) / 60 )) min; ${#failures[@]} step(s) failed"
