"""Invalidation benchmarks (see docs/invalidation.md for the numbers and how to read them).

Starts its own PostgreSQL 15 (pgcohere preloaded), Redis and pgcohered on loopback, then:
  A. commit-to-purge latency, p50/p99, at a paced 1,000 committing transactions per second;
  B. one conversation's pattern purge in a Redis of 1,000,000 keys shaped
     msg:history:{conv}:{limit}:{offset}, by the daemon (the default, the prefix index kept
     in Redis; and scanning, pattern_index = 0) and by
     `redis-cli --scan --pattern ... | xargs redis-cli unlink`, in the same run;
  C. sustained 1,000 distinct conversation invalidations per second over that keyspace,
     p99 commit-to-purge, Redis and daemon CPU, for each pattern strategy; daemon RSS with
     10,000 and with 1,000,000 keys, Redis memory.
Latencies come from the daemon's histogram (the extension stamps the commit time)."""
import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))
from harness.servers import Daemon, PgCluster, RedisServer, free_port, make_secret_file, temp_dir, wait_until  # noqa
sys.path.insert(0, os.path.join(REPO, "bench"))
from common.metrics import histogram, metric, quantile, scrape  # noqa: E402

import asyncpg  # noqa: E402

DB = "benchdb"


def redis_cpu(r):
    info = r.info("cpu")
    return info["used_cpu_sys"] + info["used_cpu_user"]


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


class Keyspace:
    """The benchmark's Redis: one server, or every primary of a cluster (commands on the
    keys are sent to the node that owns them; totals are summed over the nodes)."""

    def __init__(self, servers, cluster):
        self.servers, self.cluster = servers, cluster
        self.nodes = [srv.client() for srv in servers]
        self.ports = [srv.port for srv in servers]

    def _owner(self):
        from redis.crc import key_slot
        slots = {}
        for start, end, master, *_ in self.nodes[0].execute_command("CLUSTER", "SLOTS"):
            idx = self.ports.index(master[1])
            for slot in range(start, end + 1):
                slots[slot] = idx
        return lambda key: slots[key_slot(key.encode())]

    def by_node(self, keys):
        if not self.cluster:
            return {0: list(keys)}
        owner = self._owner()
        out = {}
        for k in keys:
            out.setdefault(owner(k), []).append(k)
        return out

    def flushall(self):
        for c in self.nodes:
            c.flushall()

    def dbsize(self):
        return sum(c.dbsize() for c in self.nodes)

    def cpu(self):
        return sum(self.cpu_per_node())

    def cpu_per_node(self):
        return [redis_cpu(c) for c in self.nodes]

    def reset_stats(self):
        for c in self.nodes:
            c.config_resetstat()

    def command_usec(self, top=8):
        """Redis CPU by command since reset_stats(): [(command, calls, usec)], largest first."""
        total = {}
        for c in self.nodes:
            for name, st in c.info("commandstats").items():
                calls, usec = total.get(name, (0, 0))
                total[name] = (calls + st["calls"], usec + st["usec"])
        rows = sorted(((n.replace("cmdstat_", ""), c, u) for n, (c, u) in total.items()), key=lambda x: -x[2])
        return rows[:top]

    def used_memory(self):
        return sum(c.info("memory")["used_memory"] for c in self.nodes)

    def exists(self, keys, by_node=None):
        groups = by_node or self.by_node(keys)
        total = 0
        for idx, ks in groups.items():
            if self.cluster:  # one round trip per node: a script may read any slot of its node
                total += self.nodes[idx].eval(
                    "local n = 0 for _, k in ipairs(ARGV) do n = n + redis.call('EXISTS', k) end return n", 0, *ks)
            else:
                total += self.nodes[idx].exists(*ks)
        return total

    def mset(self, mapping):
        for idx, ks in self.by_node(mapping).items():
            p = self.nodes[idx].pipeline(transaction=False)
            for k in ks:
                p.set(k, mapping[k])
            p.execute()

    def cli_purge(self, pattern):
        """The CLI way: SCAN with redis-cli, UNLINK what it lists (per node: in a cluster a
        multi-key UNLINK must stay within one slot, so one UNLINK per key)."""
        for port in self.ports:
            if self.cluster:
                cmd = (f"redis-cli -p {port} --scan --pattern '{pattern}' | sed 's/^/UNLINK /' | "
                       f"redis-cli -p {port} > /dev/null")
            else:
                cmd = f"redis-cli -p {port} --scan --pattern '{pattern}' | xargs redis-cli -p {port} unlink > /dev/null"
            subprocess.run(cmd, shell=True, check=True)


