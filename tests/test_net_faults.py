"""Network faults between pgcohered and its servers (issue 13): PostgreSQL and Redis each in
a network namespace behind a veth pair, pgcohered and its clients in the root namespace,
steady read and write load through the pooler, and on one link at a time: latency (50 and
500 ms each way), 5 % loss, a 30 s partition, half-open connections (the peer silently
gone), PostgreSQL fast and immediate restarts, Redis restarted with its data lost.

For every case the test asserts what a user relies on: once the fault heals no key a
committed write named is left in Redis, the daemon recovers by itself (same process),
its memory stays bounded, and no client waits forever; with latency or loss no client
transaction fails. It prints its figures (lines starting `NETFAULT`; docs/reliability.md
quotes them) and, with PGCOHERE_NETFAULT_REPORT=FILE, appends them to FILE as JSON lines.

The invalidations to check are committed straight into PostgreSQL and the keys set straight
into Redis over their Unix sockets, which no network fault touches: a commit during a
partition still has to reach Redis once the link is back. Needs root and `ip netns`."""
import json
import os
import random
import subprocess
import threading
import time

import psycopg
import pytest

from harness.netns import Link, NetnsPgCluster, NetnsRedis, Relay, netem_available, unavailable_reason
from harness.servers import SANITIZED, daemon_config, free_port, rss_mb, wait_until
from test_invalidation import InvDaemon

DB = "netfaults"
MARKED = 1000  # aids 1..MARKED carry keys the checker sets; the load writes the others
RSS_BOUND_MB = 64  # skipped under ASan (harness.servers.SANITIZED)


# ---- the servers behind their links (one set for the whole file) ----

@pytest.fixture(scope="module")
def net():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    n = os.getpid() % 200 + 20
    links = {"db": Link("db", f"10.77.{n}"), "redis": Link("rd", f"10.78.{n}")}
    try:
        for link in links.values():
            link.up()
        yield links
    finally:
        for link in links.values():
            link.down()


@pytest.fixture(scope="module")
def ns_pg(net, workdir, secret_file):
    cluster = NetnsPgCluster(os.path.join(workdir, "pg-netns"), net["db"], preload=True,
                             secret_file=secret_file).init().start()
    try:
        with cluster.connect() as c:
            c.execute(f"CREATE DATABASE {DB}")
        subprocess.run(["pgbench", "-i", "-s", "1", "-q", "-h", cluster.dir, "-p", str(cluster.port), "-U",
                        "postgres", DB], check=True, capture_output=True)
        with cluster.connect(DB) as c:
            c.execute("CREATE EXTENSION pgcohere")
            c.execute("SELECT pgcohere.watch('pgbench_accounts', ARRAY['acct:{aid}', 'accth:{aid}:*'])")
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="module")
def ns_redis(net, workdir):
    server = NetnsRedis(os.path.join(workdir, "redis-netns"), net["redis"]).start()
    yield server
    server.stop()


# ---- load, checker and memory, all running while a fault comes and goes ----

class Load:
    """Client threads through the pooler: readers (SELECT one account) and writers (UPDATE
    one account, which the rule turns into an invalidation). A failed operation (error or
    lost connection) is counted, the connection dropped, and the next one opened 0.2 s
    later. Every operation's end, outcome and duration are kept."""

    def __init__(self, port, readers=6, writers=2):
        self.dsn = f"host=127.0.0.1 port={port} dbname={DB} user=postgres connect_timeout=20"
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.events = []  # (end monotonic, ok, seconds)
        self.errors = {}
        self.threads = [threading.Thread(target=self.run, args=(i, i < writers), daemon=True)
                        for i in range(readers + writers)]
        for t in self.threads:
            t.start()

    def run(self, index, writer):
        conn = None
        rng = random.Random(index)
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                if conn is None:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                aid = rng.randint(MARKED + 1, 100000)
                if writer:
                    conn.execute("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = %s", (aid,))
                else:
                    conn.execute("SELECT abalance FROM pgbench_accounts WHERE aid = %s", (aid,)).fetchone()
                ok = True
            except psycopg.Error as e:
                ok = False
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                with self.lock:
                    self.errors[msg[:80]] = self.errors.get(msg[:80], 0) + 1
                if conn is not None:
                    conn.close()
                conn = None
            ended = time.monotonic()
            with self.lock:
                self.events.append((ended, ok, ended - started))
            time.sleep(0.01 if ok else 0.2)
        if conn is not None:
            conn.close()

    def finish(self, timeout=90):
        self.stop.set()
        for t in self.threads:
            t.join(timeout)
        return [t for t in self.threads if t.is_alive()]

    def between(self, t0, t1):
        return [e for e in self.events if t0 <= e[0] < t1]


