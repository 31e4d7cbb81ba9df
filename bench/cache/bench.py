"""The query cache side by side with the same chat load, in one run, repeats interleaved:
  cache-on   pgcohered, [cache] enabled = 1 (Redis maxmemory 512mb, allkeys-lru)
  cache-off  pgcohered as a pooler only (no cache, no invalidation consumer)
  pgbouncer  Debian's PgBouncer 1.18, the same pool settings
  direct     PostgreSQL itself, one backend per client
on a private PostgreSQL 15 (pgcohere and pg_stat_statements preloaded) and Redis, loopback
only. Then `pgbench -S` through cache-on (no policy matches pgbench's tables) vs cache-off,
and the cost of one hit on a quiet system. See workload.py for the load and docs/cache.md
for how to read the report. Every server it starts is stopped by its PID."""
import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from common.measure import interleaved, measured, medians, percentile, pgbench  # noqa: E402
from common.servers import (REPO, Direct, free_port, load_average, start_cluster, start_ours,  # noqa: E402
                            start_pgbouncer)
from common.wire import Connection, columns  # noqa: E402
from harness.servers import RedisServer, make_secret_file, temp_dir  # noqa: E402

import hit_cost  # noqa: E402
import report  # noqa: E402
from schema import POLICIES, SCHEMA, SEED, conversation_sizes  # noqa: E402
from workload import CONVERSATION_SEED, Load, Options, Zipf  # noqa: E402

TARGETS = ("cache-on", "cache-off", "pgbouncer", "direct")
DB_CALLS = ("SELECT (SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s JOIN pg_database d "
            "ON d.oid = s.dbid WHERE d.datname = $1)::bigint, "
            "(SELECT xact_commit FROM pg_stat_database WHERE datname = $1)")


class Setup:
    """PostgreSQL with the chat database, Redis, and the three poolers."""

    def __init__(self, base):
        self.base = base
        self.started = []

    def start(self, opts):
        base = self.base
        secret = make_secret_file(base)
        self.pg = start_cluster(base, preload=True, secret_file=secret,
                                settings={"shared_preload_libraries": "'pgcohere,pg_stat_statements'"})
        self.started.append(self.pg)
        self.redis = RedisServer(os.path.join(base, "redis"),
                                 extra_args=["--maxmemory", "512mb", "--maxmemory-policy", "allkeys-lru"]).start()
        self.started.append(self.redis)
        with self.pg.connect() as c:
            c.execute("CREATE EXTENSION pg_stat_statements")
            c.execute("CREATE DATABASE chat")
        with self.pg.connect("chat") as c:
            c.execute("CREATE EXTENSION pgcohere")
            c.execute(SCHEMA)
            ranked = Zipf(opts.conversations, opts.zipf, CONVERSATION_SEED).ids
            seed = {"users": opts.users, "sizes": conversation_sizes(ranked, opts.top_messages)}
            for statement in SEED:
                c.execute(statement, seed)
            c.execute("VACUUM ANALYZE")  # visibility map set: counts are index-only scans for every target
            c.execute(POLICIES)
        subprocess.run(["pgbench", "-i", "-s", "10", "-q", "-h", "127.0.0.1", "-p", str(self.pg.port), "-U",
                        "postgres", "chat"], check=True, capture_output=True)
        admin = {"admin_users": "admin"}
        mport = free_port()
        self.on = start_ours(base, "cache-on", free_port(), self.pg.port, dbname="chat",
                             extra=dict(admin, metrics_port=mport),
                             more=f"[redis]\nurl = {self.redis.url}\n[invalidation]\nsecret_file = {secret}\n"
                                  "[cache]\nenabled = 1\n")
        self.on.metrics_port = mport
        self.started.append(self.on)
        self.off = start_ours(base, "cache-off", free_port(), self.pg.port, dbname="chat", extra=admin)
        self.started.append(self.off)
        self.bouncer = start_pgbouncer(base, free_port(), self.pg.port, dbname="chat")
        self.started.append(self.bouncer)
        self.targets = {"cache-on": (self.on, "bench"), "cache-off": (self.off, "bench"),
                        "pgbouncer": (self.bouncer, "bench"), "direct": (Direct(self.pg.port), "chat")}

    def stop(self):
        for s in reversed(self.started):
            s.stop()

    def redis_commands(self):
        """INFO commandstats: {command: (calls, usec)}."""
        stats = self.redis.client().info("commandstats")
        return {k.removeprefix("cmdstat_"): (v["calls"], v["usec"]) for k, v in stats.items()}

    def redis_cpu(self):
        info = self.redis.client().info("cpu")
        return info["used_cpu_sys"] + info["used_cpu_user"]

    async def cache_row(self):
        c = await Connection.connect(self.on.port, "pgcohere", user="admin")
        try:
            return next(r for r in await c.table("SHOW CACHE") if r["database"] == "bench")
        finally:
            c.close()


