"""Fail fast: when a pool cannot log in to PostgreSQL (server down, wrong password), its
waiting and new clients get the server's reason at once, not after query_wait_timeout
(pgbouncer#585); no login is retried before server_login_retry, and service resumes at the
first login that works. A queued client that disconnects leaves the queue at once, and a
cancel of a queued client is answered at once (pgbouncer#1314)."""
import os
import socket
import struct
import threading
import time

import psycopg
import pytest

from auth_cluster import make_cluster, start_daemon
from harness.servers import wait_until
from pool_helpers import error_fields, message, raw_login, read_messages

QUERY_WAIT_TIMEOUT = 60  # an error that waited for it would take a minute
FAST = QUERY_WAIT_TIMEOUT / 4


@pytest.fixture(scope="module")
def fpg(workdir):
    pg = make_cluster(os.path.join(workdir, "failfastpg"))
    yield pg
    pg.remove()


def pooler(workdir, fpg, params="dbname=app user=postgres", **settings):
    settings.setdefault("auth_type", "trust")
    settings.setdefault("query_wait_timeout", QUERY_WAIT_TIMEOUT)
    return start_daemon(workdir, fpg, databases={"app": params}, **settings)


def app_dsn(d):
    return f"host=127.0.0.1 port={d.port} dbname=app user=postgres"


def pool_row(d):
    with psycopg.connect(f"host=127.0.0.1 port={d.port} dbname=pgbouncer user=admin", autocommit=True) as c:
        cur = c.execute("SHOW POOLS")
        names = [col.name for col in cur.description]
        for row in cur.fetchall():
            if row[0] == "app":
                return dict(zip(names, row))
    return {}


def clients(d):
    with psycopg.connect(f"host=127.0.0.1 port={d.port} dbname=pgbouncer user=admin", autocommit=True) as c:
        return [r for r in c.execute("SHOW CLIENTS").fetchall() if "app" in r]


def try_query(d):
    """(error text or "ok", seconds taken) for one connect-and-query."""
    start = time.monotonic()
    try:
        with psycopg.connect(app_dsn(d), autocommit=True, connect_timeout=120) as c:
            c.execute("select 1")
        return "ok", time.monotonic() - start
    except psycopg.OperationalError as e:
        return str(e), time.monotonic() - start


def at_once(d, n):
    results = [None] * n

    def run(i):
        results[i] = try_query(d)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(QUERY_WAIT_TIMEOUT * 2)
    return results


def test_clients_of_a_pool_whose_server_is_down_get_its_reason_at_once(workdir, fpg):
    d = pooler(workdir, fpg, server_login_retry=3, default_pool_size=2)
    assert try_query(d)[0] == "ok"
    fpg.stop()
    try:
        # The idle server connection ends with PostgreSQL; then every client needs a login.
        wait_until(lambda: pool_row(d).get("sv_idle") == 0, timeout=10, what="the idle connection to go")
        for text, took in at_once(d, 6):
            assert "server login failed: Connection refused" in text
            assert took < FAST
        attempts = d.log().count("failed: Connection refused")
        assert 1 <= attempts <= 2  # at most one per connection the pool may open
        # Within server_login_retry no login is tried: the reason comes from memory.
        for text, took in at_once(d, 3):
            assert "server login failed: Connection refused" in text
            assert took < FAST
        assert d.log().count("failed: Connection refused") == attempts
    finally:
        fpg.start()
    # Service resumes at the first login that works (after server_login_retry).
    wait_until(lambda: try_query(d)[0] == "ok", timeout=30, interval=0.5, what="service to resume")
    assert all(text == "ok" for text, _ in at_once(d, 4))


def test_a_wrong_server_password_fails_clients_at_once(workdir, fpg):
    d = pooler(workdir, fpg, params="dbname=app user=md5_user password=wrong", server_login_retry=30,
               default_pool_size=1)
    for text, took in at_once(d, 4):
        assert 'server login failed: password authentication failed for user "md5_user"' in text
        assert took < FAST
    assert d.log().count('failed: password authentication failed for user "md5_user"') == 1