class Checker:
    """The application's side of coherence: every 50 ms, sets the two keys of one marked
    account (`acct:K`, `accth:K:1`) in Redis, then commits an UPDATE of that account in
    PostgreSQL; both over Unix sockets. Every key whose UPDATE committed must leave Redis.
    A SET that fails (Redis down) or a commit whose outcome is unknown is not counted."""

    def __init__(self, pg, redis_srv):
        self.pg, self.redis_srv = pg, redis_srv
        self.committed = []  # (commit time, [keys])
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        conn, r, k = None, self.redis_srv.client(socket_timeout=2), 0
        while not self.stop.wait(0.05):
            k = k % MARKED + 1
            keys = [f"acct:{k}", f"accth:{k}:1"]
            try:
                r.mset({key: "cached" for key in keys})
            except Exception:
                continue
            try:
                if conn is None:
                    conn = self.pg.connect(DB)
                conn.execute("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = %s", (k,))
                self.committed.append((time.monotonic(), keys))
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def finish(self):
        self.stop.set()
        self.thread.join(10)

    def none_left(self, until=None):
        try:
            return not self.left(until)
        except Exception:  # Redis restarting
            return False

    def count_left(self):
        try:
            return len(self.left())
        except Exception:
            return None

    def left(self, until=None):
        """Keys whose UPDATE committed (before `until`) and that are still in Redis."""
        keys = [k for t, ks in list(self.committed) if until is None or t <= until for k in ks]
        r = self.redis_srv.client()
        left = []
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            left += [k for k, v in zip(chunk, r.mget(chunk)) if v is not None]
        return left


class Memory:
    """The daemon's RSS every 0.25 s."""

    def __init__(self, pid):
        self.pid = pid
        self.samples = [(time.monotonic(), rss_mb(pid))]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.25):
            try:
                self.samples.append((time.monotonic(), rss_mb(self.pid)))
            except OSError:
                return

    def finish(self):
        self.stop.set()
        self.thread.join(5)


# ---- the cases ----

NETEM = None


def mechanism_for_latency():
    global NETEM
    if NETEM is None:
        NETEM = netem_available()
    return "netem" if NETEM else "relay"


CASES = {
    # name: (link, kind, seconds the fault lasts)
    "50 ms latency daemon-PostgreSQL": ("db", ("delay", 50), 10),
    "500 ms latency daemon-PostgreSQL": ("db", ("delay", 500), 10),
    "50 ms latency daemon-Redis": ("redis", ("delay", 50), 10),
    "500 ms latency daemon-Redis": ("redis", ("delay", 500), 10),
    "5 % loss daemon-PostgreSQL": ("db", ("loss", 0.05), 10),
    "5 % loss daemon-Redis": ("redis", ("loss", 0.05), 10),
    "30 s partition daemon-PostgreSQL": ("db", ("partition",), 30),
    "30 s partition daemon-Redis": ("redis", ("partition",), 30),
    "half-open connections to PostgreSQL": ("db", ("half-open",), 0),
    "half-open connections to Redis": ("redis", ("half-open",), 0),
    "PostgreSQL fast restart": ("db", ("pg-restart", "fast"), 0),
    "PostgreSQL immediate restart": ("db", ("pg-restart", "immediate"), 0),
    "Redis restart, data lost": ("redis", ("redis-restart",), 0),
}
CLIENT_VISIBLE_OK = ("delay", "loss")  # faults after which a user expects no failed transaction
QUERY_TIMEOUT = 20


def make_daemon(workdir, secret_file, pg_target, redis_url):
    port, metrics_port = free_port(), free_port()
    extra = ("[pgcohered]\npool_mode = transaction\ndefault_pool_size = 10\nlog_connections = 0\n"
             f"query_timeout = {QUERY_TIMEOUT}\nquery_wait_timeout = 30\n")
    text = daemon_config(port, pg_target, [DB], redis_url, secret_file, metrics_port, extra)
    d = InvDaemon(os.path.join(workdir, "netfault-daemon"), text, port)
    d.metrics_port = metrics_port
    return d


class Target:
    def __init__(self, host, port):
        self.host, self.port = host, port


@pytest.mark.parametrize("case", list(CASES))
def test_after_a_network_fault_no_key_is_stale_and_the_daemon_recovers_by_itself(
        case, net, ns_pg, ns_redis, workdir, secret_file):
    link_name, kind, seconds = CASES[case]
    link = net[link_name]
    for each in net.values():
        each.heal()
    if ns_redis.proc.poll() is not None:
        ns_redis.start()
    ns_redis.client().flushall()
    mechanism = "iptables"
    relay = None
    pg_target, redis_url = Target(ns_pg.host, ns_pg.port), ns_redis.url
    if kind[0] == "delay":
        mechanism = mechanism_for_latency()
        if mechanism == "relay":
            if link_name == "db":
                relay = Relay(ns_pg.host, ns_pg.port, kind[1])
                pg_target = relay
            else:
                relay = Relay(link.ns_addr, ns_redis.port, kind[1])
                redis_url = f"redis://127.0.0.1:{relay.port}/0"
    elif kind[0] == "pg-restart":
        mechanism = f"pg_ctl restart -m {kind[1]}"
    elif kind[0] == "redis-restart":
        mechanism = "kill -9, restart empty"
    d = make_daemon(workdir, secret_file, pg_target, redis_url)
    try:
        d.start()
        d.wait_listening(DB)
        d.wait_resyncs(DB, 1)
        figures = run_case(case, kind, seconds, link, d, ns_pg, ns_redis, relay)
    finally:
        d.stop()  # before the relay, so that its LISTEN connection is not lost first
        for each in net.values():
            each.heal()
        if relay:
            relay.stop()
    figures.update(case=case, mechanism=mechanism)
    report(figures)
    assert figures["stale_keys"] == 0, figures
    assert figures["daemon_restarted"] is False, figures
    assert SANITIZED or figures["rss_peak_mb"] - figures["rss_before_mb"] < RSS_BOUND_MB, figures
    assert figures["hung_clients"] == 0, figures
    assert figures["ok_after_heal"] > 0, figures
    assert figures["longest_op_s"] < QUERY_TIMEOUT + 30, figures
    if kind[0] in CLIENT_VISIBLE_OK:
        assert figures["failed_tx"] == 0, figures


