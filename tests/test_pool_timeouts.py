"""Timeouts with PgBouncer's names: query_timeout, idle_transaction_timeout,
client_idle_timeout (query_wait_timeout is in test_pool.py)."""
import os
import socket
import time

import psycopg
import pytest

from harness.servers import wait_until
from pool_helpers import connect, start_pooler


def test_query_timeout_cancels_and_closes(daemon_factory, new_db, pg):
    d = start_pooler(daemon_factory, new_db, query_timeout=1)
    with connect(d, new_db) as c:
        start = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match="query_timeout"):
            c.execute("select pg_sleep(30)")
        assert time.monotonic() - start < 20

    def sleeper_gone():
        with pg.connect(new_db) as direct:
            return direct.execute("select count(*) from pg_stat_activity where query like 'select pg_sleep(30)%%'"
                                  " and pid <> pg_backend_pid()").fetchone()[0] == 0
    wait_until(sleeper_gone, timeout=10, what="the timed-out query to stop on the server")
    with connect(d, new_db) as c:
        assert c.execute("select 1").fetchone()[0] == 1


def _pooler_spoke(c):
    """True once the pooler wrote to this idle client (its closing error) or closed it,
    checked without sending anything (which would count as activity)."""
    sock = socket.socket(fileno=os.dup(c.fileno()))
    try:
        sock.setblocking(False)
        try:
            return len(sock.recv(1, socket.MSG_PEEK)) >= 0
        except BlockingIOError:
            return False
    finally:
        sock.close()


def test_idle_transaction_timeout(daemon_factory, new_db, pg):
    d = start_pooler(daemon_factory, new_db, idle_transaction_timeout=1, default_pool_size=1)
    with connect(d, new_db) as c:
        c.execute("begin")
        c.execute("select 1")
        wait_until(lambda: _pooler_spoke(c), timeout=10, what="the idle transaction to be cut")
        with pytest.raises(psycopg.OperationalError, match="idle transaction timeout"):
            c.execute("select 1")
    with connect(d, new_db) as c:  # the only server slot is free again
        assert c.execute("select 2").fetchone()[0] == 2


def test_client_idle_timeout(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, client_idle_timeout=1)
    with connect(d, new_db) as c:
        c.execute("select 1")
        wait_until(lambda: _pooler_spoke(c), timeout=10, what="the idle client to be closed")
        with pytest.raises(psycopg.OperationalError, match="client_idle_timeout"):
            c.execute("select 1")


def test_client_login_timeout_closes_silent_clients_only(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, client_login_timeout=1)
    silent = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    half = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    half.sendall(b"\x00\x00\x00\x50\x00\x03")  # the start of a startup packet, never finished
    with connect(d, new_db) as c:  # logs in at once: the timeout no longer applies
        assert silent.recv(1) == b""  # closed by the janitor
        assert half.recv(1) == b""
        time.sleep(1.5)
        assert c.execute("select 1").fetchone()[0] == 1
    silent.close()
    half.close()
