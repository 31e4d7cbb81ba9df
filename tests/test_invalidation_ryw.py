"""Read-your-writes, extension and invalidation side (docs/cache.md, "Read-your-writes"):
a commit that published query-cache invalidations (a cache-enabled table's tags) reports `pgcohere.published` = "<epoch> <pos>" to its
session in a ParameterStatus (growing positions; a rollback, a read or a commit of
application keys only changes nothing), and
the leading daemon's watermark in Redis, `<namespace>{<database>}:applied`, reaches that
position once the purge is done. In preload mode (ring positions), a direct publish in a
preloaded cluster (a marker in the ring), and direct mode (seqs; a cluster without preload)."""
import os
import threading

import pytest

from harness.servers import PgCluster, daemon_config, free_port, wait_until
from test_invalidation import InvDaemon


@pytest.fixture(scope="module")
def direct_cluster(workdir, secret_file):
    cluster = PgCluster(os.path.join(workdir, "pg-ryw-direct"), preload=False, secret_file=secret_file).init().start()
    yield cluster
    cluster.remove()


@pytest.fixture(params=["preload", "preload-direct-publish", "direct"])
def stream(request, pg, new_db, redis_srv, secret_file, workdir):
    """(cluster, dbname, daemon, session settings) with a watched table and a daemon purging."""
    cluster, dbname = pg, new_db
    if request.param == "direct":
        cluster = request.getfixturevalue("direct_cluster")
        with cluster.connect() as c:
            c.execute(f"CREATE DATABASE {dbname}")
        with cluster.connect(dbname) as c:
            c.execute("CREATE EXTENSION pgcohere")
    with cluster.connect(dbname) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
        c.execute("SELECT pgcohere.watch('items', ARRAY['item:{id}'])")
        c.execute("SELECT pgcohere.cache_table('items')")  # its writes publish query-cache tags
        c.execute("CREATE TABLE keyed (id int PRIMARY KEY)")
        c.execute("SELECT pgcohere.watch('keyed', ARRAY['keyed:{id}'])")  # application keys only
    port, metrics_port = free_port(), free_port()
    d = InvDaemon(os.path.join(workdir, "ryw-daemon"),
                  daemon_config(port, cluster, [dbname], redis_srv.url, secret_file, metrics_port), port)
    d.metrics_port = metrics_port
    d.start()
    d.wait_listening(dbname)
    d.wait_resyncs(dbname, 1)
    options = "-c pgcohere.publish_mode=direct" if request.param == "preload-direct-publish" else ""
    yield cluster, dbname, d, options
    d.stop()
    if request.param == "direct":
        with cluster.connect() as c:
            c.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


def published(conn):
    value = conn.info.parameter_status("pgcohere.published")
    if not value:
        return None
    epoch, pos = value.split(" ")
    return int(epoch), int(pos)


def applied(r, dbname):
    value = r.get("pgcohere:{" + dbname + "}:applied")
    if value is None:
        return None
    epoch, pos = value.decode().split(" ")
    return int(epoch), int(pos)


def reached(r, dbname, want):
    have = applied(r, dbname)
    return have is not None and (have[0] > want[0] or (have[0] == want[0] and have[1] >= want[1]))


def test_each_commit_reports_a_growing_position_that_the_applied_watermark_reaches(stream, redis_srv):
    cluster, dbname, d, options = stream
    r = redis_srv.client()
    seen = []
    with cluster.connect(dbname, options=options) as c:
        assert published(c) is None
        for i in range(1, 6):
            r.set(f"item:{i}", "cached")
            c.execute("INSERT INTO items VALUES (%s, 'x')", (i,))
            seen.append(published(c))
            assert seen[-1] is not None, "the ParameterStatus came with the commit's ReadyForQuery"
            # Once the watermark reaches the commit, its invalidation is done.
            wait_until(lambda: reached(r, dbname, seen[-1]), what=f"applied reaches {seen[-1]}")
            assert r.exists(f"item:{i}") == 0
        assert len({e for e, _ in seen}) == 1, "one epoch"
        positions = [p for _, p in seen]
        assert positions == sorted(positions) and len(set(positions)) == len(positions), positions

        # Nothing published: the value stays.
        before = published(c)
        c.execute("SELECT count(*) FROM items")
        with c.transaction(force_rollback=True):
            c.execute("INSERT INTO items VALUES (100, 'rolled back')")
        c.execute("UPDATE items SET v = 'same' WHERE id = -1")  # no row changed
        assert published(c) == before

        # Only application keys (no cache entry depends on them): purged, the value stays.
        r.set("keyed:1", "cached")
        c.execute("INSERT INTO keyed VALUES (1)")
        assert published(c) == before
        wait_until(lambda: r.exists("keyed:1") == 0, what="the application key purged")

        # A transaction block with several statements reports once, at its commit.
        with c.transaction():
            c.execute("INSERT INTO items VALUES (200, 'a')")
            assert published(c) == before
            c.execute("INSERT INTO items VALUES (201, 'b')")
        after = published(c)
        assert after[1] > before[1]
        wait_until(lambda: reached(r, dbname, after), what="applied reaches the transaction block")


def test_concurrent_writers_each_see_the_watermark_reach_their_own_commit(stream, redis_srv):
    cluster, dbname, d, options = stream
    r = redis_srv.client()
    results, errors = [], []

    def writer(w):
        try:
            with cluster.connect(dbname, options=options) as c:
                for i in range(20):
                    key = 1000 + w * 100 + i
                    c.execute("INSERT INTO items VALUES (%s, 'w')", (key,))
                    results.append(published(c))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 80 and None not in results
    highest = max(results)
    wait_until(lambda: reached(r, dbname, highest), what=f"applied reaches {highest}")
    assert d.metric("pgcohere_invalidations_rejected_total", database=dbname) == 0


def test_a_resync_deletes_the_applied_key_and_the_daemon_writes_it_again(stream, redis_srv):
    cluster, dbname, d, options = stream
    r = redis_srv.client()
    with cluster.connect(dbname, options=options) as c:
        c.execute("INSERT INTO items VALUES (1, 'x')")
        first = published(c)
    wait_until(lambda: reached(r, dbname, first), what="applied reaches the first commit")
    # Reconnect the LISTEN session: its connect resync purges the whole namespace.
    with cluster.connect(dbname) as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE application_name = 'pgcohered-listen' AND datname = current_database()")
    d.wait_listening(dbname, count=2)
    d.wait_resyncs(dbname, 2)
    wait_until(lambda: reached(r, dbname, first), what="applied written again after the resync")
    with cluster.connect(dbname, options=options) as c:
        c.execute("INSERT INTO items VALUES (2, 'x')")
        second = published(c)
    assert second[1] > first[1]
    wait_until(lambda: reached(r, dbname, second), what="applied reaches a commit after the reconnect")
