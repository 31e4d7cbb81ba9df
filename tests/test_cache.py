"""The query-result cache end to end: real PostgreSQL with the extension, real Redis, real
clients through pgcohered with [cache] enabled = 1. What users rely on: a repeated read is
answered from Redis byte for byte; a committed write (through the pool or not) makes the
next read fresh; what may not be cached never is; a fill that raced a write is dropped."""
import os
import socket
import struct
import threading

import psycopg
import pytest

from harness.servers import wait_until
from pool_helpers import (Relay, dsn, error_fields, message, pooler_ini, pooler_via, raw_login, read_messages,
                          startup_packet)

CACHE_INI = "[cache]\nenabled = 1\n"

SCHEMA = """
CREATE TABLE messages (id serial PRIMARY KEY, conversation_id int NOT NULL, body text NOT NULL);
CREATE TABLE profiles (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO messages (conversation_id, body)
    SELECT c, 'message ' || c || '/' || i FROM generate_series(1, 3) c, generate_series(1, 5) i;
INSERT INTO profiles VALUES (1, 'Ada'), (2, 'Grace');
"""


def cache_ini(**settings):
    return "[cache]\nenabled = 1\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())


# For tests that need every read to reach the cache: the default redis_timeout (20 ms) is
# passed by a lookup on a loaded machine or under ASan, and such a read goes to PostgreSQL
# without the cache (counted in cache_redis_errors_total), which is right but not what they test.
PATIENT_REDIS = {"redis_timeout": 5}


def start(daemon_factory, db, cache=None, start_daemon=True, **pool):
    pool.setdefault("pool_mode", "transaction")
    pool.setdefault("log_connections", 0)
    return daemon_factory(databases=[db], extra_ini=pooler_ini(**pool) + cache_ini(**(cache or {})),
                          start=start_daemon)


def setup_schema(pg, db, by=True):
    with pg.connect(db) as c:
        c.execute(SCHEMA)
        c.execute("SELECT pgcohere.cache_table('messages', ttl => '60 s', \"by\" => %s)",
                  (["conversation_id"] if by else None,))
        c.execute("SELECT pgcohere.cache_table('profiles')")


def cache_via(daemon_factory, db, relay, pg, cache=None, **pool):
    """A pooler with the cache on whose [databases] entry goes through `relay`."""
    d = pooler_via(daemon_factory, db, relay.port, pg.port, **pool)
    d.stop()
    with open(d.config_path, "a") as f:
        f.write(cache_ini(**(cache or {})))
    d.start()
    return d


def connect(d, db, **kw):
    """psycopg through the pooler, unnamed statements only (its default prepares a query
    after 5 runs; a named Parse passes the cache by, and its later Binds are a new key)."""
    kw.setdefault("prepare_threshold", None)
    return psycopg.connect(dsn(d, db), autocommit=True, **kw)


def cache_row(d, db):
    with psycopg.connect(dsn(d, "pgcohere", user="admin"), autocommit=True) as a:
        cur = a.execute("SHOW CACHE")
        cols = [c.name for c in cur.description]
        for row in cur.fetchall():
            r = dict(zip(cols, row))
            if r["database"] == db:
                return r
    raise AssertionError(f"no SHOW CACHE row for {db}")


def console(d, sql):
    with psycopg.connect(dsn(d, "pgcohere", user="admin"), autocommit=True) as a:
        cur = a.execute(sql)
        return cur.fetchall() if cur.description else None


def cached(d, db, run, what="a hit"):
    """Runs `run()` until one of its runs is answered from the cache (policies reach the
    daemon asynchronously); returns that run's result."""
    def attempt():
        before = cache_row(d, db)["hits"]
        result = run()
        return (result,) if cache_row(d, db)["hits"] > before else None
    return wait_until(attempt, timeout=10, interval=0.05, what=what)[0]


def not_cached(d, db, run, times=3):
    before = cache_row(d, db)["hits"]
    results = [run() for _ in range(times)]
    assert cache_row(d, db)["hits"] == before
    return results[-1]


def simple_query(sock, sql):
    sock.sendall(message(b"Q", sql.encode() + b"\0"))
    return read_messages(sock)


def extended_query(sock, sql, params=(), result_format=0):
    body = b"\0" + sql.encode() + b"\0" + struct.pack("!h", 0)
    out = message(b"P", body)
    bind = b"\0\0" + struct.pack("!hh", 1, 0) + struct.pack("!h", len(params))
    for p in params:
        v = str(p).encode()
        bind += struct.pack("!i", len(v)) + v
    bind += struct.pack("!hh", 1, result_format)
    out += message(b"B", bind) + message(b"D", b"P\0") + message(b"E", b"\0" + struct.pack("!i", 0)) + message(b"S")
    sock.sendall(out)
    return read_messages(sock)


@pytest.fixture
def chat(pg, new_db):
    setup_schema(pg, new_db)
    return new_db


def history(c, conv):
    return c.execute("SELECT id, body FROM messages WHERE conversation_id = %s ORDER BY id LIMIT 3 OFFSET 1",
                     (conv,)).fetchall()


