"""Pattern purges through the key index ([invalidation] pattern_index = 1): keys that existed
before the daemon started (SCAN build) and keys created afterwards (keyspace events) are
purged, without scanning; a lost subscription degrades to scanning, then rebuilds."""
import os
import signal

import pytest

from harness.servers import RedisServer, free_port, wait_until
from test_invalidation import Stream, gone, inv_daemon  # noqa: F401


@pytest.fixture
def own_redis(workdir):
    server = RedisServer(os.path.join(workdir, f"redis-index-{free_port()}"),
                         extra_args=["--appendonly", "yes", "--appendfsync", "always"]).start()
    yield server
    server.kill(signal.SIGKILL)


def test_index_purges_old_and_new_keys_without_scanning(pg, new_db, secret, inv_daemon, own_redis):
    r = own_redis.client()
    r.mset({f"msg:history:42:{i}:0": "old" for i in range(50)})
    r.mset({f"msg:history:43:{i}:0": "keep" for i in range(50)})
    d = inv_daemon([new_db], extra_ini="pattern_index = 1\n", redis_url=own_redis.url)
    wait_until(lambda: d.metric("pgcohere_pattern_index_ready") == 1, what="index built")
    r.mset({f"msg:history:42:{i}:1": "new" for i in range(50)})  # after the build: via events
    scans = d.metric("pgcohere_purge_scan_passes_total")
    Stream(pg, new_db, secret).send([("p", "msg:history:42:*")])
    wait_until(lambda: gone(r, *[f"msg:history:42:{i}:{j}" for i in range(50) for j in (0, 1)]),
               what="old and new keys of conversation 42 purged")
    assert r.exists(*[f"msg:history:43:{i}:0" for i in range(50)]) == 50
    assert d.metric("pgcohere_purge_index_passes_total") >= 1
    assert d.metric("pgcohere_purge_scan_passes_total") == scans
    # Only conversation 42's range of the index was visited, not the whole keyspace.
    assert d.metric("pgcohere_purge_index_keys_visited_total") <= 100


def test_lost_subscription_scans_then_rebuilds(pg, new_db, secret, inv_daemon, own_redis):
    d = inv_daemon([new_db], extra_ini="pattern_index = 1\n", redis_url=own_redis.url)
    wait_until(lambda: d.metric("pgcohere_pattern_index_ready") == 1, what="index built")
    own_redis.kill(signal.SIGKILL)
    again = RedisServer(own_redis.dir, port=own_redis.port, extra_args=own_redis.extra_args).start()
    own_redis.proc = again.proc
    r = own_redis.client()
    r.mset({f"msg:history:7:{i}:0": "x" for i in range(20)})
    Stream(pg, new_db, secret).send([("p", "msg:history:7:*")])
    wait_until(lambda: gone(r, *[f"msg:history:7:{i}:0" for i in range(20)]), what="purged across the gap")
    wait_until(lambda: d.metric("pgcohere_pattern_index_ready") == 1, what="index rebuilt")
    r.mset({f"msg:history:8:{i}:0": "x" for i in range(20)})
    Stream(pg, new_db, secret).send([("p", "msg:history:8:*")])
    wait_until(lambda: gone(r, *[f"msg:history:8:{i}:0" for i in range(20)]), what="purged by the rebuilt index")
