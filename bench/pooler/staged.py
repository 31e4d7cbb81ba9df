"""Staged load, as a user runs it before switching from PgBouncer: open loop, a fixed offered
rate, more and more connected clients.

For each stage (default 1,000, 5,000 and 10,000 clients), pgcohered and Debian's PgBouncer
1.18 in turn, with the same pgbouncer.ini settings (transaction pooling, pool size 20) and
the same PostgreSQL:
    pgbench -S -R <rate> -T <duration> -j 2 -c <clients> -l
Latency is counted from each transaction's scheduled start (pgbench's time plus its
schedule lag), so it includes the wait in the pooler's queue. Reported per stage and
target: latency p50/p95/p99, the pooler's queue wait (pgcohered: its
pgcohere_pool_queue_wait_ms histogram; PgBouncer: the mean from SHOW STATS), failed
transactions and pgbench's errors, the most server connections seen in pg_stat_activity,
and the pooler's RSS and CPU.

    bench/pooler/staged.py [--out DIR] [--stages 1000,5000,10000] [--rate 4000] [--duration 20]

A stage that fails for one target is reported with pgbench's stderr; the others still run.
Every server started here is stopped by its PID.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.measure import percentile  # noqa: E402
from common.metrics import histogram, quantile, scrape  # noqa: E402
from common.servers import (REPO, console_stats, free_port, load_average, raise_fd_limit,  # noqa: E402
                            start_cluster, start_ours, start_pgbouncer)

POOL_SIZE = 20
DATABASE = "staged"  # PostgreSQL's name for the pool "bench" (the sampler connects elsewhere)


class ServerConnections:
    """Samples pg_stat_activity every 0.2 s: the most connections the pooler held to the database."""

    def __init__(self, pg, dbname):
        self.pg, self.dbname = pg, dbname
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        with self.pg.connect() as c:
            while not self.stop.wait(0.2):
                n = c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                              "AND backend_type = 'client backend'", (self.dbname,)).fetchone()[0]
                self.peak = max(self.peak, n)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def pgbouncer_wait(bouncer_port):
    """PgBouncer's (total_wait_time µs, total_xact_count) of database bench, from SHOW STATS."""
    fields = console_stats(bouncer_port, "postgres", "pgbouncer")
    return (int(fields["total_wait_time"]), int(fields["total_xact_count"])) if fields else None