def test_a_repeated_read_is_replayed_byte_for_byte_in_both_protocols(daemon_factory, pg, chat):
    d = start(daemon_factory, chat)
    s, _ = raw_login(d.port, chat)
    direct, _ = raw_login(pg.port, chat)
    try:
        sql = "SELECT id, body FROM messages WHERE conversation_id = 2 ORDER BY id"
        from_pg = simple_query(direct, sql)
        hit = cached(d, chat, lambda: simple_query(s, sql), "a simple-protocol hit")
        assert hit == from_pg
        assert hit[-1] == (b"Z", b"I")
        sql = "SELECT name FROM profiles WHERE id = $1"
        for fmt in (0, 1):
            from_pg = extended_query(direct, sql, [2], fmt)
            hit = cached(d, chat, lambda: extended_query(s, sql, [2], fmt), "an extended-protocol hit")
            assert hit == from_pg
            assert [t for t, _ in hit] == [b"1", b"2", b"T", b"D", b"C", b"Z"]
    finally:
        s.close()
        direct.close()


def test_a_commit_through_the_pool_or_directly_makes_the_next_read_fresh(daemon_factory, pg, chat):
    d = start(daemon_factory, chat)
    with connect(d, chat) as c:
        cached(d, chat, lambda: history(c, 1))
        c.execute("UPDATE messages SET body = 'edited through the pool' WHERE id = "
                  "(SELECT min(id) + 1 FROM messages WHERE conversation_id = 1)")
        wait_until(lambda: history(c, 1)[0][1] == "edited through the pool", what="fresh after a pooled write")
        cached(d, chat, lambda: history(c, 1))
        with pg.connect(chat) as direct:
            direct.execute("UPDATE messages SET body = 'edited directly' WHERE id = "
                           "(SELECT min(id) + 1 FROM messages WHERE conversation_id = 1)")
        wait_until(lambda: history(c, 1)[0][1] == "edited directly", what="fresh after a direct write")


def test_session_pooling_is_answered_from_the_cache_between_transactions(daemon_factory, pg, chat):
    """The client holds its server for the whole session; the cache answers while that
    server is idle, never inside a transaction block, and the session reads its own writes."""
    d = start(daemon_factory, chat, pool_mode="session")
    with connect(d, chat) as c:
        first = cached(d, chat, lambda: history(c, 1))
        edited = first[0][0]
        c.execute("UPDATE messages SET body = 'edited' WHERE id = %s", (edited,))
        assert history(c, 1)[0] == (edited, "edited")  # its own commit, at once
        assert cached(d, chat, lambda: history(c, 1))[0] == (edited, "edited")
        c.execute("BEGIN")
        not_cached(d, chat, lambda: history(c, 1))
        c.execute("COMMIT")
        with connect(d, chat) as other:  # another session shares the entry
            assert cached(d, chat, lambda: history(other, 1))[0] == (edited, "edited")


def test_a_rolled_back_write_keeps_the_entry(daemon_factory, pg, chat):
    d = start(daemon_factory, chat)
    with connect(d, chat) as c:
        before = cached(d, chat, lambda: history(c, 1))
        with pg.connect(chat, autocommit=False) as direct:
            direct.execute("UPDATE messages SET body = 'never' WHERE conversation_id = 1")
            direct.rollback()
        assert cached(d, chat, lambda: history(c, 1)) == before


def test_truncate_alter_and_drop_invalidate(daemon_factory, pg, chat):
    d = start(daemon_factory, chat)
    count = "SELECT count(*) FROM messages WHERE conversation_id = 3"
    with connect(d, chat) as c:
        assert cached(d, chat, lambda: c.execute(count).fetchone()[0]) == 5
        with pg.connect(chat) as direct:
            direct.execute("TRUNCATE messages")
        wait_until(lambda: c.execute(count).fetchone()[0] == 0, what="empty after TRUNCATE")
        profile = "SELECT * FROM profiles WHERE id = 1"
        assert cached(d, chat, lambda: c.execute(profile).fetchone()) == (1, "Ada")
        with pg.connect(chat) as direct:
            direct.execute("ALTER TABLE profiles ADD COLUMN bio text DEFAULT 'new column'")
        wait_until(lambda: c.execute(profile).fetchone() == (1, "Ada", "new column"), what="new shape after ALTER")
        cached(d, chat, lambda: c.execute(profile).fetchone())
        with pg.connect(chat) as direct:
            direct.execute("DROP TABLE profiles")
        wait_until(lambda: _fails(c, profile), what="an error after DROP, not a cached row")


def _fails(c, sql):
    try:
        c.execute(sql)
        return False
    except psycopg.errors.UndefinedTable:
        return True


def test_row_tags_spare_other_conversations_and_other_reads_fall_back_to_the_table(daemon_factory, pg, chat):
    d = start(daemon_factory, chat, cache=PATIENT_REDIS)  # it counts hits and misses exactly
    both = "SELECT count(*) FROM messages WHERE conversation_id IN (1, 2)"
    with connect(d, chat) as c:
        cached(d, chat, lambda: history(c, 1))
        cached(d, chat, lambda: history(c, 2))
        assert cached(d, chat, lambda: c.execute(both).fetchone()[0]) == 10
        with pg.connect(chat) as direct:
            direct.execute("INSERT INTO messages (conversation_id, body) VALUES (3, 'new in 3')")
        # The IN list cannot be tagged by row: the table tag covers it, and moves.
        wait_until(lambda: cache_row(d, chat)["invalidations"] > 0, what="the invalidation applied")
        hits = cache_row(d, chat)["hits"]
        history(c, 1)
        history(c, 2)
        assert cache_row(d, chat)["hits"] == hits + 2  # conversations 1 and 2 stayed cached
        misses = cache_row(d, chat)["misses"]
        assert c.execute(both).fetchone()[0] == 10
        assert cache_row(d, chat)["misses"] == misses + 1
        with pg.connect(chat) as direct:  # moving a message between conversations: both go
            direct.execute("UPDATE messages SET conversation_id = 2 WHERE id = "
                           "(SELECT min(id) FROM messages WHERE conversation_id = 1)")
        wait_until(lambda: len(c.execute("SELECT * FROM messages WHERE conversation_id = 2").fetchall()) == 6,
                   what="conversation 2 fresh")
        assert len(c.execute("SELECT * FROM messages WHERE conversation_id = 1").fetchall()) == 4