class Setup:
    def __init__(self, base, cluster=False):
        self.base = base
        self.secret_file = make_secret_file(base)
        self.pg = PgCluster(os.path.join(base, "pg"), preload=True, secret_file=self.secret_file,
                            settings={"max_connections": 100}).init().start()
        if cluster:
            from harness.redis_cluster import RedisCluster
            self.cluster = RedisCluster(os.path.join(base, "cluster")).start()
            self.redis_ini = "cluster_nodes = " + ", ".join(self.cluster.seeds)
            self.keyspace = Keyspace(self.cluster.nodes, True)
        else:
            self.cluster = None
            self.redis = RedisServer(os.path.join(base, "redis")).start()
            self.redis_ini = f"url = {self.redis.url}"
            self.keyspace = Keyspace([self.redis], False)
        with self.pg.connect() as c:
            c.execute(f"CREATE DATABASE {DB}")
        with self.pg.connect(DB) as c:
            c.execute("CREATE EXTENSION pgcohere")
            c.execute("CREATE TABLE conversations (id int PRIMARY KEY, title text)")
            c.execute("INSERT INTO conversations SELECT g, 't' FROM generate_series(1, 10000) g")
            c.execute("CREATE TABLE messages (id bigserial PRIMARY KEY, conversation_id int, body text)")
            c.execute("SELECT pgcohere.watch('conversations', ARRAY['conv:metadata:{id}'])")
            if HASH_TAGS:
                c.execute("ALTER TABLE messages ADD conv_tag text GENERATED ALWAYS AS "
                          "('{' || conversation_id || '}') STORED")
                c.execute("SELECT pgcohere.watch('messages', ARRAY['msg:history:{conv_tag}:*'])")
            else:
                c.execute("SELECT pgcohere.watch('messages', ARRAY['msg:history:{conversation_id}:*'])")
        self.daemon = None

    def start_daemon(self, pattern_index=True):
        if self.daemon:
            self.daemon.stop()
        port, mport = free_port(), free_port()
        ini = (f"[databases]\n{DB} = host=127.0.0.1 port={self.pg.port} dbname={DB} user=postgres\n"
               f"[pgcohered]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n"
               f"metrics_port = {mport}\n[redis]\n{self.redis_ini}\n"
               f"[invalidation]\nsecret_file = {self.secret_file}\npattern_index = {1 if pattern_index else 0}\n")
        d = Daemon(os.path.join(self.base, "daemon"), ini, port)
        # The log is appended to across daemons: wait for this one's resync.
        resyncs = d.log().count("resync (connect) done") if os.path.exists(d.log_path) else 0
        d.start()
        d.metrics_port = mport
        wait_until(lambda: d.log().count("resync (connect) done") > resyncs, timeout=600, what="daemon ready")
        if pattern_index:
            wait_until(lambda: metric(scrape(mport), "pgcohere_pattern_index_ready") == 1, timeout=600,
                       what="pattern index ready")
        self.daemon = d
        return d

    def stop(self):
        if self.daemon:
            self.daemon.stop()
        if self.cluster:
            self.cluster.stop()
        else:
            self.redis.stop()
        self.pg.remove()


