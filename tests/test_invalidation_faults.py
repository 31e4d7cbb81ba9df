"""Faults on the invalidation path: Redis killed while invalidations commit (kept in memory
and in the journal, replayed, or resync past the bound), the daemon killed (-9) and
restarted, PostgreSQL restarted, and two daemons electing one purger per database."""
import os
import signal

import pytest

from harness.servers import RedisServer, free_port, wait_until
from test_invalidation import Stream, gone, inv_daemon  # noqa: F401


@pytest.fixture
def durable_redis(workdir):
    """A Redis of our own whose data survives kill -9 (AOF, fsync always)."""
    base = os.path.join(workdir, f"redis-durable-{free_port()}")
    server = RedisServer(base, extra_args=["--appendonly", "yes", "--appendfsync", "always"]).start()
    yield server
    server.kill(signal.SIGKILL)


def restart_redis(server):
    again = RedisServer(server.dir, port=server.port, extra_args=server.extra_args).start()
    server.proc = again.proc
    return server


def test_redis_killed_then_back_applies_pending_purges(pg, new_db, secret, inv_daemon, durable_redis):
    d = inv_daemon([new_db], redis_url=durable_redis.url)
    r = durable_redis.client()
    keys = [f"{new_db}:k:{i}" for i in range(50)]
    r.mset({k: "x" for k in keys})
    r.set(f"{new_db}:p:1", "x")
    durable_redis.kill(signal.SIGKILL)
    s = Stream(pg, new_db, secret)
    s.send([("k", k) for k in keys] + [("p", f"{new_db}:p:*")])
    wait_until(lambda: d.metric("pgcohere_purge_backlog") >= 51, what="purges waiting for Redis")
    restart_redis(durable_redis)
    r = durable_redis.client()
    wait_until(lambda: gone(r, *keys, f"{new_db}:p:1"), what="pending purges applied after Redis came back")
    wait_until(lambda: d.metric("pgcohere_purge_backlog") == 0, what="backlog drained")


def test_daemon_killed_while_redis_down_replays_its_journal(pg, new_db, secret, inv_daemon, durable_redis,
                                                            workdir):
    journal = os.path.join(workdir, f"journal-{new_db}")
    ini = f"journal_file = {journal}\n"
    d = inv_daemon([new_db], extra_ini=ini, redis_url=durable_redis.url)
    r = durable_redis.client()
    key = f"{new_db}:manual:42"  # outside every rule and the cache namespace: no resync covers it
    r.set(key, "x")
    durable_redis.kill(signal.SIGKILL)
    Stream(pg, new_db, secret).send([("k", key)])
    wait_until(lambda: d.metric("pgcohere_journal_depth") >= 1, what="purge journaled")
    d.kill(signal.SIGKILL)
    restart_redis(durable_redis)
    r = durable_redis.client()
    assert r.get(key) == b"x"  # nobody purged it yet
    d2 = inv_daemon([new_db], extra_ini=ini, redis_url=durable_redis.url)
    wait_until(lambda: gone(r, key), what="journaled purge replayed by the next daemon")
    assert "replaying 1 journaled purge(s)" in d2.log()
    wait_until(lambda: d2.metric("pgcohere_journal_depth") == 0, what="journal emptied")


def test_backlog_past_its_bound_falls_back_to_resync(pg, new_db, secret, inv_daemon, durable_redis):
    d = inv_daemon([new_db], extra_ini="journal_max_entries = 10\n", redis_url=durable_redis.url)
    r = durable_redis.client()
    r.set("pgcohere:cached:overflow", "x")
    durable_redis.kill(signal.SIGKILL)
    Stream(pg, new_db, secret).send([("k", f"{new_db}:k:{i}") for i in range(20)])
    wait_until(lambda: "dropping it for a resync" in d.log(), what="backlog overflow")
    restart_redis(durable_redis)
    r = durable_redis.client()
    wait_until(lambda: gone(r, "pgcohere:cached:overflow"), what="resync after the overflow")
    assert d.metric("pgcohere_invalidation_resyncs_total", database=new_db, reason="backlog overflow") == 1


