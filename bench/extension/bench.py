"""pgcohere extension benchmark (see run.sh). Prints a Markdown report and writes it,
with the raw numbers as JSON, to OUTDIR."""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))
from harness.servers import Daemon, PgCluster, RedisServer, free_port, make_secret_file, temp_dir, wait_until  # noqa: E402

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
DB = "bench"

CONFIGS = {
    "a": "no rule",
    "b": "pgcohere preload mode, rule on pgbench_accounts",
    "b0": "as (b) with pgcohere.batch_delay = 0",
    "b1": "as (b) with pgcohere.batch_delay = 1ms",
    "b2": "as (b) with pgcohere.batch_delay = 2ms",
    "b5": "as (b) with pgcohere.batch_delay = 5ms",
    "c": "pgcohere direct mode (NOTIFY at pre-commit)",
    "d": "PL/pgSQL trigger + pg_notify per row",
}

PLPGSQL_TRIGGER = """
CREATE OR REPLACE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN PERFORM pg_notify('{channel}', 'account:' || OLD.aid); END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN PERFORM pg_notify('{channel}', 'account:' || NEW.aid); END IF;
    RETURN NULL;
END $$;
"""


class Listener:
    """Keeps the NOTIFY queue drained, as pgcohered would, and counts notifications."""

    def __init__(self, cluster, channel="pgcohere"):
        self.conn = cluster.connect(DB)
        self.conn.execute(f"LISTEN {channel}")
        self.count = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            for _ in self.conn.notifies():
                self.count += 1
        except Exception:
            pass

    def close(self):
        self.conn.close()


class DaemonListener:
    """pgcohered as the consumer, as deployed: LISTEN, verify, purge Redis. Counts every
    notification it read (applied or rejected: (d)'s unsigned ones are rejected)."""

    def __init__(self, cluster, work, secret):
        self.redis = RedisServer(os.path.join(work, "redis")).start()
        port, self.metrics_port = free_port(), free_port()
        ini = (f"[databases]\n{DB} = host={cluster.host} port={cluster.port} dbname={DB} user=postgres\n"
               f"[pgcohered]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n"
               f"metrics_port = {self.metrics_port}\n[redis]\nurl = {self.redis.url}\n"
               f"[invalidation]\nsecret_file = {secret}\n")
        self.daemon = Daemon(os.path.join(work, "daemon"), ini, port).start()
        wait_until(lambda: "resync (connect) done" in self.daemon.log(), timeout=60, what="daemon listening")

    @property
    def count(self):
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(("pgcohere_invalidations_received_total", "pgcohere_invalidations_rejected_total")):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def close(self):
        self.daemon.stop()
        self.redis.stop()


class Listeners:
    """(b) and (c) are drained by pgcohered; (d), "what users write today", by its own
    application (a psycopg loop on another channel), as before."""

    def __init__(self, cluster, work, secret):
        self.daemon = DaemonListener(cluster, work, secret)
        self.plain = Listener(cluster, PLAIN_CHANNEL)

    @property
    def count(self):
        return self.daemon.count + self.plain.count

    def close(self):
        self.plain.close()
        self.daemon.close()


PLAIN_CHANNEL = "pgcohere"


def configure(cluster, config):
    with cluster.connect(DB) as c:
        c.execute("SELECT pgcohere.unwatch(tbl) FROM (SELECT DISTINCT tbl FROM pgcohere.rules) r")
        c.execute("DROP TRIGGER IF EXISTS bench_notify ON pgbench_accounts")
        c.execute(f"ALTER DATABASE {DB} RESET pgcohere.publish_mode")
        # batch_delay is read by the publisher worker: a server-wide setting.
        delay = {"b0": 0, "b1": 1, "b2": 2, "b5": 5}.get(config)
        c.execute("ALTER SYSTEM RESET pgcohere.batch_delay" if delay is None else
                  f"ALTER SYSTEM SET pgcohere.batch_delay = {delay}")
        c.execute("SELECT pg_reload_conf()")
        if config in ("b", "b0", "b1", "b2", "b5", "c"):
            c.execute("SELECT pgcohere.watch('pgbench_accounts', ARRAY['account:{aid}'])")
        if config == "c":
            c.execute(f"ALTER DATABASE {DB} SET pgcohere.publish_mode = direct")
        if config == "d":
            c.execute(PLPGSQL_TRIGGER.replace("{channel}", PLAIN_CHANNEL))
            c.execute("CREATE TRIGGER bench_notify AFTER INSERT OR UPDATE OR DELETE ON pgbench_accounts "
                      "FOR EACH ROW EXECUTE FUNCTION bench_notify()")
        c.execute("CHECKPOINT")