def windows(samples, load):
    """Per 1 s window of the measured period: (in_burst, db_qps, hits, cacheable, flight_hits)."""
    out = []
    for (t0, calls0, _, c0), (t1, calls1, _, c1) in zip(samples, samples[1:]):
        if t0 < load.measure_from - 0.05 or t1 > load.end + 0.5 or t1 - t0 < 0.5:
            continue
        delta = [b - a for a, b in zip(c0, c1)] if c0 is not None else [0, 0, 0]
        out.append((load.bursts.covers(t0, t1), (calls1 - calls0) / (t1 - t0), *delta))
    return out


def timeline(samples, load, result):
    """Per ~1 s window of the measured period, for the report's plot through the bursts:
    seconds since the start, in a burst, hits and the other cacheable requests (cache-on
    only), and the read latency percentiles of the reads that ended in that second."""
    out = []
    for (t0, _, _, c0), (t1, _, _, c1) in zip(samples, samples[1:]):
        if t0 < load.measure_from - 0.05 or t1 > load.end + 0.5 or t1 - t0 < 0.5:
            continue
        reads = sorted(result.read_ms_by_second.get(int(t1 - load.start) - 1, []))
        point = {"t": round(t1 - load.start, 2), "burst": load.bursts.covers(t0, t1),
                 "read_p50_ms": percentile(reads, 0.5) if reads else None,
                 "read_p99_ms": percentile(reads, 0.99) if reads else None}
        if c0 is not None:
            point["hits"] = c1[0] - c0[0]
            point["misses"] = (c1[1] - c0[1]) - point["hits"]
        else:
            point["hits"] = point["misses"] = 0
        out.append(point)
    return out


def ratio(part, whole):
    return part / whole if whole else float("nan")


def hit_ratios(w, in_burst):
    """In or outside bursts: the hit ratio (hits / cacheable requests, SHOW CACHE's
    total_requests: those the breaker, a timeout or a policy reload sent to PostgreSQL
    count as misses), and the share of them answered without a query of their own (hits
    plus misses an identical miss in flight answered)."""
    hits = sum(h for b, _, h, _, _ in w if b == in_burst)
    total = sum(t for b, _, _, t, _ in w if b == in_burst)
    flight = sum(f for b, _, _, _, f in w if b == in_burst)
    return ratio(hits, total), ratio(hits + flight, total)


async def chat_run(setup, label, opts, seed):
    target, db = setup.targets[label]
    samples = []
    mon = await Connection.connect(setup.pg.port, "postgres")
    admin = await Connection.connect(setup.on.port, "pgcohere", user="admin") if label == "cache-on" else None

    async def on_second(t):
        calls, commits = columns((await mon.query(DB_CALLS, ("chat",)))[0])
        counters = None
        if admin:
            row = next(r for r in await admin.table("SHOW CACHE") if r["database"] == "bench")
            counters = (int(row["hits"]), int(row["total_requests"]), int(row["single_flight_hits"]))
        samples.append((t, int(calls), int(commits), counters))

    try:
        load = Load(target.port, db, opts, seed)
        result = await load.run(on_second)
    finally:
        mon.close()
        if admin:
            admin.close()
    return load, result, samples