def test_what_may_not_be_cached_never_is(daemon_factory, pg, chat):
    d = start(daemon_factory, chat)
    with pg.connect(chat) as direct:
        direct.execute("CREATE TABLE plain (x int); INSERT INTO plain VALUES (1)")
    with connect(d, chat) as c:
        cached(d, chat, lambda: history(c, 1))  # the policies are loaded
        with c.transaction():
            not_cached(d, chat, lambda: history(c, 1))
        not_cached(d, chat, lambda: c.execute("SELECT random() FROM profiles").fetchall())
        not_cached(d, chat, lambda: c.execute("SELECT now(), name FROM profiles").fetchall())
        with c.transaction():
            not_cached(d, chat, lambda: c.execute("SELECT * FROM profiles FOR UPDATE").fetchall())
        not_cached(d, chat, lambda: c.execute("SELECT * FROM profiles FOR SHARE").fetchall())
        not_cached(d, chat, lambda: c.execute("SELECT * FROM plain").fetchall())
        not_cached(d, chat, lambda: c.execute("SELECT * FROM profiles JOIN plain ON x = id").fetchall())
        not_cached(d, chat, lambda: c.execute("/* pgcohere:nocache */ SELECT * FROM profiles").fetchall())
        not_cached(d, chat, lambda: c.execute("SELECT * FROM pg_class WHERE relname = 'profiles'").fetchall())
        not_cached(d, chat, lambda: c.execute(
            "WITH x AS (UPDATE profiles SET name = name RETURNING *) SELECT * FROM x").fetchall())


def login_with(port, db, **params):
    """A raw protocol session whose startup packet carries `params` (search_path, ...)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(startup_packet("postgres", db, **params))
    msgs = read_messages(sock)
    assert msgs and msgs[-1][0] == b"Z", msgs
    return sock


def rows(msgs):
    return [body for t, body in msgs if t == b"D"]


def test_two_search_paths_never_share_an_entry(daemon_factory, pg, new_db):
    with pg.connect(new_db) as c:
        c.execute("CREATE SCHEMA a; CREATE SCHEMA b;"
                  "CREATE TABLE a.items (v text); CREATE TABLE b.items (v text);"
                  "INSERT INTO a.items VALUES ('from a'); INSERT INTO b.items VALUES ('from b');"
                  "SELECT pgcohere.cache_table('a.items'); SELECT pgcohere.cache_table('b.items');")
    # search_path reaches the pooler as a startup parameter it tracks.
    d = start(daemon_factory, new_db, track_extra_parameters="search_path")
    sa, sb = login_with(d.port, new_db, search_path="a"), login_with(d.port, new_db, search_path="b")
    try:
        q = "SELECT v FROM items"
        assert b"from a" in rows(cached(d, new_db, lambda: simple_query(sa, q)))[0]
        assert b"from b" in rows(simple_query(sb, q))[0]
        assert b"from b" in rows(cached(d, new_db, lambda: simple_query(sb, q)))[0]
        assert b"from a" in rows(simple_query(sa, q))[0]
    finally:
        sa.close()
        sb.close()


@pytest.mark.parametrize("change", ["SET search_path = s2, public",
                                    "SELECT set_config('search_path', 's2, public', false)"])
def test_a_session_that_changes_its_search_path_is_answered_by_postgresql_from_then_on(
        daemon_factory, pg, chat, change):
    """Transaction pooling: the SET lands on a server connection, and PostgreSQL 15 does not
    report search_path, so the key would still hold the old one. One server connection makes
    PostgreSQL's own answer after the change predictable."""
    with pg.connect(chat) as c:
        c.execute("CREATE SCHEMA s2; CREATE TABLE s2.messages (LIKE public.messages INCLUDING ALL); "
                  "INSERT INTO s2.messages VALUES (100, 1, 's2 a'), (101, 1, 's2 b'), (102, 1, 's2 c')")
    d = start(daemon_factory, chat, default_pool_size=1)
    q = "SELECT id, body FROM messages WHERE conversation_id = 1 ORDER BY id LIMIT 2"
    with connect(d, chat) as c:
        public_rows = cached(d, chat, lambda: c.execute(q).fetchall())
        assert [body for _, body in public_rows] == ["message 1/1", "message 1/2"]
        c.execute(change)
        assert not_cached(d, chat, lambda: c.execute(q).fetchall()) == [(100, "s2 a"), (101, "s2 b")]
    with connect(d, chat) as other:  # another client's key is unchanged
        c2 = cached(d, chat, lambda: other.execute("SELECT name FROM profiles WHERE id = 1").fetchone())
        assert c2 == ("Ada",)