def pgbench(cluster, duration, clients, jobs):
    out = subprocess.run([PGBENCH, "-h", cluster.host, "-p", str(cluster.port), "-U", "postgres",
                          "-c", str(clients), "-j", str(jobs), "-T", str(duration), "-n", DB],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    lat = re.search(r"latency average = ([0-9.]+) ms", out)
    return float(m.group(1)), float(lat.group(1)) if lat else None


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def big_update(cluster, rows, with_rule):
    with cluster.connect(DB) as c:
        c.execute("DROP TABLE IF EXISTS big")
        c.execute("CREATE TABLE big (id int PRIMARY KEY, v int)")
        c.execute("INSERT INTO big SELECT g, 0 FROM generate_series(1, %s) g", (rows,))
        c.execute("VACUUM ANALYZE big")
        if with_rule:
            c.execute("SELECT pgcohere.watch('big', ARRAY['big:{id}', 'big:v:{v}:*'])")
        c.execute("CHECKPOINT")
    with cluster.connect(DB) as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        c.execute("SELECT count(*) FROM big")  # warm the cache outside the measurement
        before = vm_hwm_kb(pid)
        t0 = time.monotonic()
        c.execute("UPDATE big SET v = v + 1")
        elapsed = time.monotonic() - t0
        after = vm_hwm_kb(pid)
    return {"seconds": elapsed, "vm_hwm_before_kb": before, "vm_hwm_after_kb": after,
            "peak_growth_kb": after - before}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--configs", default="a,b,c,d", help=f"which of {','.join(CONFIGS)} (a is always run)")
    ap.add_argument("--skip-big-update", action="store_true")
    ap.add_argument("--listener", choices=["daemon", "python"], default="python",
                    help="who drains the NOTIFY queue: pgcohered purging a private Redis (as deployed), "
                         "or a psycopg LISTEN loop")
    args = ap.parse_args()

    work = temp_dir("pgcohere-bench-")
    secret = make_secret_file(work)
    cluster = PgCluster(os.path.join(work, "pg"), preload=True, secret_file=secret,
                        settings={"fsync": "on", "synchronous_commit": "on", "shared_buffers": "'256MB'",
                                  "max_wal_size": "'2GB'", "log_min_messages": "warning"}).init().start()
    chosen = ["a"] + [k for k in args.configs.split(",") if k in CONFIGS and k != "a"]
    results = {k: [] for k in chosen}
    notified = {k: 0 for k in chosen}
    try:
        with cluster.connect() as c:
            c.execute(f"CREATE DATABASE {DB}")
        with cluster.connect(DB) as c:
            c.execute("CREATE EXTENSION pgcohere")
        subprocess.run([PGBENCH, "-i", "-q", "-s", str(args.scale), "-h", cluster.host, "-p", str(cluster.port),
                        "-U", "postgres", DB], check=True, capture_output=True)
        if args.listener == "daemon":
            global PLAIN_CHANNEL
            PLAIN_CHANNEL = "bench_plain"
            listener = Listeners(cluster, work, secret)
        else:
            listener = Listener(cluster)
        for r in range(args.repeat):
            for config in chosen:
                configure(cluster, config)
                before = listener.count
                tps, lat = pgbench(cluster, args.duration, args.clients, args.jobs)
                notified[config] += listener.count - before
                results[config].append(tps)
                print(f"run {r + 1}/{args.repeat} ({config}) {CONFIGS[config]}: {tps:.1f} tps, "
                      f"latency {lat} ms", flush=True)
        configure(cluster, "a")
        listener.close()
        big = {} if args.skip_big_update else {"no rule": big_update(cluster, args.rows, False),
                                               "rule": big_update(cluster, args.rows, True)}
        with cluster.connect(DB) as c:
            stats = dict(zip(["mode", "keys_queued", "keys_published", "notifications", "coarsened_xacts",
                              "ring_overflows", "notify_failures", "signature_failures"],
                             c.execute("SELECT * FROM pgcohere.stats()").fetchone()))
    finally:
        cluster.remove()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    lines = ["# pgcohere extension benchmark", "",
             f"pgbench tpcb-like, scale {args.scale}, {args.clients} clients, {args.jobs} threads, "
             f"synchronous_commit=on, fsync=on, {args.repeat} x {args.duration} s per configuration "
             f"(interleaved), median tps. Machine: {os.cpu_count()} CPUs (shared).", "",
             "| config | median tps | runs | ratio to (a) | notifications received |",
             "|---|---|---|---|---|"]
    for k in chosen:
        name = CONFIGS[k]
        runs = ", ".join(f"{t:.0f}" for t in results[k])
        lines.append(f"| ({k}) {name} | {med[k]:.1f} | {runs} | {med[k] / med['a']:.3f} | {notified[k]} |")
    lines += ["", f"UPDATE of {args.rows:,} rows in one transaction (table `big`, rules `big:{{id}}` and "
              "`big:v:{v}:*`, default pgcohere.max_keys_per_xact):", "",
              "| | seconds | backend peak RSS (VmHWM) growth |", "|---|---|---|"]
    for name, b in big.items():
        lines.append(f"| {name} | {b['seconds']:.2f} | {b['peak_growth_kb'] / 1024:.1f} MiB |")
    lines += ["", f"pgcohere.stats() at the end: {stats}", ""]
    report = "\n".join(lines)
    print(report)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(report)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "tps": results, "median": med, "notifications": notified,
                   "big_update": big, "stats": stats}, f, indent=2, default=str)


if __name__ == "__main__":
    main()