def run_chat(setup, opts, args, failures):
    def run_one(label, repeat):
        target, _ = setup.targets[label]
        redis0, commands0 = setup.redis_cpu(), setup.redis_commands()
        row0 = asyncio.run(setup.cache_row()) if label == "cache-on" else None

        def run():
            load, result, samples = asyncio.run(chat_run(setup, label, opts, seed=repeat + 1))
            return (load, result, samples), result.transactions

        (load, result, samples), cpu_us, busy_us = measured(target, run)
        n = max(1, result.transactions)
        w = windows(samples, load)
        qps = [q for _, q, *_ in w]
        s = result.summary()
        s.update(cpu_us=cpu_us, machine_us=busy_us, errors_sample=dict(list(result.error_samples.items())[:3]),
                 client_tps=result.transactions / opts.duration,
                 db_qps=statistics.mean(qps) if qps else float("nan"),
                 db_cv=statistics.pstdev(qps) / statistics.mean(qps) if len(qps) > 1 and statistics.mean(qps) else
                 float("nan"),
                 rss_mb=target.rss_kb() / 1024 if hasattr(target, "rss_kb") else float("nan"),
                 hwm_mb=target.rss_kb("VmHWM") / 1024 if hasattr(target, "rss_kb") else float("nan"),
                 redis_us=(setup.redis_cpu() - redis0) / n * 1e6 if label == "cache-on" else float("nan"))
        s["timeline"] = timeline(samples, load, result)
        if label == "cache-on":
            s["hit_burst"], s["served_burst"] = hit_ratios(w, True)
            s["hit_calm"], s["served_calm"] = hit_ratios(w, False)
            ideal = load.ideal_hit_ratios()
            s["ideal_burst"], s["ideal_calm"] = (float("nan") if ideal[b] is None else ideal[b] for b in (True, False))
            row1 = asyncio.run(setup.cache_row())
            commands1 = setup.redis_commands()
            s["redis_commands"] = {
                name: (calls - commands0.get(name, (0, 0))[0], usec - commands0.get(name, (0, 0))[1])
                for name, (calls, usec) in sorted(commands1.items(), key=lambda kv: -kv[1][1])[:6]}
            s["cache_counters"] = {k: int(row1[k]) - int(row0[k]) for k in
                                   ("hits", "misses", "stores", "stale_refused", "not_stored", "bypassed",
                                    "uncacheable", "redis_errors", "single_flight_hits", "invalidations")
                                   if k in row1}
        print(f"  chat {label} #{repeat + 1}: tps={s['client_tps']:.0f} p50={s['p50']:.2f}ms p95={s['p95']:.2f}ms "
              f"p99={s['p99']:.2f}ms db_qps={s['db_qps']:.0f} cv={s['db_cv']:.2f} "
              + (f"hit_burst={s['hit_burst']:.3f} (no query {s['served_burst']:.3f}, ideal {s['ideal_burst']:.3f}) "
                 f"hit_calm={s['hit_calm']:.3f} (ideal {s['ideal_calm']:.3f}) " if label == "cache-on" else "") + f"writes={100 * s['write_share']:.1f}% "
              + f"own_stale={s['own_stale']}/{s['own_checks']} cross_stale={s['cross_stale']}/{s['cross_checks']} "
              f"errors={s['errors']} cpu_us/tx={cpu_us:.1f} machine_us/tx={busy_us:.0f} (load {load_average()})",
              flush=True)
        if s["errors"]:
            print(f"    errors: {s['errors_sample']}", flush=True)
        print("    DB QPS per window (* = burst): " + " ".join(
            f"{q:.0f}{'*' if b else ''}" for b, q, *_ in w), flush=True)
        if "redis_commands" in s:
            print("    Redis (calls, usec) by command: " + ", ".join(
                f"{k} {c} / {u} us" for k, (c, u) in s["redis_commands"].items()), flush=True)
        return s

    labels = [t for t in TARGETS if t in args.targets]
    return interleaved(labels, args.repeats, run_one, failures, case="chat")


def run_pgbench(setup, args, failures):
    def run_one(label, _repeat):
        target, db = setup.targets[label]

        def run():
            tps, p50, p99, n = pgbench(target.port, db, args.pgbench_clients, args.pgbench_duration, [], setup.base)
            return (tps, p50, p99), n

        (tps, p50, p99), cpu, busy = measured(target, run)
        print(f"  pgbench -S {label}: tps={tps:.0f} p50={p50:.2f}ms p99={p99:.2f}ms cpu_us/tx={cpu:.1f} "
              f"(load {load_average()})", flush=True)
        return tps, p50, p99, cpu, busy

    runs = interleaved(["cache-on", "cache-off"], args.repeats, run_one, failures, case="pgbench -S")
    return {label: medians(r) for label, r in runs.items() if r}


