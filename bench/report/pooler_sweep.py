"""TPS, p99 and queue wait against the number of clients, for direct PostgreSQL, Debian's
PgBouncer and pgcohered (the same pool settings), in one run, for `make bench-report`.

pgbench -S (scale 10) at each client count, the three targets interleaved; pgcohered's
queue wait comes from its pgcohere_pool_queue_wait_ms histogram (the scrapes before and
after each run). Writes OUT/pooler_sweep.json. Every server it starts is stopped by PID."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.measure import interleaved, measured, medians, pgbench  # noqa: E402
from common.metrics import quantile, scrape  # noqa: E402
from common.servers import Direct, free_port, load_average, start_cluster, start_ours, start_pgbouncer  # noqa: E402


def summed_histogram(text, name):
    """[(le, cumulative count)] of a histogram summed over every label set (the pools)."""
    by_le = {}
    for m in re.finditer(rf'^{name}_bucket\{{[^}}]*le="([^"]+)"[^}}]*\}} (\S+)$', text, re.M):
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        by_le[le] = by_le.get(le, 0.0) + float(m.group(2))
    return sorted(by_le.items())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--clients", default="10,50,200,500")
    ap.add_argument("--duration", type=int, default=10, help="seconds per pgbench run")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    base = tempfile.mkdtemp(prefix="report-pool-")
    os.chmod(base, 0o755)
    started, rows = [], []
    load_before = load_average()
    try:
        pg = start_cluster(base)
        started.append(pg)
        subprocess.run(["pgbench", "-i", "-s", "10", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                        "postgres"], check=True, capture_output=True)
        metrics_port = free_port()
        ours = start_ours(base, "pgcohered", free_port(), pg.port, 1, {"metrics_port": metrics_port})
        started.append(ours)
        bouncer = start_pgbouncer(base, free_port(), pg.port)
        started.append(bouncer)
        targets = {"direct": (Direct(pg.port), "postgres"), "pgbouncer": (bouncer, "bench"),
                   "pgcohered": (ours, "bench")}
        for clients in [int(c) for c in args.clients.split(",")]:
            def run_one(label, _repeat, clients=clients):
                proc, db = targets[label]
                before = scrape(metrics_port) if label == "pgcohered" else ""

                def run():
                    tps, p50, p99, n = pgbench(proc.port, db, clients, args.duration, [], base)
                    return (tps, p50, p99), n

                (tps, p50, p99), cpu, _ = measured(proc, run)
                waits = [float("nan")] * 3
                if label == "pgcohered":
                    h0 = summed_histogram(before, "pgcohere_pool_queue_wait_ms")
                    h1 = summed_histogram(scrape(metrics_port), "pgcohere_pool_queue_wait_ms")
                    h0 = h0 or [(le, 0.0) for le, _ in h1]  # the pool (and its histogram) came with this run
                    waits = [quantile(h0, h1, q)[0] or 0.0 for q in (0.5, 0.95, 0.99)]
                print(f"  c={clients} {label}: tps={tps:.0f} p50={p50:.2f}ms p99={p99:.2f}ms "
                      f"queue wait p50/p95/p99={waits[0]:.2f}/{waits[1]:.2f}/{waits[2]:.2f}ms", flush=True)
                return (tps, p50, p99, cpu, *waits)

            runs = interleaved(list(targets), args.repeats, run_one)
            for label, r in runs.items():
                tps, p50, p99, cpu, w50, w95, w99 = medians(r)
                rows.append({"clients": clients, "target": label, "tps": tps, "p50_ms": p50, "p99_ms": p99,
                             "pooler_cpu_us_per_tx": cpu or None,
                             "queue_wait_p50_ms": None if w50 != w50 else w50,
                             "queue_wait_p95_ms": None if w95 != w95 else w95,
                             "queue_wait_p99_ms": None if w99 != w99 else w99})
    finally:
        for s in reversed(started):
            s.stop()
        shutil.rmtree(base, ignore_errors=True)
    result = {"duration_s": args.duration, "repeats": args.repeats, "pool_size": 20, "scale": 10,
              "load_before": load_before, "load_after": load_average(), "finished": time.time(), "rows": rows}
    with open(os.path.join(args.out, "pooler_sweep.json"), "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