def test_a_fill_that_raced_a_commit_is_never_served(daemon_factory, pg, chat, redis_srv):
    """The stale-set race, forced: the read runs in PostgreSQL, its answer is held back,
    a write commits and its invalidation is applied, then the old answer arrives."""
    relay = Relay(pg.port)
    d = cache_via(daemon_factory, chat, relay, pg, log_connections=0)
    q = "SELECT name FROM profiles WHERE id = 2"
    try:
        with connect(d, chat) as c:
            cached(d, chat, lambda: c.execute("SELECT name FROM profiles WHERE id = 1").fetchone())  # policies loaded
            assert c.execute(q).fetchone() == ("Grace",)  # a miss, stored
            console(d, f"CACHE DELETE TABLE profiles")  # start over: the next read misses
            relay.hold_replies(q)
            result = {}
            reader = threading.Thread(target=lambda: result.update(row=c.execute(q).fetchone()))
            reader.start()
            wait_until(lambda: relay.sent(q) >= 2, what="the read sent to PostgreSQL")
            before = cache_row(d, chat)["invalidations"]
            with pg.connect(chat) as direct:
                direct.execute("UPDATE profiles SET name = 'Grace Hopper' WHERE id = 2")
            wait_until(lambda: cache_row(d, chat)["invalidations"] > before, what="the invalidation applied")
            relay.release_replies()
            reader.join(10)
            assert result["row"] == ("Grace",)  # the read itself saw its own snapshot
            wait_until(lambda: cache_row(d, chat)["stale_refused"] >= 1, what="the stale fill refused")
            for _ in range(3):
                assert c.execute(q).fetchone() == ("Grace Hopper",)
    finally:
        relay.close()


def test_identical_misses_run_one_query(daemon_factory, pg, chat):
    relay = Relay(pg.port)
    d = cache_via(daemon_factory, chat, relay, pg, log_connections=0, default_pool_size=10)
    q = "SELECT body FROM messages WHERE conversation_id = 3 ORDER BY id"
    try:
        conns = [connect(d, chat) for _ in range(6)]
        cached(d, chat, lambda: conns[0].execute("SELECT name FROM profiles WHERE id = 1").fetchone())
        relay.hold_replies(q)
        results = [None] * 6
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, conns[i].execute(q).fetchall()))
                   for i in range(6)]
        threads[0].start()
        wait_until(lambda: relay.sent(q) >= 1, what="the first miss sent")
        for t in threads[1:]:
            t.start()
        wait_until(lambda: cache_row(d, chat)["single_flight_hits"] + 0 >= 0 and
                   _waits(d, chat) >= 5, what="five followers waiting")
        relay.release_replies()
        for t in threads:
            t.join(10)
        assert all(r == results[0] and len(r) == 5 for r in results)
        assert relay.sent(q) == 1
        assert cache_row(d, chat)["single_flight_hits"] == 5
    finally:
        relay.close()
        for c in conns:
            c.close()


def test_identical_misses_in_two_daemons_run_one_query(daemon_factory, pg, chat):
    """so_reuseport deployments run several daemons on one Redis: a miss whose fill another
    daemon leads (it holds the entry's lease in Redis) waits for that entry instead of
    querying PostgreSQL too; and when that fill is not stored, it asks PostgreSQL itself."""
    relay_a, relay_b = Relay(pg.port), Relay(pg.port)
    # Waits far longer than the test: a wait that ends early would hide a lease kept too long.
    patient = {"single_flight_wait": 60}
    a = cache_via(daemon_factory, chat, relay_a, pg, cache=patient, log_connections=0)
    b = cache_via(daemon_factory, chat, relay_b, pg, cache=patient, log_connections=0)
    q = "SELECT body FROM messages WHERE conversation_id = 2 ORDER BY id"
    try:
        with connect(a, chat) as ca, connect(b, chat) as cb:
            for d, c in ((a, ca), (b, cb)):  # both daemons have read the policies
                cached(d, chat, lambda c=c: c.execute("SELECT name FROM profiles WHERE id = 1").fetchone())
            results = {}

            def read_in_both(query, name, waits):
                """Daemon a reads (its reply held in relay_a), then daemon b, until b waits for a's fill."""
                relay_a.hold_replies(query)
                threads = [threading.Thread(target=lambda: results.__setitem__(name + "a", ca.execute(query).fetchall()))]
                threads[0].start()
                wait_until(lambda: relay_a.sent(query) >= 1, what="daemon a's query sent")
                threads.append(threading.Thread(target=lambda: results.__setitem__(name + "b", cb.execute(query).fetchall())))
                threads[1].start()
                wait_until(lambda: _waits(b, chat) >= waits, what="daemon b waiting for daemon a's fill")
                return threads

            def release(threads):
                relay_a.release_replies()
                for t in threads:
                    t.join(10)

            release(read_in_both(q, "1", 1))
            assert results["1a"] == results["1b"] and len(results["1a"]) == 5
            assert relay_b.sent(q) == 0  # daemon b never asked PostgreSQL
            assert cache_row(b, chat)["single_flight_hits"] == 1

            # A fill that is not stored (a write moved the tag while the reply was held)
            # gives the lease up: the waiting daemon then leads and asks PostgreSQL itself.
            q2 = "SELECT body FROM messages WHERE conversation_id = 3 ORDER BY id"
            threads = read_in_both(q2, "2", 2)
            before = cache_row(a, chat)["stale_refused"]
            stores_b = cache_row(b, chat)["stores"]

            def invalidations():  # whichever daemon leads the purges applies it
                return cache_row(a, chat)["invalidations"] + cache_row(b, chat)["invalidations"]
            invalidated = invalidations()
            with pg.connect(chat) as direct:
                direct.execute("INSERT INTO messages (conversation_id, body) VALUES (3, 'late')")
            wait_until(lambda: invalidations() > invalidated, what="the insert's invalidation")
            release(threads)
            wait_until(lambda: cache_row(a, chat)["stale_refused"] > before, what="daemon a's fill refused")
            assert len(results["2a"]) == 5  # its snapshot predates the insert
            assert len(results["2b"]) == 6 and relay_b.sent(q2) == 1
            assert cache_row(b, chat)["stores"] == stores_b + 1  # daemon b led the fill once a gave up
    finally:
        relay_a.close()
        relay_b.close()