@pytest.fixture
def full_pool(workdir, fpg):
    """A pooler with one server connection, held by a client inside a transaction."""
    d = pooler(workdir, fpg, default_pool_size=1)
    holder = psycopg.connect(app_dsn(d))
    holder.execute("select 1")  # BEGIN ... the connection stays linked
    yield d, holder
    holder.close()


def queued_raw_client(d):
    s, msgs = raw_login(d.port, "app")
    pid, key = [struct.unpack("!ii", body) for t, body in msgs if t == b"K"][0]
    s.sendall(message(b"Q", b"select 1\0"))
    wait_until(lambda: pool_row(d).get("cl_waiting") == 1, timeout=10, what="the client to queue")
    return s, pid, key


@pytest.mark.parametrize("goodbye", ["close", "terminate"])
def test_a_queued_client_that_disconnects_leaves_the_queue_at_once(full_pool, goodbye):
    d, holder = full_pool
    s, _, _ = queued_raw_client(d)
    before = len(clients(d))
    if goodbye == "terminate":
        s.sendall(message(b"X"))
    s.close()
    wait_until(lambda: pool_row(d).get("cl_waiting") == 0, timeout=FAST, what="the queue to empty")
    assert len(clients(d)) == before - 1
    holder.commit()
    assert try_query(d)[0] == "ok"


def test_a_cancel_of_a_queued_simple_query_is_answered_at_once(full_pool):
    d, holder = full_pool
    s, pid, key = queued_raw_client(d)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as c:
        c.sendall(struct.pack("!iiii", 16, 80877102, pid, key))
    s.settimeout(FAST)
    reply = read_messages(s)
    assert time.monotonic() - start < FAST
    assert [t for t, _ in reply] == [b"E", b"Z"], reply
    fields = error_fields(reply[0][1])
    assert fields["C"] == "57014" and fields["M"] == "canceling statement due to user request"
    assert pool_row(d).get("cl_waiting") == 0
    # The client stays connected and is served once a connection is free.
    holder.commit()
    s.sendall(message(b"Q", b"select 2\0"))
    rows = read_messages(s)
    assert [t for t, _ in rows] == [b"T", b"D", b"C", b"Z"], rows
    s.close()


def test_a_cancel_of_a_queued_extended_query_skips_the_batch_and_keeps_the_session(full_pool):
    d, holder = full_pool
    waiter = psycopg.connect(app_dsn(d), autocommit=True)
    outcome = {}

    def run():
        try:
            waiter.execute("select %s::int", (1,))  # Parse/Bind/Describe/Execute/Sync
            outcome["result"] = "served"
        except psycopg.Error as e:
            outcome["result"] = e
    t = threading.Thread(target=run)
    t.start()
    wait_until(lambda: pool_row(d).get("cl_waiting") == 1, timeout=10, what="the client to queue")
    start = time.monotonic()
    waiter.cancel()
    t.join(FAST)
    assert not t.is_alive()
    assert time.monotonic() - start < FAST
    assert isinstance(outcome["result"], psycopg.errors.QueryCanceled), outcome
    holder.commit()
    assert waiter.execute("select %s::int", (7,)).fetchone()[0] == 7
    waiter.close()


def test_a_server_that_never_answers_costs_one_server_connect_timeout_not_query_wait_timeout(workdir, fpg):
    # A listener that accepts TCP connections (the kernel's backlog) but never speaks.
    silent = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        port = silent.getsockname()[1]
        d = start_daemon(workdir, fpg, databases={"app": f"dbname=app user=postgres port={port}"},
                         auth_type="trust", query_wait_timeout=QUERY_WAIT_TIMEOUT, server_connect_timeout=1,
                         server_login_retry=30, default_pool_size=1)
        for text, took in at_once(d, 3):
            assert "server login failed: server_connect_timeout" in text
            assert took < FAST
        text, took = try_query(d)  # within server_login_retry: no new attempt, no wait
        assert "server login failed: server_connect_timeout" in text
        assert took < 1
    finally:
        silent.close()
