"""Worst staleness that applications filling the cache themselves (read-through) see,
under pgcohered's default settings (docs/invalidation.md, "Applications that fill the
cache themselves").

Starts its own PostgreSQL 15 (pgcohere preloaded), Redis and pgcohered on loopback. A table
of ROWS rows, each with a version, watched as row:{id}; WRITERS threads bump random rows'
versions (paced, about 100 commits/s each); READERS threads read random rows through the
cache for SECONDS, in one of three ways:
  plain         GET, on a miss SELECT then SET (the race: a purge between them is lost)
  lease         tests/read_through.py: SET NX lease, SELECT, compare-and-set fill
  plain+redel   plain, with [invalidation] redelete_delay (a second purge after the delay)
A reader spends --fill-ms between its SELECT and its SET (the application's own work).
A read is stale when it returns a version older than one whose commit had returned before
the read began; its staleness is how long before the read that newer commit returned. Most
of that is invalidation latency (a hit between a commit and its purge). The race shows as
reads "stale after the purge": the key was deleted (Redis keyspace `del` events, which
purges raise) after that newer commit returned and before the read began, and yet the read
got the older version: a fill that raced the purge and stayed.
Usage: bench/invalidation/read_through.py [--seconds 15] [--modes plain,lease,plain+redel]"""
import argparse
import json
import os
import random
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))
from harness.servers import Daemon, PgCluster, RedisServer, free_port, make_secret_file, temp_dir, wait_until  # noqa
from read_through import ReadThrough  # noqa: E402
sys.path.insert(0, os.path.join(REPO, "bench"))
from common.metrics import histogram, scrape  # noqa: E402

DB = "rtdb"
ROWS, WRITERS, READERS = 50, 2, 4


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Versions:
    """Per row: the time each version's commit returned."""

    def __init__(self):
        self.lock = threading.Lock()
        self.committed = {i: {1: 0.0} for i in range(1, ROWS + 1)}

    def add(self, row, version, t):
        with self.lock:
            self.committed[row][version] = t

    def staleness(self, row, version, began):
        """How long before `began` a newer version than `version` had committed (0: fresh)."""
        newer = self.newer(row, version)
        return began - newer if newer is not None and newer < began else 0.0

    def newer(self, row, version):
        with self.lock:
            return self.committed[row].get(version + 1)


def max_latency_ms(port):
    """Upper bound of the slowest commit-to-purge so far: the first bucket that holds them all."""
    buckets = histogram(scrape(port))
    total = buckets[-1][1]
    return next(le for le, c in buckets if c >= total)


class Deletes:
    """When each row:<id> key was deleted (keyspace events, as received)."""

    def __init__(self, redis):
        self.lock = threading.Lock()
        self.times = {}
        r = redis.client()
        flags = r.config_get("notify-keyspace-events")["notify-keyspace-events"]
        r.config_set("notify-keyspace-events", "".join(sorted(set(flags + "Eg"))))
        self.pubsub = r.pubsub()
        self.pubsub.subscribe("__keyevent@0__:del")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stop = threading.Event()
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            m = self.pubsub.get_message(timeout=0.1)
            if m and m["type"] == "message":
                with self.lock:
                    self.times.setdefault(m["data"].decode(), []).append(time.monotonic())

    def after(self, key, t0, t1):
        """The first deletion of key in (t0, t1), or None."""
        with self.lock:
            return next((t for t in self.times.get(key, ()) if t0 < t < t1), None)