async def paced(pg, rate, seconds, sql_args, connections=8):
    """Runs sql_args(i) -> (sql, args) at `rate` per second; returns the achieved rate."""
    pool = await asyncpg.create_pool(host=pg.host, port=pg.port, user="postgres", database=DB,
                                     min_size=connections, max_size=connections)
    total = int(rate * seconds)
    done = 0
    start = time.perf_counter()

    async def one(i):
        nonlocal done
        sql, args = sql_args(i)
        async with pool.acquire() as c:
            await c.execute(sql, *args)
        done += 1

    tasks = set()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t = asyncio.create_task(one(i))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await pool.close()
    return done / elapsed


def wait_quiet(d, expected_applied, timeout=300):
    wait_until(lambda: metric(scrape(d.metrics_port), "pgcohere_invalidations_applied_total") >= expected_applied,
               timeout=timeout, interval=0.05, what="every invalidation applied")


def bench_latency(s, seconds, rate=1000):
    d = s.start_daemon(pattern_index=True)
    s.keyspace.mset({f"conv:metadata:{i}": "x" for i in range(1, 10001)})
    before_text = scrape(d.metrics_port)
    applied0 = metric(before_text, "pgcohere_invalidations_applied_total")
    achieved = asyncio.run(paced(s.pg, rate, seconds,
                                 lambda i: ("UPDATE conversations SET title = $1 WHERE id = $2",
                                            (str(i), i % 10000 + 1))))
    # The publisher batches several commits into one payload: wait for the stream to settle.
    time.sleep(0.5)
    after_text = scrape(d.metrics_port)
    before, after = histogram(before_text), histogram(after_text)
    p50, n = quantile(before, after, 0.5)
    p99, _ = quantile(before, after, 0.99)
    rb, ra = (histogram(t, "pgcohere_invalidation_receive_latency_ms") for t in (before_text, after_text))
    r50, _ = quantile(rb, ra, 0.5)
    r99, _ = quantile(rb, ra, 0.99)
    return {"receive_p50_ms": round(r50, 2) if r50 else None, "receive_p99_ms": round(r99, 2) if r99 else None,
            "target_tx_per_s": rate, "achieved_tx_per_s": round(achieved, 1), "seconds": seconds,
            "payloads": int(n), "applied": int(metric(after_text, "pgcohere_invalidations_applied_total") - applied0),
            "p50_ms": round(p50, 2) if p50 else None, "p99_ms": round(p99, 2) if p99 else None}


# --hash-tags: a conversation's keys carry its id as a hash tag ("msg:history:{42}:0:0"), the
# naming docs/invalidation.md advises on a cluster: one slot per conversation, so that its
# pattern is purged on one node. The rule renders the tag from a generated column.
HASH_TAGS = False


def conv_part(conv):
    return f"{{{conv}}}" if HASH_TAGS else str(conv)