def test_followers_that_waited_before_the_query_was_sent_share_a_reply_that_was_not_stored(
        daemon_factory, pg, chat):
    """Single flight under a write: the leader's fill is refused (a commit moved the tag
    while its reply was held), yet a follower that was waiting before the leader's query
    went to PostgreSQL takes that reply: PostgreSQL's snapshot is younger than its request.
    A follower that came after the query was sent goes to PostgreSQL itself."""
    relay = Relay(pg.port)
    # Every read must reach the cache: a lookup that outlasts redis_timeout (20 ms by
    # default; a sanitizer build on a busy machine does) falls through to PostgreSQL and
    # never waits as a follower. What this test is about does not depend on that bound.
    d = cache_via(daemon_factory, chat, relay, pg, cache=PATIENT_REDIS, log_connections=0, default_pool_size=1)
    q = "SELECT name FROM profiles WHERE id = 2"
    conns = [connect(d, chat) for _ in range(4)]
    holder, leader, early, late = conns
    results = {}

    def read(name, c):
        t = threading.Thread(target=lambda: results.__setitem__(name, c.execute(q).fetchone()))
        t.start()
        return t

    try:
        cached(d, chat, lambda: holder.execute("SELECT name FROM profiles WHERE id = 1").fetchone())
        holder.execute("BEGIN")
        holder.execute("UPDATE profiles SET name = 'Grace Hopper' WHERE id = 2")  # holds the one server
        relay.hold_replies(q)
        threads = [read("leader", leader)]
        wait_until(lambda: _metric(d, "pgcohere_cache_misses_total", chat) >= 1, what="the leader's miss")
        threads.append(read("early", early))
        wait_until(lambda: _waits(d, chat) >= 1, what="a follower waiting before the query is sent")
        before = cache_row(d, chat)["invalidations"]
        holder.execute("COMMIT")  # the server goes to the leader, whose query sees this write
        wait_until(lambda: relay.sent(q) >= 1, what="the leader's query sent")
        threads.append(read("late", late))
        wait_until(lambda: _waits(d, chat) >= 2, what="a follower waiting after the query was sent")
        wait_until(lambda: cache_row(d, chat)["invalidations"] > before, what="the commit's invalidation applied")
        relay.release_replies()
        for t in threads:
            t.join(10)
        assert results == {"leader": ("Grace Hopper",), "early": ("Grace Hopper",), "late": ("Grace Hopper",)}
        row = cache_row(d, chat)
        assert row["stale_refused"] >= 1
        assert row["single_flight_hits"] == 1
        assert relay.sent(q) == 2  # the leader's query and the late follower's, not the early one's
    finally:
        relay.close()
        for c in conns:
            c.close()


def _waits(d, db):
    return _metric(d, "pgcohere_cache_single_flight_waits_total", db)


@pytest.mark.parametrize("fault", ["killed", "stopped"])
def test_redis_killed_or_stopped_and_back_costs_clients_nothing(daemon_factory, pg, chat, workdir, fault):
    import signal
    from harness.servers import RedisServer
    redis = RedisServer(os.path.join(workdir, f"redis-cache-{fault}")).start()
    d = daemon_factory(databases=[chat], redis_url=redis.url,
                       extra_ini=pooler_ini(pool_mode="transaction", log_connections=0) + CACHE_INI)
    errors = []
    stop = threading.Event()

    def reader():
        with connect(d, chat) as c:
            while not stop.is_set():
                try:
                    assert len(history(c, 1)) == 3
                except Exception as e:  # noqa: BLE001 - every failure is what this test counts
                    errors.append(repr(e))

    try:
        with connect(d, chat) as c:
            cached(d, chat, lambda: history(c, 1))
        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        if fault == "killed":
            redis.kill()  # SIGKILL, mid-run
        else:
            redis.proc.send_signal(signal.SIGSTOP)  # alive but silent: every operation times out
        wait_until(lambda: cache_row(d, chat)["health"] == "redis down", what="the breaker open")
        stopped_at = cache_row(d, chat)["hits"]
        if fault == "killed":
            redis = RedisServer(redis.dir, port=redis.port).start()
        else:
            redis.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: cache_row(d, chat)["hits"] > stopped_at + 10, timeout=15, what="hits again")
        stop.set()
        for t in threads:
            t.join(10)
        assert errors == []
    finally:
        stop.set()
        redis.stop()


