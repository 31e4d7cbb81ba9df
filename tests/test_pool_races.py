"""Races between the pooler's own writers and between a client's cancel and the next
user of its server connection: a timeout's error must not land inside a forwarded
answer, and a late cancel must never hit another client's query."""
import socket
import struct
import threading

import psycopg
import pytest
from psycopg import errors

from harness.servers import wait_until
from pool_helpers import (Relay, connect, dsn, error_fields, message, pooler_via, read_messages, start_pooler,
                          startup_packet)


def _stalled_client(d, db):
    """A logged-in raw client with a tiny receive buffer, so that the pooler's forward of
    a big answer blocks until the client reads."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.connect(("127.0.0.1", d.port))
    s.sendall(startup_packet("postgres", db))
    msgs = read_messages(s)
    assert msgs and msgs[-1][0] == b"Z", msgs
    return s


def _read_to_eof(s):
    data = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            return data
        data += chunk


def _split_messages(data):
    """Whole messages [(type, body)] and the bytes of a cut-off last message."""
    out, pos = [], 0
    while len(data) - pos >= 5:
        t, n = data[pos:pos + 1], struct.unpack("!i", data[pos + 1:pos + 5])[0]
        if n < 4 or len(data) - pos < n + 1:
            break
        out.append((t, data[pos + 5:pos + 1 + n]))
        pos += n + 1
    return out, data[pos:]


def _data_row_value(body):
    (nfields,) = struct.unpack("!h", body[:2])
    (size,) = struct.unpack("!i", body[2:6])
    assert nfields == 1 and size == len(body) - 6, "malformed DataRow"
    return body[6:]


def _wait_query_gone(pg, db, prefix):
    def gone():
        with pg.connect(db) as direct:
            return direct.execute("select count(*) from pg_stat_activity where query like %s"
                                  " and pid <> pg_backend_pid()", (prefix + "%",)).fetchone()[0] == 0
    wait_until(gone, timeout=20, what="the timed-out query to leave the server")


def test_query_timeout_error_follows_a_blocked_forward(daemon_factory, new_db, pg):
    """query_timeout fires while the pooler is stuck forwarding rows to a client that does
    not read: the client later reads whole rows, then the timeout's error, then EOF."""
    d = start_pooler(daemon_factory, new_db, query_timeout=1)
    s = _stalled_client(d, new_db)
    sql = "select repeat('x', 60000) from generate_series(1, 5000) /* stall */"
    s.sendall(message(b"Q", sql.encode() + b"\0"))
    # The forward blocks on our full buffer, the server goes quiet, the janitor fires
    # query_timeout and closes the server connection.
    _wait_query_gone(pg, new_db, "select repeat('x', 60000)")
    msgs, rest = _split_messages(_read_to_eof(s))
    s.close()
    assert rest == b"", f"{len(rest)} bytes of a cut message: the stream was corrupted"
    types = [t for t, _ in msgs]
    assert types[0] == b"T" and types[-1] == b"E", types[:3] + types[-3:]
    assert set(types[1:-1]) == {b"D"}, set(types)
    for _, body in msgs[1:-1]:
        assert _data_row_value(body) == b"x" * 60000
    assert error_fields(msgs[-1][1])["M"] == "query_timeout"


def test_query_timeout_inside_a_streamed_row_cuts_the_stream_cleanly(daemon_factory, new_db, pg):
    """Rows too big to buffer are streamed in pieces; a timeout mid-row cannot append an
    error (it would be read as row data), so the stream just ends: no foreign bytes."""
    d = start_pooler(daemon_factory, new_db, query_timeout=1)
    s = _stalled_client(d, new_db)
    sql = "select repeat('y', 300000) from generate_series(1, 2000) /* stall */"
    s.sendall(message(b"Q", sql.encode() + b"\0"))
    _wait_query_gone(pg, new_db, "select repeat('y', 300000)")
    msgs, rest = _split_messages(_read_to_eof(s))
    s.close()
    types = [t for t, _ in msgs]
    assert types[0] == b"T"
    for t, body in msgs[1:]:
        if t == b"E":  # only allowed as the very last message
            assert (t, body) == msgs[-1] and rest == b""
            assert error_fields(body)["M"] == "query_timeout"
        else:
            assert t == b"D" and _data_row_value(body) == b"y" * 300000
    if rest:  # a prefix of one more DataRow, nothing else
        assert rest[:1] == b"D" and set(rest[11:]) <= {ord("y")}


def _cancel(port, pid, key):
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(struct.pack("!iiii", 16, 80877102, pid, key))
    c.recv(1)  # the pooler closes it once the request is routed
    c.close()


def _key_of(login_msgs):
    body = next(b for t, b in login_msgs if t == b"K")
    return struct.unpack("!ii", body)