def run_mode(pg, redis, secret_file, base, mode, seconds, redelete, fill_ms):
    port, mport = free_port(), free_port()
    extra = f"redelete_delay = {redelete}\n" if mode == "plain+redel" else ""
    ini = (f"[databases]\n{DB} = host=127.0.0.1 port={pg.port} dbname={DB} user=postgres\n"
           f"[pgcohered]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n"
           f"metrics_port = {mport}\n[redis]\nurl = {redis.url}\n"
           f"[invalidation]\nsecret_file = {secret_file}\n{extra}")
    d = Daemon(os.path.join(base, f"daemon-{mode}"), ini, port)
    d.start()
    wait_until(lambda: "resync (connect) done" in d.log(), timeout=60, what="daemon ready")
    r = redis.client()
    r.flushall()
    versions = Versions()
    with pg.connect(DB) as c:
        for row, v in c.execute("SELECT id, version FROM rows").fetchall():
            versions.committed[row] = {v: 0.0}
    stop = threading.Event()
    stats = {"reads": 0, "stale": 0, "worst_ms": 0.0, "commits": 0}
    ages = []
    deletes = Deletes(redis)
    lock = threading.Lock()

    def writer():
        with pg.connect(DB) as c:
            while not stop.is_set():
                row = random.randint(1, ROWS)
                v = c.execute("UPDATE rows SET version = version + 1 WHERE id = %s RETURNING version",
                              (row,)).fetchone()[0]
                versions.add(row, v, time.monotonic())
                with lock:
                    stats["commits"] += 1
                time.sleep(0.01)

    def reader():
        rc = redis.client()
        rt = ReadThrough(rc)
        with pg.connect(DB) as c:
            def load(row):
                value = str(c.execute("SELECT version FROM rows WHERE id = %s", (row,)).fetchone()[0]).encode()
                time.sleep(fill_ms / 1000)
                return value
            while not stop.is_set():
                row = random.randint(1, ROWS)
                key = f"row:{row}"
                began = time.monotonic()
                if mode == "lease":
                    value = rt.get(key, lambda: load(row))
                else:
                    value = rc.get(key)
                    if value is None:
                        value = load(row)
                        rc.set(key, value)
                age = versions.staleness(row, int(value), began)
                purged = deletes.after(key, versions.newer(row, int(value)), began) if age > 0 else None
                with lock:
                    stats["reads"] += 1
                    if age > 0:
                        stats["stale"] += 1
                        stats["worst_ms"] = max(stats["worst_ms"], age * 1000)
                    if purged is not None:
                        ages.append((began - purged) * 1000)

    cpu0 = proc_cpu(d.pid)
    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    threads += [threading.Thread(target=reader) for _ in range(READERS)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(30)
    time.sleep(max(0.5, 2 * float(redelete)))  # the last re-deletes
    stats["daemon_cpu_us_per_commit"] = (proc_cpu(d.pid) - cpu0) * 1e6 / max(1, stats["commits"])
    deletes.stop.set()
    stats.update(purge_latency_bound_ms=max_latency_ms(mport), stale_after_purge=len(ages),
                 worst_after_purge_ms=max(ages, default=0.0))
    d.stop()
    return stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--modes", default="plain,lease,plain+redel")
    ap.add_argument("--redelete", default="0.02", help="redelete_delay of the plain+redel mode (seconds)")
    ap.add_argument("--fill-ms", type=float, default=2, help="a reader's work between its SELECT and its SET")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    base = temp_dir("pgc-rt-")
    secret_file = make_secret_file(base)
    pg = PgCluster(os.path.join(base, "pg"), preload=True, secret_file=secret_file).init().start()
    redis = RedisServer(os.path.join(base, "redis")).start()
    try:
        with pg.connect() as c:
            c.execute(f"CREATE DATABASE {DB}")
        with pg.connect(DB) as c:
            c.execute("CREATE EXTENSION pgcohere")
            c.execute("CREATE TABLE rows (id int PRIMARY KEY, version int NOT NULL)")
            c.execute(f"INSERT INTO rows SELECT g, 1 FROM generate_series(1, {ROWS}) g")
            c.execute("SELECT pgcohere.watch('rows', ARRAY['row:{id}'])")
        results = {}
        for mode in args.modes.split(","):
            s = run_mode(pg, redis, secret_file, base, mode, args.seconds, args.redelete, args.fill_ms)
            results[mode] = s
            print(f"{mode:12s} reads={s['reads']} commits={s['commits']} stale={s['stale']} "
                  f"worst_staleness_ms={s['worst_ms']:.1f} purge_latency_max<={s['purge_latency_bound_ms']:g}ms "
                  f"stale_after_purge={s['stale_after_purge']} worst_after_purge_ms={s['worst_after_purge_ms']:.1f} "
                  f"daemon_cpu_us_per_commit={s['daemon_cpu_us_per_commit']:.0f}",
                  flush=True)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        redis.stop()
        pg.remove()


if __name__ == "__main__":
    main()