def test_daemon_killed_misses_nothing_after_restart(pg, new_db, secret, inv_daemon, redis_srv):
    d = inv_daemon([new_db])
    d.kill(signal.SIGKILL)
    r = redis_srv.client()
    r.set("pgcohere:cached:while-down", "x")
    Stream(pg, new_db, secret).send([("k", "pgcohere:cached:while-down")])  # nobody listens
    d2 = inv_daemon([new_db])  # waits for its connect resync
    assert gone(r, "pgcohere:cached:while-down")
    assert d2.metric("pgcohere_invalidation_resyncs_total", database=new_db, reason="connect") == 1


def test_postgres_restart_is_seen_and_covered(pg, new_db, secret, inv_daemon, redis_srv):
    d = inv_daemon([new_db])
    r = redis_srv.client()
    # Cached before the outage, so only the resync after it can remove it (set after the
    # restart, it raced that resync: pg_ctl returns after the daemon may have reconnected).
    r.set("pgcohere:cached:pg-restart", "x")
    pg.restart()
    d.wait_listening(new_db, count=2, timeout=60)
    d.wait_resyncs(new_db, 2, timeout=30)
    wait_until(lambda: gone(r, "pgcohere:cached:pg-restart"), what="resync after PostgreSQL restart")
    key = f"{new_db}:after-restart"
    r.set(key, "x")
    Stream(pg, new_db, secret).send([("k", key)])
    wait_until(lambda: gone(r, key), what="purges flow again")


def test_one_leader_per_database_and_takeover_when_it_dies(pg, new_db, secret, inv_daemon, redis_srv):
    a = inv_daemon([new_db])
    b = inv_daemon([new_db], start=False)
    b.start()
    wait_until(lambda: "standing by" in b.log(), what="second daemon stands by")
    assert a.metric("pgcohere_invalidation_leader", database=new_db) == 1
    assert b.metric("pgcohere_invalidation_leader", database=new_db) == 0
    a.kill(signal.SIGKILL)
    b.wait_listening(new_db, timeout=30)
    b.wait_resyncs(new_db, 1)
    assert b.metric("pgcohere_invalidation_leader", database=new_db) == 1
    r = redis_srv.client()
    key = f"{new_db}:after-takeover"
    r.set(key, "x")
    Stream(pg, new_db, secret).send([("k", key)])
    wait_until(lambda: gone(r, key), what="the new leader purges")


def test_hung_redis_is_dropped_and_purges_resume(pg, new_db, secret, inv_daemon, durable_redis):
    d = inv_daemon([new_db], extra_ini="[redis]\ncommand_timeout = 0.3\n", redis_url=durable_redis.url)
    r = durable_redis.client()
    key = f"{new_db}:hung"
    r.set(key, "x")
    durable_redis.proc.send_signal(signal.SIGSTOP)
    try:
        Stream(pg, new_db, secret).send([("k", key)])
        wait_until(lambda: "command timed out" in d.log(), what="the hung connection is dropped")
    finally:
        durable_redis.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: gone(r, key), what="purge applied once Redis answers again")


def test_delayed_redelete_purges_a_stale_refill(pg, new_db, secret, inv_daemon, redis_srv):
    d = inv_daemon([new_db], extra_ini="redelete_delay = 2\n")
    r = redis_srv.client()
    key = f"{new_db}:raced"
    r.set(key, "old")
    Stream(pg, new_db, secret).send([("k", key)])
    wait_until(lambda: gone(r, key), what="first purge")
    r.set(key, "old value written back by a racing reader")
    wait_until(lambda: gone(r, key), what="second purge after the delay")
    assert d.metric("pgcohere_invalidations_applied_total", database=new_db) == 1
