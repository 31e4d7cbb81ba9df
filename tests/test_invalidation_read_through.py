"""Applications that fill the cache themselves (read-through), racing a commit's purge,
forced step by step: the reader misses and SELECTs the old row, then waits while the
commit goes in and pgcohered's purge of it has been applied, then stores what it read.
A plain SET leaves that stale value in place (until the key's next write); the leased
fill of tests/read_through.py (docs/invalidation.md) is refused, for an exact key and
for a key a pattern covers, with either pattern strategy. Uses the real extension."""
import threading

import pytest

from harness.servers import wait_until
from read_through import ReadThrough, is_lease
from test_invalidation import inv_daemon  # noqa: F401


def setup_items(pg, db):
    with pg.connect(db) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
        c.execute("INSERT INTO items SELECT g, 'old' FROM generate_series(1, 10) g")
        c.execute(f"SELECT pgcohere.watch('items', ARRAY['{db}:item:{{id}}', '{db}:list:{{id}}:*'])")


def select_v(pg, db, item):
    with pg.connect(db) as c:
        return c.execute("SELECT v FROM items WHERE id = %s", (item,)).fetchone()[0].encode()


def commit_and_wait_for_its_purge(pg, db, d, item, value):
    applied = d.metric("pgcohere_invalidations_applied_total", database=db)
    with pg.connect(db) as c:
        c.execute("UPDATE items SET v = %s WHERE id = %s", (value, item))
    wait_until(lambda: d.metric("pgcohere_invalidations_applied_total", database=db) > applied,
               what="the commit's purge to be applied")


def raced_fill(pg, db, d, item, fill):
    """Runs fill(load) in a thread whose load() SELECTs the row and then waits until the
    row was updated and the update's purge applied. Returns what fill returned."""
    selected, go, out = threading.Event(), threading.Event(), {}

    def load():
        value = select_v(pg, db, item)
        selected.set()
        assert go.wait(30)
        return value

    th = threading.Thread(target=lambda: out.setdefault("value", fill(load)))
    th.start()
    assert selected.wait(30)
    commit_and_wait_for_its_purge(pg, db, d, item, "new")
    go.set()
    th.join(30)
    return out["value"]


def plain_read_through(r, key):
    def fill(load):
        value = r.get(key)
        if value is None:
            value = load()
            r.set(key, value)
        return value
    return fill


def test_plain_fill_that_raced_a_purge_stays_stale(pg, new_db, redis_srv, inv_daemon):
    """The race the lease closes, under the default settings (no re-delete): GET, SELECT,
    purge, SET leaves the old value in the cache."""
    setup_items(pg, new_db)
    d = inv_daemon([new_db])
    r = redis_srv.client()
    key = f"{new_db}:item:3"
    assert raced_fill(pg, new_db, d, 3, plain_read_through(r, key)) == b"old"
    assert select_v(pg, new_db, 3) == b"new"
    assert r.get(key) == b"old"  # stale, and nothing will purge it before the row's next write


@pytest.mark.parametrize("strategy", ["index", "scan"])
def test_leased_fill_that_raced_a_purge_is_refused(pg, new_db, redis_srv, inv_daemon, strategy):
    """The same race with the lease: the purge deleted the lease (an exact key, and a key
    under a rule's pattern), so the old value is not stored; the next read stores the new."""
    setup_items(pg, new_db)
    d = inv_daemon([new_db], extra_ini="pattern_index = 0\n" if strategy == "scan" else "")
    r = redis_srv.client()
    rt = ReadThrough(r)
    for key, item in ((f"{new_db}:item:4", 4), (f"{new_db}:list:5:page:1", 5)):
        assert raced_fill(pg, new_db, d, item, lambda load: rt.get(key, load)) == b"old"
        assert r.get(key) is None, key  # the stale fill was dropped
        assert rt.get(key, lambda: select_v(pg, new_db, item)) == b"new"
        assert r.get(key) == b"new"


def test_leased_fill_without_a_race_is_stored_and_a_lease_reads_as_a_miss(pg, new_db, redis_srv, inv_daemon):
    setup_items(pg, new_db)
    inv_daemon([new_db])
    r = redis_srv.client()
    rt = ReadThrough(r, ttl_ms=60_000)
    key = f"{new_db}:item:6"
    token = rt.lease(key)
    assert token is not None and is_lease(r.get(key))
    assert rt.lease(key) is None  # one lease at a time
    # a second reader sees the lease as a miss: it reads PostgreSQL and leaves the lease alone
    assert rt.get(key, lambda: select_v(pg, new_db, 6)) == b"old"
    assert r.get(key) == token
    assert rt.store(key, token, b"old")
    assert r.get(key) == b"old" and 0 < r.pttl(key) <= 60_000
    assert not rt.store(key, token, b"again")  # a lease is used once
