"""Pattern purges through the prefix index kept in Redis (the default, [invalidation]
pattern_index = 1): keys written before the daemon started, while it was down, and after it
subscribed are purged without a SCAN pass; the index sets stay in Redis, the trim drops
entries of expired keys; a Redis that refuses CONFIG and sends no notifications degrades to
scanning, with a warning and a metric."""
import os
import signal
import time

import pytest

from harness.servers import RedisServer, free_port, wait_until
from test_invalidation import Stream, gone, inv_daemon  # noqa: F401


@pytest.fixture
def own_redis(workdir):
    servers = []

    def make(*extra_args):
        server = RedisServer(os.path.join(workdir, f"redis-index-{free_port()}"), extra_args=list(extra_args)).start()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.kill(signal.SIGKILL)


def declare_history(pg, db):
    with pg.connect(db) as c:
        c.execute("SELECT pgcohere.declare_keys('msg:history:{conversation_id}:*')")


def count(r, pattern):
    return sum(1 for _ in r.scan_iter(match=pattern, count=1000))


def test_index_purges_new_keys_without_scanning(pg, new_db, secret, inv_daemon, own_redis):
    redis = own_redis()
    r = redis.client()
    declare_history(pg, new_db)
    # (Keys written before the daemon started are purged by its start-up resync, which
    # covers the declared family; the unit tests show the index's start-up SCAN.)
    d = inv_daemon([new_db], redis_url=redis.url)
    wait_until(lambda: d.metric("pgcohere_pattern_index_ready") == 1, what="index built")
    r.mset({f"msg:history:42:{i}:{j}": "x" for i in range(50) for j in (0, 1)})
    r.mset({f"msg:history:43:{i}:0": "keep" for i in range(50)})
    scans = d.metric("pgcohere_purge_scan_passes_total")
    Stream(pg, new_db, secret).send([("p", "msg:history:42:*")])
    wait_until(lambda: d.metric("pgcohere_purge_index_patterns_total") >= 1, what="purged through the index")
    assert count(r, "msg:history:42:*") == 0
    assert count(r, "msg:history:43:*") == 50
    assert d.metric("pgcohere_purge_scan_passes_total") == scans
    # Only conversation 42's set was read, not the keyspace.
    assert d.metric("pgcohere_purge_index_keys_visited_total") == 100
    assert r.scard("pgcohere-idx:s:msg:history:43:") == 50
    assert not r.exists("pgcohere-idx:s:msg:history:42:")
    assert "E" in r.config_get("notify-keyspace-events")["notify-keyspace-events"]


def test_keys_written_while_the_daemon_was_down_are_purged(pg, new_db, secret, inv_daemon, own_redis):
    # The start-up resync purges the declared family's coarse pattern too; the index's own
    # cover of such keys (its start-up SCAN) is shown without a resync in
    # invalidation_prefix_index_test (KeysWrittenWhileNoIndexWasSubscribedArePurged).
    redis = own_redis()
    r = redis.client()
    declare_history(pg, new_db)
    d = inv_daemon([new_db], redis_url=redis.url)
    wait_until(lambda: d.metric("pgcohere_pattern_index_ready") == 1, what="index built")
    d.kill(signal.SIGKILL)
    r.mset({f"msg:history:9:{i}:0": "written while down" for i in range(200)})
    d.start()
    d.wait_listening(new_db, count=2)
    Stream(pg, new_db, secret).send([("p", "msg:history:9:*")])
    wait_until(lambda: count(r, "msg:history:9:*") == 0, what="0 keys left")
    wait_until(lambda: d.metric("pgcohere_pattern_index_ready") == 1, what="index rebuilt by the start-up SCAN")
    r.mset({f"msg:history:9:{i}:1": "after" for i in range(20)})
    before = d.metric("pgcohere_purge_index_patterns_total")
    Stream(pg, new_db, secret).send([("p", "msg:history:9:*")])
    wait_until(lambda: d.metric("pgcohere_purge_index_patterns_total") > before, what="purged through the index")
    assert count(r, "msg:history:9:*") == 0


