"""Through the real extension (preload mode): committed row changes purge their keys and
patterns, rolled-back work purges nothing, and the connect resync covers every rule's
coarse pattern. Skipped when the extension is not installed."""
import signal


from harness.servers import wait_until
from test_invalidation import gone, inv_daemon  # noqa: F401



def setup_tables(pg, db):
    with pg.connect(db) as c:
        c.execute("CREATE TABLE conversations (id int PRIMARY KEY, title text)")
        c.execute("CREATE TABLE messages (id int PRIMARY KEY, conversation_id int, body text)")
        c.execute("INSERT INTO conversations SELECT g, 'c' || g FROM generate_series(1, 50) g")
        c.execute("INSERT INTO messages SELECT g, g % 50 + 1, 'm' FROM generate_series(1, 500) g")
        c.execute("SELECT pgcohere.watch('conversations', ARRAY['conv:metadata:{id}'])")
        c.execute("SELECT pgcohere.watch('messages', ARRAY['msg:history:{conversation_id}:*', "
                  "'msg:count:{conversation_id}'])")


def test_committed_update_purges_and_rollback_does_not(pg, new_db, redis_srv, inv_daemon):
    setup_tables(pg, new_db)
    d = inv_daemon([new_db])
    r = redis_srv.client()
    r.set("conv:metadata:7", "old")
    with pg.connect(new_db) as c:
        c.execute("UPDATE conversations SET title = 'new' WHERE id = 7")
    wait_until(lambda: gone(r, "conv:metadata:7"), what="key purged after the committed UPDATE")

    r.set("conv:metadata:7", "old")
    r.set("conv:metadata:8", "old")
    with pg.connect(new_db, autocommit=False) as c:
        c.execute("UPDATE conversations SET title = 'rolled back' WHERE id = 7")
        c.rollback()
    with pg.connect(new_db) as c:  # a later commit: once it is purged, the rollback would have been too
        c.execute("UPDATE conversations SET title = 'x' WHERE id = 8")
    wait_until(lambda: gone(r, "conv:metadata:8"), what="barrier purged")
    assert r.get("conv:metadata:7") == b"old"
    assert d.metric("pgcohere_invalidation_latency_ms_count") >= 2
    assert d.metric("pgcohere_invalidations_rejected_total", database=new_db) == 0


def test_patterns_from_rows_and_rolled_back_savepoints(pg, new_db, redis_srv, inv_daemon):
    setup_tables(pg, new_db)
    inv_daemon([new_db])
    r = redis_srv.client()
    for conv in (42, 43, 44):
        for i in range(20):
            r.set(f"msg:history:{conv}:{i}:0", "x")
        r.set(f"msg:count:{conv}", "1")
    with pg.connect(new_db, autocommit=False) as c:
        c.execute("INSERT INTO messages VALUES (1001, 42, 'hello')")
        c.execute("SAVEPOINT s")
        c.execute("INSERT INTO messages VALUES (1002, 43, 'undone')")
        c.execute("ROLLBACK TO SAVEPOINT s")
        c.execute("INSERT INTO messages VALUES (1003, 44, 'kept')")
        c.commit()
    wait_until(lambda: gone(r, "msg:count:42", "msg:count:44", *[f"msg:history:{c}:{i}:0" for c in (42, 44)
                                                                  for i in range(20)]),
               what="pattern and key purged for conversations 42 and 44")
    assert r.get("msg:count:43") == b"1"
    assert r.exists(*[f"msg:history:43:{i}:0" for i in range(20)]) == 20


def test_connect_resync_purges_every_rule_coarse_pattern(pg, new_db, redis_srv, inv_daemon):
    setup_tables(pg, new_db)
    r = redis_srv.client()
    # Written while no daemon listened: only the start-up resync can cover them.
    r.set("conv:metadata:3", "stale")
    r.set("msg:history:9:1:0", "stale")
    r.set("msg:count:9", "stale")
    r.set("unrelated:key", "kept")
    r.set("table:public.messages", "a user key that happens to look like a tag")
    inv_daemon([new_db])
    assert gone(r, "conv:metadata:3", "msg:history:9:1:0", "msg:count:9")
    assert r.get("unrelated:key") == b"kept"
    assert r.get("table:public.messages") is not None  # tags are not key patterns