@pytest.mark.parametrize("switch", ["config", "environment", "console", "session"])
def test_every_bypass_switch_sends_reads_to_postgresql(daemon_factory, pg, chat, switch):
    cache = {"bypass": 1} if switch == "config" else {}
    d = start(daemon_factory, chat, cache=cache) if switch != "environment" else None
    if switch == "environment":
        os.environ["PGCOHERE_CACHE_BYPASS"] = "true"
        try:
            d = start(daemon_factory, chat)
        finally:
            del os.environ["PGCOHERE_CACHE_BYPASS"]
    with connect(d, chat) as c:
        if switch in ("config", "environment"):
            wait_until(lambda: cache_row(d, chat)["health"] == "bypassed", what="bypassed")
            wait_until(lambda: len(console(d, "SHOW CACHE RULES")) == 2, what="the policies loaded")
            for _ in range(3):
                history(c, 1)
            assert cache_row(d, chat)["hits"] == 0
            assert cache_row(d, chat)["bypassed"] >= 3
            return
        cached(d, chat, lambda: history(c, 1))
        if switch == "console":
            console(d, "SET cache_bypass = 1")
        else:
            c.execute("SET pgcohere.cache_bypass = on")
        not_cached(d, chat, lambda: history(c, 1))
        if switch == "console":
            console(d, "SET cache_bypass = 0")
        else:
            c.execute("RESET pgcohere.cache_bypass")
        cached(d, chat, lambda: history(c, 1))


def test_a_result_larger_than_max_entry_bytes_is_not_stored(daemon_factory, pg, chat):
    # Each of the three reads must lead a fill (a lookup past redis_timeout would skip the
    # cache: see PATIENT_REDIS).
    d = start(daemon_factory, chat, cache={"max_entry_bytes": 2000, **PATIENT_REDIS})
    with pg.connect(chat) as direct:
        direct.execute("INSERT INTO messages (conversation_id, body) SELECT 9, repeat('x', 100) "
                       "FROM generate_series(1, 50)")
    with connect(d, chat) as c:
        cached(d, chat, lambda: history(c, 1))
        before = cache_row(d, chat)
        big = "SELECT body FROM messages WHERE conversation_id = 9"
        not_cached(d, chat, lambda: c.execute(big).fetchall())
        after = cache_row(d, chat)
        assert after["not_stored"] - before["not_stored"] == 3
        assert after["stores"] == before["stores"]


def test_roles_under_row_level_security_never_share_an_entry(daemon_factory, pg, new_db):
    with pg.connect(new_db) as c:
        c.execute("CREATE TABLE notes (owner text, body text);"
                  "INSERT INTO notes VALUES ('alice', 'alice note'), ('bob', 'bob note');"
                  "ALTER TABLE notes ENABLE ROW LEVEL SECURITY;"
                  "CREATE POLICY mine ON notes USING (owner = current_user);"
                  "CREATE TABLE shared (v text); INSERT INTO shared VALUES ('shared');"
                  "SELECT pgcohere.cache_table('shared'); SELECT pgcohere.cache_table('notes');")
        for role in ("alice", "bob"):
            c.execute(f"DO $$BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN END$$;"
                      f"GRANT SELECT ON notes, shared TO {role}")
    # Each client's own role on the server: the [databases] entry forces no user.
    # PATIENT_REDIS: it counts misses exactly, and a lookup past the default 20 ms counts as a
    # Redis error instead (the likely cause of one CI failure here, bob's miss not counted).
    d = start(daemon_factory, new_db, cache=PATIENT_REDIS, start_daemon=False)
    with open(d.config_path) as f:
        text = f.read()
    with open(d.config_path, "w") as f:
        f.write(text.replace(f"dbname={new_db} user=postgres", f"dbname={new_db}"))
    os.environ["PGUSER"] = "postgres"  # the daemon's own LISTEN and catalog connections
    try:
        d.start()
    finally:
        del os.environ["PGUSER"]
    with psycopg.connect(dsn(d, new_db, user="alice"), autocommit=True, prepare_threshold=None) as a, \
            psycopg.connect(dsn(d, new_db, user="bob"), autocommit=True, prepare_threshold=None) as b:
        cached(d, new_db, lambda: a.execute("SELECT v FROM shared").fetchall())
        # a table under row-level security is never cached, even with a policy
        assert not_cached(d, new_db, lambda: a.execute("SELECT body FROM notes").fetchall()) == [("alice note",)]
        assert not_cached(d, new_db, lambda: b.execute("SELECT body FROM notes").fetchall()) == [("bob note",)]
        # the role is part of every key: bob's first read of `shared` is his own miss
        before = cache_row(d, new_db)
        assert b.execute("SELECT v FROM shared").fetchall() == [("shared",)]
        after = cache_row(d, new_db)
        assert (after["hits"], after["misses"]) == (before["hits"], before["misses"] + 1)


HERE = os.path.dirname(os.path.abspath(__file__))
HISTORY_SQL = "SELECT id, body FROM messages WHERE conversation_id = $1 ORDER BY id LIMIT 3 OFFSET 1"


def test_psql_gets_hits_identical_to_postgresql(daemon_factory, pg, chat):
    import subprocess
    d = start(daemon_factory, chat)
    sql = "SELECT id, body FROM messages WHERE conversation_id = 1 ORDER BY id"

    def psql(port):
        return subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", chat,
                               "-c", sql], capture_output=True, text=True, check=True).stdout
    assert cached(d, chat, lambda: psql(d.port)) == psql(pg.port)


@pytest.mark.parametrize("binary", [False, True])
def test_psycopg_text_and_binary_hits_equal_postgresql(daemon_factory, pg, chat, binary):
    d = start(daemon_factory, chat)
    q = "SELECT id, body, conversation_id FROM messages WHERE conversation_id = %s ORDER BY id"
    with pg.connect(chat) as direct, connect(d, chat) as c:
        want = direct.execute(q, (2,), binary=binary).fetchall()
        assert cached(d, chat, lambda: c.execute(q, (2,), binary=binary).fetchall()) == want