def test_a_purge_while_the_index_builds_scans(pg, new_db, secret, inv_daemon, own_redis):
    redis = own_redis()
    r = redis.client()
    r.mset({f"msg:history:11:{i}:0": "x" for i in range(20)})
    # No family is declared: the index has nothing to answer, so the pattern is scanned.
    d = inv_daemon([new_db], redis_url=redis.url)
    assert d.metric("pgcohere_pattern_index_ready") == 0
    Stream(pg, new_db, secret).send([("p", "msg:history:11:*")])
    wait_until(lambda: count(r, "msg:history:11:*") == 0, what="purged by SCAN")
    assert d.metric("pgcohere_purge_index_patterns_total") == 0


def test_the_trim_drops_entries_of_expired_keys(pg, new_db, secret, inv_daemon, own_redis):
    redis = own_redis()
    r = redis.client()
    declare_history(pg, new_db)
    d = inv_daemon([new_db], extra_ini="pattern_index_trim = 0.5\n", redis_url=redis.url)
    wait_until(lambda: d.metric("pgcohere_pattern_index_ready") == 1, what="index built")
    for i in range(100):
        r.set(f"msg:history:12:{i}:0", "short-lived", px=200)
    r.set("msg:history:13:0:0", "stays")
    wait_until(lambda: r.scard("pgcohere-idx:s:msg:history:12:") == 100, what="entries added")
    # 100 entries whose keys expire: the next trim drops them and the emptied set.
    wait_until(lambda: d.metric("pgcohere_pattern_index_entries_trimmed_total") >= 100, timeout=10,
               what="expired entries trimmed")
    assert not r.exists("pgcohere-idx:s:msg:history:12:")
    assert not r.sismember("pgcohere-idx:registry", "pgcohere-idx:s:msg:history:12:")
    assert r.scard("pgcohere-idx:s:msg:history:13:") == 1


def test_without_config_and_notifications_pattern_purges_scan(pg, new_db, secret, inv_daemon, own_redis):
    redis = own_redis("--rename-command", "CONFIG", "")
    r = redis.client()
    declare_history(pg, new_db)
    d = inv_daemon([new_db], redis_url=redis.url)
    wait_until(lambda: d.metric("pgcohere_pattern_index_unavailable_total") >= 1, what="notifications found off")
    assert "pattern purges SCAN the keyspace" in d.log()
    assert d.metric("pgcohere_pattern_index_ready") == 0
    r.mset({f"msg:history:14:{i}:0": "x" for i in range(20)})
    Stream(pg, new_db, secret).send([("p", "msg:history:14:*")])
    wait_until(lambda: count(r, "msg:history:14:*") == 0, what="purged by SCAN")


def test_lost_subscription_scans_then_rebuilds(pg, new_db, secret, inv_daemon, own_redis):
    redis = own_redis("--appendonly", "yes", "--appendfsync", "always")
    declare_history(pg, new_db)
    d = inv_daemon([new_db], redis_url=redis.url)
    wait_until(lambda: d.metric("pgcohere_pattern_index_ready") == 1, what="index built")
    builds = d.metric("pgcohere_pattern_index_builds_total")
    redis.kill(signal.SIGKILL)
    again = RedisServer(redis.dir, port=redis.port, extra_args=redis.extra_args).start()
    redis.proc = again.proc
    r = redis.client()
    r.mset({f"msg:history:7:{i}:0": "x" for i in range(20)})
    Stream(pg, new_db, secret).send([("p", "msg:history:7:*")])
    wait_until(lambda: count(r, "msg:history:7:*") == 0, what="purged across the gap")
    wait_until(lambda: d.metric("pgcohere_pattern_index_ready") == 1 and
               d.metric("pgcohere_pattern_index_builds_total") > builds, what="index rebuilt")
    r.mset({f"msg:history:8:{i}:0": "x" for i in range(20)})
    before = d.metric("pgcohere_purge_index_patterns_total")
    Stream(pg, new_db, secret).send([("p", "msg:history:8:*")])
    wait_until(lambda: d.metric("pgcohere_purge_index_patterns_total") > before, what="purged by the rebuilt index")
    assert count(r, "msg:history:8:*") == 0