def load_keyspace(ks, first=1, last=1000, per_conv=1000, convs=None):
    """Conversations first..last (or 1..convs) of per_conv keys each; `ks` is a Keyspace or
    a client of one server (anything with mset(mapping))."""
    if convs is not None:
        last = convs
    batch = {}
    for conv in range(first, last + 1):
        batch.update({f"msg:history:{conv_part(conv)}:{limit}:{offset}": "v"
                      for limit, offset in ((i // 50, i % 50) for i in range(per_conv))})
        if conv % 20 == 0:
            ks.mset(batch)
            batch = {}
    if batch:
        ks.mset(batch)


def wait_indexed(d, keys):
    """The index has listed `keys` keys (each key of this keyspace is in one set)."""
    wait_until(lambda: metric(scrape(d.metrics_port), "pgcohere_pattern_index_entries_added_total") >= keys,
               timeout=600, interval=0.2, what=f"{keys} keys indexed")


RECEIVED = "pgcohere_invalidation_receive_latency_ms"


def purge_one(d, conv, ks, conn, timeout=120):
    """(ms from before the INSERT to purged, ms from its commit's return to purged).

    Done when none of the conversation's 1,000 keys exists (other keys may come and go: the
    daemon's read-your-writes watermark, the index's sets). `conn` is autocommit and warm
    (warm_writer), so the first time is the commit's and the purge's; the second is the
    window in which a reader could still see a stale key after the writer saw its commit.
    A node's keys of one pattern go in one script, atomically: one key per node is polled
    (a 1,000-key EXISTS every 0.5 ms took Redis and this process's CPU from the purge), and
    all 1,000 are checked once it is gone."""
    keys = [f"msg:history:{conv_part(conv)}:{i // 50}:{i % 50}" for i in range(1000)]
    groups = ks.by_node(keys)
    sentinels = {node: [members[-1]] for node, members in groups.items()}
    assert ks.exists(keys, groups) == 1000
    t0 = time.perf_counter()
    conn.execute("INSERT INTO messages (conversation_id, body) VALUES (%s, 'hi')", (conv,))
    committed = time.perf_counter()
    deadline = t0 + timeout
    polled = sentinels
    while True:
        if not ks.exists(None, polled):
            done = time.perf_counter()
            if polled is groups or not ks.exists(keys, groups):
                break
            polled = groups  # a node's keys did not all go at once: poll them all from here
        if time.perf_counter() > deadline:
            text = scrape(d.metrics_port)
            state = {m: metric(text, m) for m in ("pgcohere_invalidations_received_total",
                                                  "pgcohere_purged_patterns_total", "pgcohere_purge_scan_passes_total",
                                                  "pgcohere_purged_pattern_keys_total", "pgcohere_purge_backlog")}
            raise TimeoutError(f"conversation {conv} not purged in {timeout} s: {ks.exists(keys, groups)} keys left, {state}")
        time.sleep(0.0005)
    return (done - t0) * 1000, (done - committed) * 1000


@contextlib.contextmanager
def warm_writer(s, d):
    """One autocommit connection for the one-pattern samples, warmed by a first INSERT into the
    watched table for a conversation without keys: a backend's first INSERT there loads the
    table's, the trigger's and the rules' catalog entries (several ms, the first sample of
    runs before 2026-12-07 16:10, which opened a connection per sample), no cost of a purge."""
    applied = metric(scrape(d.metrics_port), "pgcohere_invalidations_applied_total")
    with s.pg.connect(DB) as conn:
        conn.execute("INSERT INTO messages (conversation_id, body) VALUES (0, 'warm-up')")
        wait_quiet(d, applied + 1, timeout=60)  # its purge stays out of the samples' histogram
        yield conn


def redis_cli_purge(s, conv, ks):
    size0 = ks.dbsize()
    t0 = time.perf_counter()
    ks.cli_purge(f"msg:history:{conv_part(conv)}:*")
    ms = (time.perf_counter() - t0) * 1000
    assert ks.dbsize() == size0 - 1000
    return ms


def bench_patterns(s, sustained_seconds, rate=1000, convs=1000, strategies=("default", "scan")):
    r = s.keyspace
    out = {}
    for strategy, index in (("default", True), ("scan", False)):
        if strategy not in strategies:
            continue
        # The daemon's start-up resync purges every rule's coarse pattern (msg:history:*:*),
        # so the keyspace is loaded after it, once per strategy: 10,000 keys first, then the
        # rest, to compare the daemon's memory at both sizes.
        d = s.start_daemon(pattern_index=index)
        r.flushall()
        t0 = time.perf_counter()
        load_keyspace(r, 1, 10)
        if index:
            wait_indexed(d, 10 * 1000)
        time.sleep(1)
        res = {"daemon_rss_mb_10k_keys": round(rss_mb(d.pid), 1)}
        load_keyspace(r, 11, convs)
        if index:
            wait_indexed(d, 1000 * convs)
        out["load_seconds_" + strategy] = round(time.perf_counter() - t0, 1)
        time.sleep(1)
        res["daemon_rss_mb_1m_keys"] = round(rss_mb(d.pid), 1)
        res["redis_used_memory_mb"] = round(r.used_memory() / 2**20, 1)
        res["redis_keys"] = r.dbsize()
        out["keys"] = 1000 * convs
        if "redis_cli_scan_xargs_unlink_ms" not in out:
            # The same run's baseline: conversation 43 is unlinked the CLI way.
            out["redis_cli_scan_xargs_unlink_ms"] = round(redis_cli_purge(s, min(43, convs), r), 1)
        # Five conversations one after the other (42, 41, ...): each time, and the median;
        # the daemon's own histogram gives commit -> purged without the polling here.
        with warm_writer(s, d) as conn:
            text0 = scrape(d.metrics_port)
            samples = [purge_one(d, min(42, convs - 1) - k, r, conn, timeout=20 if convs < 100 else 120)
                       for k in range(5)]
            times = [round(total, 2) for total, _ in samples]
            after_commit = [round(window, 2) for _, window in samples]
            text1 = scrape(d.metrics_port)
        h0, h1 = histogram(text0), histogram(text1)
        # The part before the daemon: commit to the notification's arrival (extension + PostgreSQL).
        received, _ = quantile(histogram(text0, RECEIVED), histogram(text1, RECEIVED), 0.5)
        res["one_conversation_received_p50_ms"] = round(received, 2) if received else None
        res["one_conversation_ms_each"] = times
        res["one_conversation_ms"] = sorted(times)[2]
        res["one_conversation_after_commit_ms_each"] = after_commit
        res["one_conversation_after_commit_ms"] = sorted(after_commit)[2]
        dmed, _ = quantile(h0, h1, 0.5)
        res["one_conversation_daemon_histogram_p50_ms"] = round(dmed, 2) if dmed else None
        res["speedup_vs_redis_cli"] = round(out["redis_cli_scan_xargs_unlink_ms"] / res["one_conversation_ms"], 1)
        res["speedup_after_commit_vs_redis_cli"] = round(
            out["redis_cli_scan_xargs_unlink_ms"] / max(res["one_conversation_after_commit_ms"], 0.01), 1)
        # Redis's CPU with the daemon connected and no writes, the same seconds as below would
        # be: what each server costs idle (cron, cluster bus), apart from the purges.
        idle0, idle_w0 = r.cpu_per_node(), time.perf_counter()
        time.sleep(5)
        idle_wall = time.perf_counter() - idle_w0
        res["redis_idle_cpu_percent_per_node"] = [round(100 * (b - a) / idle_wall, 1)
                                                  for a, b in zip(idle0, r.cpu_per_node())]
        # Sustained: distinct conversations out of 1,000,000 ids (most have no keys; about
        # 0.1 % fall in the loaded ones), so the keyspace stays near 1,000,000 keys.
        text0 = scrape(d.metrics_port)
        applied0 = metric(text0, "pgcohere_invalidations_applied_total")
        r.reset_stats()
        nodes0, dcpu0, w0 = r.cpu_per_node(), proc_cpu(d.pid), time.perf_counter()
        cpu0 = sum(nodes0)
        ids = random.Random(7).sample(range(1, 1_000_001), int(rate * sustained_seconds))
        achieved = asyncio.run(paced(s.pg, rate, sustained_seconds,
                                     lambda i: ("INSERT INTO messages (conversation_id, body) VALUES ($1, 'm')",
                                                (ids[i],))))
        note = None
        try:
            wait_until(lambda: metric(scrape(d.metrics_port), "pgcohere_purge_backlog") == 0,
                       timeout=600, interval=0.1, what="backlog drained")
            time.sleep(0.5)
        except TimeoutError:
            note = "backlog not drained in 600 s"
        wall = time.perf_counter() - w0
        text1 = scrape(d.metrics_port)
        p50, n = quantile(histogram(text0), histogram(text1), 0.5)
        p99, _ = quantile(histogram(text0), histogram(text1), 0.99)
        res.update({"sustained_seconds": sustained_seconds, "achieved_tx_per_s": round(achieved, 1),
                    "payloads": int(n), "applied": int(metric(text1, "pgcohere_invalidations_applied_total") - applied0),
                    "p50_ms": round(p50, 2) if p50 else None, "p99_ms": round(p99, 2) if p99 else None,
                    "redis_cpu_percent": round(100 * (r.cpu() - cpu0) / wall, 1),
                    "redis_cpu_percent_per_node": [round(100 * (b - a) / wall, 1)
                                                   for a, b in zip(nodes0, r.cpu_per_node())],
                    "daemon_cpu_percent": round(100 * (proc_cpu(d.pid) - dcpu0) / wall, 1),
                    "daemon_rss_mb_after": round(rss_mb(d.pid), 1),
                    "scan_passes": int(metric(text1, "pgcohere_purge_scan_passes_total") -
                                       metric(text0, "pgcohere_purge_scan_passes_total")),
                    "index_patterns": int(metric(text1, "pgcohere_purge_index_patterns_total") -
                                          metric(text0, "pgcohere_purge_index_patterns_total")),
                    "redis_commands_usec": r.command_usec(),
                    "load_avg": os.getloadavg(),
                    "keys_after": r.dbsize()})
        if note:
            res["note"] = note
        out[strategy] = res
        print(strategy, json.dumps(res), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "invalidation"))
    ap.add_argument("--quick", action="store_true", help="short runs (5 s) for development")
    ap.add_argument("--only", choices=["latency", "patterns"])
    ap.add_argument("--latency-runs", type=int, default=1, help="latency runs (the report gives each and the median)")
    ap.add_argument("--sustained-seconds", type=int, default=60, help="length of the sustained pattern run (C)")
    ap.add_argument("--cluster", action="store_true", help="a 3-primary Redis Cluster instead of one server")
    ap.add_argument("--strategies", default="default,scan", help="pattern strategies to run (B, C)")
    ap.add_argument("--hash-tags", action="store_true",
                    help="keys msg:history:{<conv>}:... (a hash tag per conversation, for --cluster)")
    ap.add_argument("--keep", action="store_true", help="keep the servers' directory (logs)")
    ap.add_argument("--conversations", type=int, default=1000,
                    help="conversations of 1,000 keys each in the pattern runs (B, C); at least 11")
    args = ap.parse_args()
    global HASH_TAGS
    HASH_TAGS = args.hash_tags
    os.makedirs(args.out, exist_ok=True)
    base = temp_dir("pgcohere-bench-inv-")
    s = Setup(base, cluster=args.cluster)
    results = {"machine": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()},
               "redis": "cluster of 3 primaries" if args.cluster else "one server", "hash_tags": args.hash_tags}
    try:
        if args.only in (None, "latency"):
            runs = []
            for k in range(args.latency_runs):
                res = bench_latency(s, 5 if args.quick else 20)
                res["load_avg"] = os.getloadavg()
                runs.append(res)
                print(f"latency run {k + 1}/{args.latency_runs}", json.dumps(res), flush=True)
            results["latency_1000_tx_per_s"] = runs
            p99s = sorted(r["p99_ms"] for r in runs if r["p99_ms"] is not None)
            if p99s:
                results["latency_1000_tx_per_s_median_p99_ms"] = p99s[len(p99s) // 2]
        if args.only in (None, "patterns"):
            results["patterns_1m_keys"] = bench_patterns(s, 5 if args.quick else args.sustained_seconds,
                                                         convs=max(11, args.conversations),
                                                         strategies=args.strategies.split(","))
            print(json.dumps(results["patterns_1m_keys"], indent=1), flush=True)
    finally:
        s.stop()
        if args.keep:
            print(f"kept: {base}")
        else:
            subprocess.run(["rm", "-rf", base])
    path = os.path.join(args.out, "results.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
