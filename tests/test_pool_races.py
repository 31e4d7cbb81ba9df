"""Races between the pooler's own writers and between a client's cancel and the next
user of its server connection: a timeout's error must not land inside a forwarded
answer, and a late cancel must never hit another client's query."""
import os
import re
import socket
import struct
import threading
import time

import psycopg
import pytest
from psycopg import errors

from harness.servers import REPO, wait_until
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


def _run_in_thread(c, sql):
    """Runs sql on c in a thread; returns (thread, result) where result gets 'ok' or the error."""
    result = {}

    def run():
        try:
            c.execute(sql)
            result["outcome"] = "ok"
        except errors.QueryCanceled as e:
            result["outcome"] = f"cancelled: {e}"

    th = threading.Thread(target=run)
    th.start()
    return th, result


def _running(pg, db, marker):
    with pg.connect(db) as direct:
        return direct.execute("select count(*) from pg_stat_activity where query like %s"
                              " and pid <> pg_backend_pid()", (f"%{marker}%",)).fetchone()[0] == 1


def test_cancel_that_reaches_postgresql_after_its_query_ended_spares_the_next_client(
        daemon_factory, new_db, pg, relay):
    """The race, forced: a's cancel is forwarded while its query runs, but the relay holds
    the CancelRequest until that query has ended on its own and b is waiting for the only
    server connection. The connection is not handed to b while the cancel is in flight
    (being_canceled); when PostgreSQL finally gets the cancel, the backend is idle and
    ignores it, and only then does b's query run: b is never cancelled."""
    d = pooler_via(daemon_factory, new_db, relay.port, pg.port, default_pool_size=1)
    relay.delay_cancel_requests()
    with connect(d, new_db) as a, connect(d, new_db) as b:
        a_thread, a_result = _run_in_thread(a, "select pg_sleep(1) /* a-query */")
        wait_until(lambda: _running(pg, new_db, "a-query"), timeout=10, what="a's query to run")
        a.cancel()  # forwarded (a holds the connection), held in the relay
        wait_until(lambda: relay.cancel_requests == 1, timeout=10, what="the cancel to reach the relay")
        a_thread.join(20)
        assert a_result == {"outcome": "ok"}, a_result  # the cancel came too late for a
        states = _server_states(d)

        b_thread, b_result = _run_in_thread(b, "select pg_sleep(1.5) /* b-query */")
        time.sleep(0.5)
        b_ran_early = _running(pg, new_db, "b-query")
        relay.release_cancel_requests()  # PostgreSQL signals the backend a's query ran on
        b_thread.join(20)
        assert b_result == {"outcome": "ok"}, b_result  # b's query was not cancelled
        # because b waited for the connection until the cancel was done
        assert states == ["being_canceled"] and not b_ran_early, (states, b_ran_early)
        assert _server_states(d) == ["idle"]
        assert b.execute("select 1").fetchone()[0] == 1


def test_cancel_key_of_a_client_without_a_server_connection_cancels_nothing(daemon_factory, new_db, pg):
    """a's transaction is over; b now runs on the only server connection a used. A cancel
    with a's key (late, or forged from a's key) is dropped: it never reaches b's query."""
    d = start_pooler(daemon_factory, new_db, default_pool_size=1)
    with connect(d, new_db) as a, connect(d, new_db) as b:
        a_pid = a.execute("select pg_backend_pid()").fetchone()[0]
        b.execute("begin")
        assert b.execute("select pg_backend_pid()").fetchone()[0] == a_pid  # the same connection
        b_thread, b_result = _run_in_thread(b, "select pg_sleep(1.5) /* b-only */")
        wait_until(lambda: _running(pg, new_db, "b-only"), timeout=10, what="b's query to run")
        a.cancel()
        b_thread.join(20)
        assert b_result == {"outcome": "ok"}, b_result
        b.execute("commit")


def _function_at(text, pos):
    """Name of the ClientConn member function whose definition encloses `pos` (None: a
    function of another class)."""
    defs = list(re.finditer(r"^\S[^\n;]*?\b(\w+)::(\w+)\([^;{]*\{?$", text[:pos], re.M))
    if not defs or defs[-1].group(1) != "ClientConn":
        return None
    return defs[-1].group(2)


def test_every_write_to_a_client_socket_holds_its_write_gate():
    """Two writers on one client socket interleave their bytes (net/write_gate.h). The
    socket is private to ClientConn, and within it only the gated writers write it:
    write_gated(), forward() and flush_notifications() (a pooled client's LISTEN deliveries)
    take the gate around their write, write_last_error() runs only once fail() holds the gate. Any other write (the login, the console, a new path)
    fails this test."""
    src = os.path.join(REPO, "daemon", "src", "pooler")
    with open(os.path.join(src, "client_conn.h")) as f:
        header = f.read()
    assert not re.search(r"\bsocket\(\)\s*\{", header), "ClientConn exposes its socket"
    allowed = {"write_gated", "forward", "write_last_error", "flush_notifications"}
    writes = 0
    for name in sorted(os.listdir(src)):
        if not name.endswith(".cpp"):
            continue
        with open(os.path.join(src, name)) as f:
            text = f.read()
        for m in re.finditer(r"(async_write|async_write_some|write_some|async_send|\.send)\(\s*socket_\b|"
                             r"\bsocket_\.(write_all|write_some|async_write_some|send)\(", text):
            fn = _function_at(text, m.start())
            if fn is None:
                continue  # another class's socket_ (ServerConn's)
            writes += 1
            assert fn in allowed, f"{name}: ClientConn::{fn} writes the client socket outside its write gate"
    assert writes == 4, writes
    text = ""
    for name in ("client_conn.cpp", "client_listen.cpp"):
        with open(os.path.join(src, name)) as f:
            text += f.read()
    for fn in ("write_gated", "forward", "flush_notifications"):
        body = text[text.index(f"ClientConn::{fn}("):]
        body = body[:body.index("\n}\n")]
        write_call = re.search(r"async_write\(|socket_\.write_all\(", body)
        assert write_call, fn
        enter, write, leave = body.index("write_gate_.try_enter()"), write_call.start(), body.index(
            "write_gate_.leave()")
        assert enter < write < leave, fn
    for m in re.finditer(r"write_last_error\(why\)", text):
        before = text[max(0, m.start() - 200):m.start()]
        assert "write_gate_.try_enter()" in before or "write_gate_.async_enter(" in before