def test_late_cancel_never_hits_the_next_client(daemon_factory, new_db, pg):
    """One server connection shared by clients that run short queries and clients that
    cancel theirs right after sending them: a cancel that reaches PostgreSQL after the
    query ended must not cancel whatever the connection runs next."""
    d = start_pooler(daemon_factory, new_db, default_pool_size=1)
    stop = threading.Event()
    victim_errors, cancel_counts, failures = [], [], []

    def victim():
        try:
            with connect(d, new_db) as c:
                while not stop.is_set():
                    try:
                        c.execute("select pg_sleep(0.004)")
                    except errors.QueryCanceled as e:
                        victim_errors.append(str(e))
        except Exception as e:  # noqa: BLE001 (reported below)
            failures.append(repr(e))

    def canceller():
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
            s.sendall(startup_packet("postgres", new_db))
            pid, key = _key_of(read_messages(s))
            cancelled = 0
            for i in range(80):
                # Inside a transaction the connection stays ours, so the pooler forwards the
                # cancel; the query is about as short as a cancel's trip to PostgreSQL, so
                # many cancels arrive after it ended, when the connection serves another client.
                s.sendall(message(b"Q", b"begin\0"))
                read_messages(s)
                s.sendall(message(b"Q", f"select pg_sleep({(i % 7) * 0.0005})\0".encode()))
                _cancel(d.port, pid, key)
                for t, body in read_messages(s):
                    if t == b"E":
                        assert error_fields(body)["C"] == "57014", error_fields(body)
                        cancelled += 1
                # A cancel can also land on our own ROLLBACK: repeat it until the
                # transaction is really over (ReadyForQuery 'I').
                while True:
                    s.sendall(message(b"Q", b"rollback\0"))
                    if read_messages(s)[-1] == (b"Z", b"I"):
                        break
            cancel_counts.append(cancelled)
            s.close()
        except Exception as e:  # noqa: BLE001 (reported below)
            failures.append(repr(e))

    victims = [threading.Thread(target=victim) for _ in range(3)]
    cancellers = [threading.Thread(target=canceller) for _ in range(2)]
    for t in victims + cancellers:
        t.start()
    for t in cancellers:
        t.join(120)
    stop.set()
    for t in victims:
        t.join(30)
    assert not failures, failures
    assert victim_errors == [], f"{len(victim_errors)} queries of other clients were cancelled"
    assert len(cancel_counts) == 2, cancel_counts
    print("cancels that hit their own query:", cancel_counts)

    # The cancelled client itself does get the error, and its connection goes on.
    with connect(d, new_db) as c:
        assert "canceling statement due to user request" in _cancel_a_sleep(pg, new_db, c)
        assert c.execute("select 1").fetchone()[0] == 1


def _server_states(d):
    with psycopg.connect(dsn(d, "pgcohere", user="admin"), autocommit=True) as a:
        cur = a.execute("SHOW SERVERS")
        col = [x.name for x in cur.description].index("state")
        return [r[col] for r in cur.fetchall()]


def _cancel_a_sleep(pg, db, c):
    """Runs pg_sleep(30) on c, cancels it through the pooler, returns the query's error."""
    result = {}

    def run():
        try:
            c.execute("select pg_sleep(30) /* cancel me */")
        except errors.QueryCanceled as e:
            result["error"] = str(e)

    th = threading.Thread(target=run)
    th.start()

    def running():
        with pg.connect(db) as direct:
            return direct.execute("select count(*) from pg_stat_activity where query like"
                                  " 'select pg_sleep(30) /* cancel me */%%'").fetchone()[0] == 1
    wait_until(running, timeout=10, what="the query to run")
    c.cancel()
    th.join(20)
    return result.get("error", "")


@pytest.fixture
def relay(pg):
    r = Relay(pg.port)
    yield r
    r.close()


def test_connection_waits_until_its_cancel_connection_is_closed(daemon_factory, new_db, pg, relay):
    """PostgreSQL has cancelled the query but the cancel connection is still open (held by
    the relay): the server connection stays out of the pool (being_canceled) and the next
    client waits for it; once the cancel connection closes, the next client gets it."""
    d = pooler_via(daemon_factory, new_db, relay.port, pg.port, default_pool_size=1)
    relay.hold_cancels()
    with connect(d, new_db) as a, connect(d, new_db) as b:
        pid = a.execute("select pg_backend_pid()").fetchone()[0]
        assert "canceling statement due to user request" in _cancel_a_sleep(pg, new_db, a)
        wait_until(lambda: _server_states(d) == ["being_canceled"], timeout=10,
                   what="the server connection to wait for its cancel")
        done = threading.Event()
        got = {}

        def other():
            got["pid"] = b.execute("select pg_backend_pid()").fetchone()[0]
            done.set()

        th = threading.Thread(target=other)
        th.start()
        assert not done.wait(0.5)  # the only server connection is not handed out yet
        relay.release_cancels()
        assert done.wait(10)
        th.join()
        assert got["pid"] == pid  # the same connection, reused once its cancel was done
        assert _server_states(d) == ["idle"]


def test_cancel_connection_that_never_closes_retires_the_server(daemon_factory, new_db, pg, relay):
    """No close within server_connect_timeout: whether PostgreSQL applied the cancel is
    unknown, so that server connection is closed instead of reused."""
    d = pooler_via(daemon_factory, new_db, relay.port, pg.port, default_pool_size=1, server_connect_timeout=1)
    relay.hold_cancels()
    with connect(d, new_db) as a, connect(d, new_db) as b:
        pid = a.execute("select pg_backend_pid()").fetchone()[0]
        assert "canceling statement due to user request" in _cancel_a_sleep(pg, new_db, a)
        # b waits while the cancel is unresolved, then gets a fresh connection
        assert b.execute("select pg_backend_pid()").fetchone()[0] != pid
        assert a.execute("select 1").fetchone()[0] == 1