def run_pgbench(port, clients, rate, duration, logdir):
    """pgbench -S at a fixed rate; returns latencies (ms, from the scheduled start), the
    transactions processed and failed, and pgbench's stderr."""
    prefix = os.path.join(logdir, f"staged_{port}_{clients}_{time.monotonic_ns()}")
    argv = ["pgbench", "-n", "-S", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c", str(clients),
            "-j", "2", "-R", str(rate), "-T", str(duration), "-l", "--log-prefix", prefix, "bench"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration * 6 + 300, cwd=logdir)
    if out.returncode not in (0, 2) or "tps = " not in out.stdout:
        raise RuntimeError(f"pgbench exited with {out.returncode}: {' '.join(argv)}\n{out.stderr[-2000:]}")
    processed = int(re.search(r"number of transactions actually processed: (\d+)", out.stdout).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    latencies = []
    for name in os.listdir(logdir):
        if not name.startswith(os.path.basename(prefix)):
            continue
        path = os.path.join(logdir, name)
        with open(path) as f:
            for line in f:
                parts = line.split()
                # client_id transaction_no time script_no time_epoch time_us [schedule_lag]
                if len(parts) >= 7 and parts[2] not in ("failed", "skipped"):
                    latencies.append((int(parts[2]) + int(parts[6])) / 1000.0)
        os.unlink(path)
    latencies.sort()
    errors = [line for line in out.stderr.splitlines() if "error" in line.lower()]
    return latencies, processed, int(failed.group(1)) if failed else 0, errors


def one_stage(label, target, pg, clients, args, base):
    row = {"target": label, "clients": clients, "load_before": load_average()}
    metrics_port = getattr(target, "metrics_port", None)
    before = scrape(metrics_port) if metrics_port else None
    waits_before = (pgbouncer_wait(target.port) or (0, 0)) if not metrics_port else None
    cpu0 = target.cpu_seconds()
    peak_rss = 0
    done = threading.Event()

    def watch_rss():
        nonlocal peak_rss
        while not done.wait(0.5):
            peak_rss = max(peak_rss, target.rss_kb())

    watcher = threading.Thread(target=watch_rss, daemon=True)
    watcher.start()
    try:
        with ServerConnections(pg, DATABASE) as servers:
            lat, processed, failed, errors = run_pgbench(target.port, clients, args.rate, args.duration, base)
    finally:
        done.set()
        watcher.join()
    cpu = target.cpu_seconds() - cpu0
    row.update(p50=percentile(lat, 0.5), p95=percentile(lat, 0.95), p99=percentile(lat, 0.99),
               processed=processed, failed=failed, errors=len(errors), error_sample=errors[:3],
               servers=servers.peak, rss_mb=peak_rss / 1024.0, cpu_us_per_tx=cpu / processed * 1e6 if processed else 0)
    if metrics_port:
        after = scrape(metrics_port)
        name = "pgcohere_pool_queue_wait_ms"
        first, last = histogram(before, name), histogram(after, name)
        # The pool's series appear with its first client: nothing was observed before that.
        p95, _ = quantile(first or [(le, 0.0) for le, _ in last], last, 0.95) if last else (None, 0)
        row["queue_wait"] = f"p95 {p95:.1f} ms" if p95 is not None else "-"
    else:
        after = pgbouncer_wait(target.port)
        if waits_before and after and after[1] > waits_before[1]:
            mean = (after[0] - waits_before[0]) / (after[1] - waits_before[1]) / 1000.0
            row["queue_wait"] = f"mean {mean:.1f} ms"
        else:
            row["queue_wait"] = "-"
    row["load_after"] = load_average()
    return row


def render(rows, failures, args):
    lines = [f"# Staged load: pgbench -S -R {args.rate} -T {args.duration} -j 2, pool size {POOL_SIZE}", "",
             "Latency from each transaction's scheduled start (includes the queue). Medians are not "
             "taken: one run per stage and target, the targets in turn.", "",
             "| clients | target | p50 ms | p95 ms | p99 ms | queue wait | processed | failed | errors | "
             "server conns (peak) | RSS MiB (peak) | CPU us/tx | load before / after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['clients']} | {r['target']} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | "
                     f"{r['queue_wait']} | {r['processed']} | {r['failed']} | {r['errors']} | {r['servers']} | "
                     f"{r['rss_mb']:.1f} | {r['cpu_us_per_tx']:.1f} | {r['load_before']} / {r['load_after']} |")
    by = {(r["clients"], r["target"]): r for r in rows}
    lines += ["", "| clients | p95 ours / PgBouncer | p99 ours / PgBouncer | RSS ours / PgBouncer | "
                  "0 errors | <= 100 server conns |", "|---|---|---|---|---|---|"]
    for clients in sorted({r["clients"] for r in rows}):
        ours, theirs = by.get((clients, "pgcohered")), by.get((clients, "pgbouncer"))
        if not ours or not theirs:
            continue
        lines.append(f"| {clients} | {ours['p95'] / theirs['p95']:.2f} | {ours['p99'] / theirs['p99']:.2f} | "
                     f"{ours['rss_mb'] / theirs['rss_mb']:.2f} | "
                     f"{'yes' if ours['failed'] + ours['errors'] == 0 else 'no'} | "
                     f"{'yes' if ours['servers'] <= 100 else 'no'} |")
    if failures:
        lines += ["", "Failed cases:"] + [f"- {f}" for f in failures]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "pooler-staged"))
    ap.add_argument("--stages", default="1000,5000,10000")
    ap.add_argument("--rate", type=int, default=4000, help="offered transactions per second")
    ap.add_argument("--duration", type=int, default=20)
    args = ap.parse_args()
    stages = [int(s) for s in args.stages.split(",")]
    os.makedirs(args.out, exist_ok=True)
    raise_fd_limit(max(stages) + 1024)  # per process: pgbench's sockets, or a pooler's clients and servers
    base = tempfile.mkdtemp(prefix="pool-staged-")
    os.chmod(base, 0o755)
    started, rows, failures = [], [], []
    try:
        pg = start_cluster(base, settings={"max_connections": 300})
        started.append(pg)
        with pg.connect() as c:
            c.execute(f"CREATE DATABASE {DATABASE}")
        subprocess.run(["pgbench", "-i", "-s", "10", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                        DATABASE], check=True, capture_output=True)
        limits = {"max_client_conn": max(stages) + 100, "default_pool_size": POOL_SIZE}
        metrics_port = free_port()
        ours = start_ours(base, "pgcohered", free_port(), pg.port, dbname=DATABASE,
                          extra=dict(limits, metrics_port=metrics_port))
        ours.metrics_port = metrics_port
        started.append(ours)
        bouncer = start_pgbouncer(base, free_port(), pg.port, dbname=DATABASE, extra=dict(limits, admin_users="postgres"))
        started.append(bouncer)
        for clients in stages:
            for label, target in (("pgbouncer", bouncer), ("pgcohered", ours)):
                try:
                    row = one_stage(label, target, pg, clients, args, base)
                    rows.append(row)
                    print(f"  {clients} clients {label}: p50={row['p50']:.2f} p95={row['p95']:.2f} "
                          f"p99={row['p99']:.2f} ms wait {row['queue_wait']} failed={row['failed']} "
                          f"errors={row['errors']} servers={row['servers']} rss={row['rss_mb']:.1f} MiB "
                          f"cpu={row['cpu_us_per_tx']:.1f} us/tx", flush=True)
                except Exception as e:  # noqa: BLE001 - reported, the other cases still run
                    failures.append(f"{clients} clients, {label}: {e}")
                    traceback.print_exc()
    finally:
        for s in reversed(started):
            s.stop()
        shutil.rmtree(base, ignore_errors=True)
    report = render(rows, failures, args)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(report)
    print(report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