def test_asyncpg_prepared_statements_get_hits(daemon_factory, pg, chat):
    asyncpg = pytest.importorskip("asyncpg")
    import asyncio
    d = start(daemon_factory, chat)

    async def fetch(port, times):
        # One connection, as applications keep them: asyncpg prepares a statement with
        # Parse/Describe/Flush on its first use; later runs are Bind/Execute/Sync.
        c = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database=chat)
        try:
            return [[tuple(r) for r in await c.fetch(HISTORY_SQL, 3)] for _ in range(times)]
        finally:
            await c.close()

    want = asyncio.run(fetch(pg.port, 1))[0]

    def attempt():
        before = cache_row(d, chat)["hits"]
        got = asyncio.run(fetch(d.port, 4))
        assert all(g == want for g in got)
        return cache_row(d, chat)["hits"] >= before + 2  # runs 3 and 4 at least
    wait_until(attempt, what="asyncpg hits")


def test_asyncpg_first_run_of_a_statement_is_answered_from_the_cache(daemon_factory, pg, chat):
    """asyncpg prepares a statement with Parse/Describe/Flush, which holds a server, then
    sends Bind/Execute/Sync: a new connection's first and only run is a hit too."""
    pytest.importorskip("asyncpg")
    import asyncio
    d = start(daemon_factory, chat)

    async def one_fetch(port):
        import asyncpg
        c = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database=chat)
        try:
            return [tuple(r) for r in await c.fetch(HISTORY_SQL, 2)]
        finally:
            await c.close()

    want = asyncio.run(one_fetch(pg.port))
    assert cached(d, chat, lambda: asyncio.run(one_fetch(d.port))) == want
    with connect(d, chat) as c:  # the server the first run held went back to the pool
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_session_pooling_answers_named_statements_from_the_cache(daemon_factory, pg, chat):
    """psycopg (prepare_threshold=0: every query a named statement) and asyncpg (named
    statements, Parse/Describe/Flush then Bind/Execute/Sync) in session pooling."""
    asyncpg = pytest.importorskip("asyncpg")
    import asyncio
    d = start(daemon_factory, chat, pool_mode="session")
    with psycopg.connect(dsn(pg, chat), autocommit=True) as direct:
        want = history(direct, 2)
    with connect(d, chat, prepare_threshold=0) as c:
        assert cached(d, chat, lambda: history(c, 2)) == want

    async def fetch(times):
        c = await asyncpg.connect(host="127.0.0.1", port=d.port, user="postgres", database=chat)
        try:
            return [[tuple(r) for r in await c.fetch(HISTORY_SQL, 3)] for _ in range(times)]
        finally:
            await c.close()

    want = [[tuple(r) for r in rows] for rows in asyncio.run(_direct_fetch(pg, chat, HISTORY_SQL, 3))]
    assert cached(d, chat, lambda: asyncio.run(fetch(3))) == want * 3


async def _direct_fetch(pg, db, sql, *args):
    import asyncpg
    c = await asyncpg.connect(host="127.0.0.1", port=pg.port, user="postgres", database=db)
    try:
        return [await c.fetch(sql, *args)]
    finally:
        await c.close()