def run_case(case, kind, seconds, link, d, pg, redis_srv, relay):
    pid = d.pid
    mem = Memory(pid)
    load = Load(d.port)
    checker = Checker(pg, redis_srv)
    time.sleep(4)  # steady load before the fault
    rss_before = rss_mb(pid)
    fault_at = time.monotonic()
    detail = ""
    held_back = None  # committed keys still in Redis at the end of the fault
    if kind[0] == "delay":
        if relay:
            relay.delay_on()
        else:
            link.delay(kind[1])
        time.sleep(seconds)
        held_back = checker.count_left()
        if relay:
            relay.delay_off()
        else:
            link.heal()
    elif kind[0] == "loss":
        link.lose(kind[1])
        time.sleep(seconds)
        held_back = checker.count_left()
        link.heal()
    elif kind[0] == "partition":
        link.partition()
        time.sleep(seconds)
        held_back = checker.count_left()
        link.heal()
    elif kind[0] == "half-open":
        # The connections open now go silent for good; the fault "heals" at once in that
        # new connections work: recovery is the daemon noticing the dead ones.
        server_port = pg.port if link is pg.link else redis_srv.port
        detail = f"{link.blackhole_connections(server_port)} connections cut"
    elif kind[0] == "pg-restart":
        pg.restart(kind[1])
    elif kind[0] == "redis-restart":
        redis_srv.kill()
        time.sleep(2)
        redis_srv.start()
    healed_at = time.monotonic()

    # After the heal: the load goes on until no operation has failed for 5 s (at most 60 s),
    # while the keys committed up to the heal are watched until they are all gone.
    purges_back_at = None
    deadline = healed_at + 60
    while time.monotonic() < deadline:
        now = time.monotonic()
        if purges_back_at is None and checker.none_left(until=healed_at):
            purges_back_at = now
        failures = [e for e in load.between(healed_at, now) if not e[1]]
        last_failure = failures[-1][0] if failures else healed_at
        if purges_back_at is not None and now - max(last_failure, healed_at) >= 5 and now - healed_at >= 6:
            break
        time.sleep(0.2)
    hung = load.finish()
    checker.finish()
    # Whatever committed at all must be purged; give the last ones the same 60 s.
    try:
        wait_until(lambda: checker.none_left(), timeout=60, interval=0.2, what="purges of every committed key")
    except TimeoutError:
        pass
    stale = checker.left()
    mem.finish()
    rss_after = rss_mb(pid) if d.proc.poll() is None else 0.0

    events = load.events
    failed = [e for e in events if not e[1]]
    last_failure = max((e[0] for e in failed), default=None)
    after = [e for e in events if e[1] and e[0] >= max(healed_at, last_failure or 0)]
    tx_back = (after[0][0] - healed_at) if after and failed else 0.0
    return {
        "detail": detail,
        "fault_s": round(healed_at - fault_at, 1),
        "ok_tx": sum(1 for e in events if e[1]),
        "failed_tx": len(failed),
        "errors": dict(load.errors),
        "ok_after_heal": sum(1 for e in events if e[1] and e[0] >= healed_at),
        "tx_recovery_s": round(tx_back, 1),
        "purge_recovery_s": round(purges_back_at - healed_at, 1) if purges_back_at else None,
        "committed_keys": sum(len(ks) for _, ks in checker.committed),
        "keys_left_at_heal": held_back,
        "stale_keys": len(stale),
        "stale_sample": stale[:5],
        "longest_op_s": round(max((e[2] for e in events), default=0.0), 1),
        "hung_clients": len(hung),
        "rss_before_mb": round(rss_before, 1),
        "rss_peak_mb": round(max(s for _, s in mem.samples), 1),
        "rss_after_mb": round(rss_after, 1),
        "daemon_restarted": d.proc.poll() is not None or d.pid != pid,
    }


def report(figures):
    print("\nNETFAULT " + json.dumps(figures, sort_keys=True))
    path = os.environ.get("PGCOHERE_NETFAULT_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(figures, sort_keys=True) + "\n")
