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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from breakdown import CLASSES, Sampler  # noqa: E402

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
DB = "bench"

CONFIGS = {
    "a": "no rule",
    "b": "pgcohere preload mode, rule on pgbench_accounts",
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
    application (a psycopg loop on another channel). That application listens only while
    (d) runs: PostgreSQL 15 wakes every listening backend of a database on every NOTIFY
    there, whatever its channel, so an idle one would add its wakeups to (b)'s cost."""

    def __init__(self, cluster, work, secret):
        self.cluster = cluster
        self.daemon = DaemonListener(cluster, work, secret)
        self.plain = None
        self.plain_done = 0

    def prepare(self, config):
        if config == "d" and self.plain is None:
            self.plain = Listener(self.cluster, PLAIN_CHANNEL)
        elif config != "d" and self.plain is not None:
            self.plain_done += self.plain.count
            self.plain.close()
            self.plain = None

    @property
    def count(self):
        return self.daemon.count + self.plain_done + (self.plain.count if self.plain else 0)

    def close(self):
        self.prepare("a")
        self.daemon.close()


PLAIN_CHANNEL = "pgcohere"


def configure(cluster, config):
    with cluster.connect(DB) as c:
        c.execute("SELECT pgcohere.unwatch(tbl) FROM (SELECT DISTINCT tbl FROM pgcohere.rules) r")
        c.execute("DROP TRIGGER IF EXISTS bench_notify ON pgbench_accounts")
        c.execute(f"ALTER DATABASE {DB} RESET pgcohere.publish_mode")
        if config in ("b", "c"):
            c.execute("SELECT pgcohere.watch('pgbench_accounts', ARRAY['account:{aid}'])")
        if config == "c":
            c.execute(f"ALTER DATABASE {DB} SET pgcohere.publish_mode = direct")
        if config == "d":
            c.execute(PLPGSQL_TRIGGER.replace("{channel}", PLAIN_CHANNEL))
            c.execute("CREATE TRIGGER bench_notify AFTER INSERT OR UPDATE OR DELETE ON pgbench_accounts "
                      "FOR EACH ROW EXECUTE FUNCTION bench_notify()")
        c.execute("CHECKPOINT")


def pgbench(cluster, duration, clients, jobs, sampler=None):
    """tps and average latency of one pgbench run; with a sampler, samples it once after
    a warm-up and once shortly before the end (every client connected in between)."""
    proc = subprocess.Popen([PGBENCH, "-h", cluster.host, "-p", str(cluster.port), "-U", "postgres",
                             "-c", str(clients), "-j", str(min(jobs, clients)), "-T", str(duration), "-n", DB],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if sampler:
        sampler.pids["pgbench"] = proc.pid
        warmup = min(3.0, duration / 5)
        time.sleep(warmup)
        sampler.sample()
        time.sleep(max(duration - warmup - 1.5, 1.0))
        sampler.sample()
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed: {err}")
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


def median_breakdown(runs):
    """Per-class medians over the repeats of one (clients, config) cell."""
    out = {"cpu_us_per_tx": {}, "switches_per_tx": {}}
    for part in ("cpu_us_per_tx", "switches_per_tx"):
        for cls in CLASSES:
            vals = [r[part][cls] for r in runs if cls in r[part]]
            if vals:
                out[part][cls] = statistics.median(vals)
    for key in ("wal_bytes_per_tx", "notifications_per_tx"):
        out[key] = statistics.median(r[key] for r in runs)
    return out


def ours(b):
    """CPU µs per transaction of every process of the system under test (not the machine's,
    which includes whatever else runs on a shared host)."""
    return sum(v for c, v in b["cpu_us_per_tx"].items() if c != "machine")


def estimates(breakdowns, clients, chosen):
    """What the CPU accounting predicts for (b) / (a) where the machine is CPU-bound: the
    same CPU budget divided by (b)'s CPU per transaction; and the same with pgcohered and
    Redis on another host (their CPU leaves the database machine)."""
    if "b" not in chosen:
        return []
    a, b = (median_breakdown(breakdowns[(clients, k)]) for k in ("a", "b"))
    remote = ours(b) - b["cpu_us_per_tx"]["pgcohered"] - b["cpu_us_per_tx"]["Redis"]
    return [f"CPU per transaction, every process of the system: (a) {ours(a):.0f} µs, (b) {ours(b):.0f} µs. "
            f"Where CPU-bound, (b) / (a) would be {ours(a) / ours(b):.3f}; with pgcohered and Redis on another "
            f"host {ours(a) / remote:.3f}.", ""]


def report(args, chosen, sweep, results, breakdowns, notified, big, stats, load):
    lines = ["# pgcohere extension benchmark", "",
             f"pgbench tpcb-like, scale {args.scale}, {args.jobs} threads (at most one per client), "
             f"synchronous_commit=on, fsync=on, {args.repeat} x {args.duration} s per configuration and client "
             f"count (interleaved), median tps; consumer: {args.listener}. Machine: {os.cpu_count()} CPUs (shared); "
             f"load average before / after: {load[0]} / {load[1]}.", ""]
    for clients in sweep:
        med = {k: statistics.median(results[(clients, k)]) for k in chosen}
        lines += [f"## {clients} client(s)", "",
                  "| config | median tps | runs | ratio to (a) | overhead / plain trigger's | notifications |",
                  "|---|---|---|---|---|---|"]
        for k in chosen:
            runs = ", ".join(f"{t:.0f}" for t in results[(clients, k)])
            rel = ""
            if "d" in med and k not in ("a", "d") and med["d"] < med["a"]:
                rel = f"{(1 - med[k] / med['a']) / (1 - med['d'] / med['a']):.2f}"
            lines.append(f"| ({k}) {CONFIGS[k]} | {med[k]:.1f} | {runs} | {med[k] / med['a']:.3f} | {rel} | "
                         f"{notified[(clients, k)]} |")
        lines += ["", "CPU µs per committed transaction, medians of the runs (window inside each run); "
                  "context switches per transaction in brackets:", "",
                  "| config | " + " | ".join(CLASSES) + " | WAL bytes/tx | NOTIFYs/tx |",
                  "|---|" + "---|" * (len(CLASSES) + 2)]
        for k in chosen:
            b = median_breakdown(breakdowns[(clients, k)])
            cells = []
            for cls in CLASSES:
                sw = b["switches_per_tx"].get(cls)
                cells.append(f"{b['cpu_us_per_tx'][cls]:.0f}" + (f" ({sw:.2f})" if sw is not None else ""))
            lines.append(f"| ({k}) | " + " | ".join(cells) +
                         f" | {b['wal_bytes_per_tx']:.0f} | {b['notifications_per_tx']:.3f} |")
        lines.append("")
        lines += estimates(breakdowns, clients, chosen)
    if big:
        lines += [f"UPDATE of {args.rows:,} rows in one transaction (table `big`, rules `big:{{id}}` and "
                  "`big:v:{v}:*`, default pgcohere.max_keys_per_xact):", "",
                  "| | seconds | backend peak RSS (VmHWM) growth |", "|---|---|---|"]
        for name, b in big.items():
            lines.append(f"| {name} | {b['seconds']:.2f} | {b['peak_growth_kb'] / 1024:.1f} MiB |")
        lines.append("")
    lines += [f"pgcohere.stats() at the end: {stats}", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clients", default="1,4,16,64", help="comma-separated client counts")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--configs", default="a,b,d", help=f"which of {','.join(CONFIGS)} (a is always run)")
    ap.add_argument("--skip-big-update", action="store_true")
    ap.add_argument("--listener", choices=["daemon", "python"], default="daemon",
                    help="who drains the NOTIFY queue: pgcohered purging a private Redis (as deployed), "
                         "or a psycopg LISTEN loop")
    args = ap.parse_args()
    sweep = [int(v) for v in args.clients.split(",")]
    load = [os.getloadavg()]

    work = temp_dir("pgcohere-bench-")
    secret = make_secret_file(work)
    cluster = PgCluster(os.path.join(work, "pg"), preload=True, secret_file=secret,
                        settings={"fsync": "on", "synchronous_commit": "on", "shared_buffers": "'256MB'",
                                  "max_wal_size": "'2GB'", "log_min_messages": "warning"}).init().start()
    chosen = ["a"] + [k for k in args.configs.split(",") if k in CONFIGS and k != "a"]
    cells = [(n, k) for n in sweep for k in chosen]
    results = {cell: [] for cell in cells}
    breakdowns = {cell: [] for cell in cells}
    notified = {cell: 0 for cell in cells}
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
            pids = {"pgcohered": listener.daemon.daemon.pid, "Redis": listener.daemon.redis.proc.pid}
        else:
            listener = Listener(cluster)
            pids = {}
        pids["app listener"] = os.getpid()  # the psycopg LISTEN loop runs in this process
        sampler_conn = cluster.connect(DB)
        sampler = Sampler(cluster.postmaster_pid(), sampler_conn, pids)
        for r in range(args.repeat):
            for clients, config in cells:
                configure(cluster, config)
                if hasattr(listener, "prepare"):
                    listener.prepare(config)
                before = listener.count
                tps, lat = pgbench(cluster, args.duration, clients, args.jobs, sampler)
                notified[(clients, config)] += listener.count - before
                results[(clients, config)].append(tps)
                b = sampler.breakdown(publisher_xids=config == "b")
                breakdowns[(clients, config)].append(b)
                print(f"run {r + 1}/{args.repeat} {clients} clients ({config}) {CONFIGS[config]}: {tps:.1f} tps, "
                      f"latency {lat} ms, cpu us/tx {b['cpu_us_per_tx']}, wal {b['wal_bytes_per_tx']} B/tx, "
                      f"notifies/tx {b['notifications_per_tx']}, load {os.getloadavg()[0]:.2f}", flush=True)
        sampler_conn.close()
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
    load.append(os.getloadavg())
    load = [" ".join(f"{v:.2f}" for v in la) for la in load]

    text = report(args, chosen, sweep, results, breakdowns, notified, big, stats, load)
    print(text)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "load_average": load,
                   "tps": {f"{n}:{k}": v for (n, k), v in results.items()},
                   "breakdown": {f"{n}:{k}": v for (n, k), v in breakdowns.items()},
                   "notifications": {f"{n}:{k}": v for (n, k), v in notified.items()},
                   "big_update": big, "stats": stats}, f, indent=2, default=str)


if __name__ == "__main__":
    main()