def _parse(name, sql):
    return message(b"P", name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!h", 0))


def _run_named(sock, name):
    """Bind/Execute/Sync of a named statement; the messages answered."""
    bind = b"\0" + name.encode() + b"\0" + struct.pack("!hhh", 0, 0, 0)
    sock.sendall(message(b"B", bind) + message(b"E", b"\0" + struct.pack("!i", 0)) + message(b"S"))
    return read_messages(sock)


def _send_sync(sock, *messages):
    sock.sendall(b"".join(messages) + message(b"S"))
    return read_messages(sock)


def _data_rows(messages):
    return [body for kind, body in messages if kind == b"D"]


def _error_code(messages):
    return next((error_fields(body).get("C") for kind, body in messages if kind == b"E"), None)


def test_session_pooling_never_answers_a_name_the_server_does_not_hold(daemon_factory, pg, chat):
    """A named statement is the server's in session pooling. A Parse the server refused
    (the name is taken) leaves the old text under the name, and a Close removes it: the
    cache must answer neither with the entry of the text the client last sent."""
    d = start(daemon_factory, chat, pool_mode="session")
    conv1 = "SELECT count(*) FROM messages WHERE conversation_id = 1"
    conv2 = "SELECT count(*) FROM messages WHERE conversation_id IN (2, 3)"
    # Another session stores conv1's entry for a named statement's Bind/Execute/Sync.
    warm, _ = raw_login(d.port, chat)
    _send_sync(warm, _parse("w", conv1))
    conv1_rows = cached(d, chat, lambda: _data_rows(_run_named(warm, "w")))

    s, _ = raw_login(d.port, chat)
    assert _error_code(_send_sync(s, _parse("s1", conv2))) is None
    assert _error_code(_send_sync(s, _parse("s1", conv1))) == "42P05"  # prepared statement "s1" already exists
    rows = not_cached(d, chat, lambda: _data_rows(_run_named(s, "s1")))
    assert rows != conv1_rows and rows == [struct.pack("!hi", 1, 2) + b"10"]  # conv2's count: 5 + 5

    # Closed, the name is gone: PostgreSQL says so, not the cache.
    _send_sync(s, _parse("s2", conv1))
    assert cached(d, chat, lambda: _data_rows(_run_named(s, "s2"))) == conv1_rows
    _send_sync(s, message(b"C", b"Ss2\0"))
    before = cache_row(d, chat)["hits"]
    assert _error_code(_run_named(s, "s2")) == "26000"  # prepared statement "s2" does not exist
    assert cache_row(d, chat)["hits"] == before
    s.close()
    warm.close()


def test_node_postgres_gets_hits(daemon_factory, pg, chat):
    import shutil
    import subprocess
    if shutil.which("node") is None:
        pytest.skip("node not installed")
    if not os.path.isdir(os.path.join(HERE, "node", "node_modules", "pg")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=os.path.join(HERE, "node"), check=True,
                       capture_output=True, timeout=300)

    def run(port):
        out = subprocess.run(["node", os.path.join(HERE, "node", "cache_reads.js"), str(port), chat, HISTORY_SQL, "2"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    want = run(pg.port)
    assert len(set(want)) == 1
    d = start(daemon_factory, chat)
    assert cached(d, chat, lambda: run(d.port)) == want


def test_the_console_shows_rules_and_deletes_entries(daemon_factory, pg, chat, redis_srv):
    d = start(daemon_factory, chat)
    r = redis_srv.client()
    with connect(d, chat) as c:
        cached(d, chat, lambda: history(c, 1))
        rules = {row[1]: row for row in console(d, "SHOW CACHE RULES")}
        assert set(rules) == {"public.messages", "public.profiles"}
        assert rules["public.messages"][3] == 60000 and rules["public.messages"][4] == "conversation_id"
        assert rules["public.profiles"][3] is None  # [cache] default_ttl

        def entries():
            return sorted(k.decode() for k in r.scan_iter(f"pgcohere:{{{chat}}}:e:*"))

        stored = len(wait_until(entries, what="an entry stored"))
        assert console(d, "CACHE DELETE TABLE messages") == [(stored,)]
        assert entries() == []
        cached(d, chat, lambda: history(c, 1))
        cached(d, chat, lambda: history(c, 2))
        key = entries()[0]
        assert console(d, f"CACHE DELETE '{key}'") == [(1,)]
        assert key not in entries()
        assert console(d, "CACHE DELETE PATTERN '*'") == [(1,)]
        wait_until(lambda: entries() == [], what="every entry deleted")
        with pytest.raises(psycopg.Error, match="not a cache entry key"):
            console(d, "CACHE DELETE 'user:42'")
        with pytest.raises(psycopg.Error, match="no cache-enabled table"):
            console(d, "CACHE DELETE TABLE nosuch")
        with pytest.raises(psycopg.Error, match="admin access needed"):
            with psycopg.connect(dsn(d, "pgcohere", user="stats"), autocommit=True) as s:
                s.execute("CACHE DELETE PATTERN '*'")


def test_a_console_client_that_deleted_by_pattern_is_freed_when_it_leaves(daemon_factory, pg, chat):
    """CACHE DELETE PATTERN's SCAN loop once held itself, and through its reply the console
    connection that asked: every such command leaked a client object that went on counting
    against max_client_conn (SHOW LISTS used_clients), found by LeakSanitizer at exit."""
    d = start(daemon_factory, chat)
    with connect(d, chat) as c:
        cached(d, chat, lambda: history(c, 1))
    deleted = [console(d, "CACHE DELETE PATTERN '*'") for _ in range(3)]
    assert deleted == [[(1,)], [(0,)], [(0,)]]
    wait_until(lambda: int(dict(console(d, "SHOW LISTS"))["used_clients"]) == 1,
               what="only the console client that asks left (SHOW LISTS used_clients)")



def test_a_client_reads_its_own_writes_before_the_invalidation_arrives(daemon_factory, pg, chat):
    """The LISTEN connection's notifications are held in a relay: the purge cannot happen.
    The writer's next read is still fresh (PostgreSQL answers it); another client, with no
    write of its own, may get the entry until the invalidation arrives."""
    relay = Relay(pg.port)
    d = cache_via(daemon_factory, chat, relay, pg, log_connections=0)
    count = "SELECT count(*) FROM messages WHERE conversation_id = %s"
    try:
        with connect(d, chat) as writer, connect(d, chat) as other:
            assert cached(d, chat, lambda: writer.execute(count, (1,)).fetchone()[0]) == 5
            relay.hold_replies("LISTEN")
            writer.execute("INSERT INTO messages (conversation_id, body) VALUES (1, 'mine')")
            published = writer.info.parameter_status("pgcohere.published")
            assert published and len(published.split()) == 2
            pending = cache_row(d, chat)
            for _ in range(3):
                assert writer.execute(count, (1,)).fetchone()[0] == 6
            assert _metric(d, "pgcohere_cache_own_writes_pending_total", chat) >= 3
            assert cache_row(d, chat)["hits"] == pending["hits"]
            assert other.execute(count, (1,)).fetchone()[0] == 5  # the entry is still there
            relay.release_replies()
            wait_until(lambda: other.execute(count, (1,)).fetchone()[0] == 6, what="the invalidation applied")
            assert cached(d, chat, lambda: writer.execute(count, (1,)).fetchone()[0]) == 6
    finally:
        relay.close()


def _metric(d, name, db):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name) and f'database="{db}"' in line:
                return float(line.split()[-1])
    return 0