def median_summary(runs):
    """Per target, the median of every numeric field over its repeats (counts summed)."""
    out = {}
    for label, rs in runs.items():
        if not rs:
            continue
        m = {}
        for k, v in rs[0].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values = [r[k] for r in rs]
                summed = k in ("own_checks", "own_stale", "cross_checks", "cross_stale", "errors", "transactions")
                m[k] = sum(values) if summed else statistics.median(values)
        m["cache_counters"] = rs[-1].get("cache_counters")
        m["redis_commands"] = rs[-1].get("redis_commands")
        m["timeline"] = rs[-1].get("timeline")
        m["errors_sample"] = {k: v for r in rs for k, v in r["errors_sample"].items()}
        m["repeats"] = len(rs)
        out[label] = m
    return out


def main():
    defaults = Options()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "cache"))
    ap.add_argument("--clients", type=int, default=defaults.clients)
    ap.add_argument("--duration", type=float, default=defaults.duration, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=defaults.warmup)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--think-ms", type=float, default=defaults.think_ms)
    ap.add_argument("--writes", type=float, default=defaults.writes)
    ap.add_argument("--zipf", type=float, default=defaults.zipf)
    ap.add_argument("--burst-every", type=float, default=defaults.burst_every)
    ap.add_argument("--burst-len", type=float, default=defaults.burst_len)
    ap.add_argument("--burst-factor", type=float, default=defaults.burst_factor)
    ap.add_argument("--burst-writes", type=float, default=defaults.burst_writes,
                    help="share of a burst's extra traffic that posts to the hot conversation (< 0: --writes)")
    ap.add_argument("--conversations", type=int, default=defaults.conversations)
    ap.add_argument("--users", type=int, default=defaults.users)
    ap.add_argument("--top-messages", type=int, default=defaults.top_messages,
                    help="messages of the most-read conversation (rank k: this / k more than 5-64); 0: flat sizes")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--pgbench-clients", type=int, default=50)
    ap.add_argument("--pgbench-duration", type=int, default=15)
    ap.add_argument("--only", default="chat,pgbench,hit", help="comma list of cases: chat,pgbench,hit")
    args = ap.parse_args()
    if not 0.05 <= args.writes <= 0.10:
        print(f"note: --writes {args.writes} is outside the 5-10 % the issue asks for", file=sys.stderr)
    opts = Options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Options) if hasattr(args, f.name)})
    args.targets = set(args.targets.split(","))
    only = set(args.only.split(","))
    os.makedirs(args.out, exist_ok=True)
    base = temp_dir("cache-bench-")
    failures, chat, bench, hit = [], {}, {}, None
    load_before = load_average()
    t_start = time.monotonic()
    setup = Setup(base)
    try:
        setup.start(opts)
        if "chat" in only:
            chat = median_summary(run_chat(setup, opts, args, failures))
        if "pgbench" in only:
            bench = run_pgbench(setup, args, failures)
        if "hit" in only:
            try:
                hit = asyncio.run(hit_cost.measure(setup.on, setup.off, setup.pg.port, setup.redis.port,
                                                   lambda: _hits(setup)))
                print(f"  hit cost: {hit}", flush=True)
            except Exception as e:  # noqa: BLE001 - reported, the report is still written
                failures.append(("hit cost", "cache-on", str(e)))
    except Exception as e:  # noqa: BLE001 - the setup itself failed: say why, still write a report
        failures.append(("setup", "", f"{type(e).__name__}: {e}"))
        print(f"setup failed: {e}", file=sys.stderr)
    finally:
        setup.stop()
        shutil.rmtree(base, ignore_errors=True)
    text = report.render(chat, bench, hit, failures, opts, args,
                         {"before": load_before, "after": load_average(),
                          "minutes": (time.monotonic() - t_start) / 60, "argv": _options_text(sys.argv[1:])})
    print(text)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)
    if chat:
        with open(os.path.join(args.out, "timeline.json"), "w") as f:
            json.dump({label: m["timeline"] for label, m in chat.items() if m.get("timeline")}, f)
    return 1 if any(case == "setup" for case, _, _ in failures) else 0


def _options_text(argv):
    """The command line without --out (run.sh passes its OUT_DIR argument as --out)."""
    out, skip = [], False
    for a in argv:
        if skip or a.startswith("--out="):
            skip = False
            continue
        if a == "--out":
            skip = True
            continue
        out.append(a)
    return " ".join(out)


async def _hits(setup):
    return int((await setup.cache_row())["hits"])


if __name__ == "__main__":
    sys.exit(main())