def test_daemon_killed_while_writes_commit_leaves_no_stale_key(pg, new_db, redis_srv, inv_daemon):
    setup_tables(pg, new_db)
    d = inv_daemon([new_db])
    r = redis_srv.client()
    d.kill(signal.SIGKILL)
    for conv in range(1, 11):
        r.set(f"conv:metadata:{conv}", "stale")
    with pg.connect(new_db) as c:
        for conv in range(1, 11):
            c.execute("UPDATE conversations SET title = 'changed' WHERE id = %s", (conv,))
    inv_daemon([new_db])
    assert gone(r, *[f"conv:metadata:{conv}" for conv in range(1, 11)])


def test_direct_mode_concurrent_commits_purge_everything(pg, new_db, redis_srv, inv_daemon):
    """Direct mode: user backends NOTIFY at pre-commit, so seqs may arrive out of order;
    within the grace period that is not a gap."""
    import threading
    setup_tables(pg, new_db)
    d = inv_daemon([new_db], extra_ini="gap_grace = 5\n")
    r = redis_srv.client()
    r.mset({f"conv:metadata:{i}": "x" for i in range(1, 51)})

    def writer(ids):
        with pg.connect(new_db) as c:
            c.execute("SET pgcohere.publish_mode = direct")
            for i in ids:
                c.execute("UPDATE conversations SET title = 'd' WHERE id = %s", (i,))

    threads = [threading.Thread(target=writer, args=(range(k, 51, 5),)) for k in range(1, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_until(lambda: gone(r, *[f"conv:metadata:{i}" for i in range(1, 51)]), what="all 50 keys purged")
    assert d.metric("pgcohere_invalidations_rejected_total", database=new_db) == 0
    assert d.metric("pgcohere_invalidation_gaps_total", database=new_db) == 0


def test_redis_killed_while_writes_commit_leaves_no_stale_key(pg, new_db, inv_daemon, workdir):
    from test_invalidation_faults import restart_redis
    from harness.servers import RedisServer, free_port
    import os
    redis = RedisServer(os.path.join(workdir, f"redis-ext-{free_port()}"),
                        extra_args=["--appendonly", "yes", "--appendfsync", "always"]).start()
    try:
        setup_tables(pg, new_db)
        inv_daemon([new_db], extra_ini=f"journal_file = {workdir}/journal-ext-{new_db}\n", redis_url=redis.url)
        r = redis.client()
        r.mset({f"conv:metadata:{i}": "stale" for i in range(1, 21)})
        redis.kill(signal.SIGKILL)
        with pg.connect(new_db) as c:
            for i in range(1, 21):
                c.execute("UPDATE conversations SET title = 'changed' WHERE id = %s", (i,))
        restart_redis(redis)
        r = redis.client()
        wait_until(lambda: gone(r, *[f"conv:metadata:{i}" for i in range(1, 21)]),
                   what="every key changed while Redis was down purged after it came back")
    finally:
        redis.kill(signal.SIGKILL)


def test_immediate_stop_right_after_a_burst_of_commits_leaves_no_committed_key_stale(pg, new_db, redis_srv,
                                                                                      inv_daemon):
    """PostgreSQL stopped with -m immediate (no shutdown checkpoint, shared memory and the
    ring gone) while the publisher may still hold commits: after crash recovery every key a
    commit acknowledged to its client is purged, by its NOTIFY or by the resync the new
    epoch causes. A key no rule covers is left alone (the resync is not a flush)."""
    import threading
    setup_tables(pg, new_db)
    d = inv_daemon([new_db])
    r = redis_srv.client()
    r.mset({f"conv:metadata:{i}": "stale" for i in range(1, 51)})
    r.set(f"{new_db}:uncovered", "kept")
    committed = []

    def writer(ids):
        with pg.connect(new_db) as c:
            for i in ids:
                c.execute("UPDATE conversations SET title = 'burst' WHERE id = %s", (i,))
                committed.append(i)  # list.append is atomic: safe across these threads

    threads = [threading.Thread(target=writer, args=(range(k, 51, 5),)) for k in range(1, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pg.stop("immediate")
    assert sorted(committed) == list(range(1, 51))
    pg.start()
    d.wait_listening(new_db, count=2, timeout=60)
    wait_until(lambda: gone(r, *[f"conv:metadata:{i}" for i in committed]), timeout=30,
               what="every committed key purged after crash recovery")
    assert r.get(f"{new_db}:uncovered") == b"kept"
    # and the stream goes on in the new epoch
    r.set("conv:metadata:7", "stale")
    with pg.connect(new_db) as c:
        c.execute("UPDATE conversations SET title = 'after' WHERE id = 7")
    wait_until(lambda: gone(r, "conv:metadata:7"), what="purges flow after recovery")
