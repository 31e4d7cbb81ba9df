"""Transaction pooling through pgcohered with real PostgreSQL: isolation of clients,
release only at ReadyForQuery 'I', clients dying mid-transaction, cancel, COPY, big
results, parameters following clients, limits, reload, malformed input."""
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import psycopg
import pytest
from psycopg import errors

from harness.servers import wait_until
from pool_helpers import connect, dsn, error_fields, message, raw_login, read_messages, start_pooler, startup_packet


def test_psql_simple_queries_and_errors(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db)
    out = subprocess.run(["psql", "-X", "-At", "-d", dsn(d, new_db), "-c", "select 40 + 2",
                          "-c", "select 'a' union all select 'b'"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["42", "a", "b"]
    # an error mid-transaction, then ROLLBACK, then the session goes on
    script = "begin;\nselect 1/0;\nrollback;\nselect 'after';\n"
    out = subprocess.run(["psql", "-X", "-At", "-d", dsn(d, new_db)], input=script, capture_output=True,
                         text=True, timeout=30)
    assert "division by zero" in out.stderr
    assert out.stdout.strip().endswith("after")


def test_transaction_holds_its_server_until_commit(daemon_factory, new_db, pg):
    d = start_pooler(daemon_factory, new_db, default_pool_size=1)
    with connect(d, new_db) as a, connect(d, new_db) as b:
        a.execute("create table t(x int)")
        a.execute("begin")
        a.execute("insert into t values (1)")
        pid_a = a.execute("select pg_backend_pid()").fetchone()[0]
        done = threading.Event()
        result = {}

        def other():
            result["count"] = b.execute("select count(*) from t").fetchone()[0]
            result["pid"] = b.execute("select pg_backend_pid()").fetchone()[0]
            done.set()

        th = threading.Thread(target=other)
        th.start()
        # b waits for the only server connection while a's transaction is open
        assert not done.wait(0.5)
        with pg.connect(new_db) as direct:
            states = [r[0] for r in direct.execute(
                "select state from pg_stat_activity where datname = %s and pid <> pg_backend_pid()"
                " and application_name <> 'pgcohered-listen'",
                (new_db,)).fetchall()]
        assert states == ["idle in transaction"]
        a.execute("commit")
        assert done.wait(10)
        th.join()
        assert result == {"count": 1, "pid": pid_a}


def test_client_killed_mid_transaction_leaves_nothing_open(daemon_factory, new_db, pg):
    d = start_pooler(daemon_factory, new_db, default_pool_size=1)
    with pg.connect(new_db) as direct:
        direct.execute("create table t(x int primary key)")
    s, _ = raw_login(d.port, new_db)
    s.sendall(message(b"Q", b"begin; insert into t values (1);\0"))
    read_messages(s)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST, no Terminate

    def no_open_transaction():
        with pg.connect(new_db) as direct:
            return direct.execute(
                "select count(*) from pg_stat_activity where datname = %s and state like 'idle in transaction%%'",
                (new_db,)).fetchone()[0] == 0
    wait_until(no_open_transaction, timeout=10, what="the abandoned transaction to end")
    with connect(d, new_db) as c:
        assert c.execute("select count(*) from t").fetchone()[0] == 0
        c.execute("insert into t values (1)")  # no lock left behind


def test_terminate_returns_the_server_to_the_pool(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=1, query_wait_timeout=5)
    pids = set()
    for _ in range(20):
        with connect(d, new_db) as c:
            pids.add(c.execute("select pg_backend_pid()").fetchone()[0])
    assert len(pids) == 1


def test_cancel_reaches_the_right_server(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=2)
    with connect(d, new_db) as busy, connect(d, new_db) as victim:
        busy.execute("begin")
        busy.execute("select 1")  # holds a server connection of its own

        def cancel_soon():
            time.sleep(0.5)
            victim.cancel()
        th = threading.Thread(target=cancel_soon)
        th.start()
        start = time.monotonic()
        with pytest.raises(errors.QueryCanceled):
            victim.execute("select pg_sleep(30)")
        th.join()
        assert time.monotonic() - start < 20
        # the other client's transaction is untouched
        assert busy.execute("select 7").fetchone()[0] == 7
        busy.execute("commit")
        assert victim.execute("select 1").fetchone()[0] == 1


def test_copy_in_and_out(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=1)
    with connect(d, new_db) as c:
        c.execute("create table t(a int, b text)")
        with c.cursor() as cur:
            with cur.copy("copy t from stdin") as cp:
                for i in range(10000):
                    cp.write_row((i, f"row {i}"))
        assert c.execute("select count(*), sum(a) from t").fetchone() == (10000, sum(range(10000)))
        rows = 0
        with c.cursor() as cur:
            with cur.copy("copy t to stdout") as cp:
                for _ in cp.rows():
                    rows += 1
        assert rows == 10000
        # a failed COPY (bad data) leaves the connection usable
        with pytest.raises(errors.InvalidTextRepresentation):
            with c.cursor() as cur:
                with cur.copy("copy t from stdin") as cp:
                    cp.write(b"notanumber\tx\n")
        assert c.execute("select count(*) from t").fetchone()[0] == 10000


def _vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def test_100mb_result_is_streamed(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=1)
    proc = subprocess.Popen(["psql", "-X", "-At", "-d", dsn(d, new_db), "-c",
                             "select repeat('x', 1000) from generate_series(1, 100000)"],
                            stdout=subprocess.PIPE)
    total = 0
    while True:
        chunk = proc.stdout.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    assert proc.wait(timeout=120) == 0
    assert total == 100000 * 1001
    # the pooler forwarded it piecewise: its peak memory stays far below the result size
    # (not measurable under AddressSanitizer, whose shadow memory dominates)
    if not os.environ.get("PGCOHERE_SANITIZE"):
        assert _vm_hwm_kb(d.pid) < 60 * 1024


def test_parameters_follow_the_client(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=1)
    with connect(d, new_db) as a, connect(d, new_db) as b:
        default_tz = b.execute("show timezone").fetchone()[0]
        a.execute("set timezone = 'Asia/Tokyo'")
        a.execute("set application_name = 'client-a'")
        # b shares the only server connection, but sees its own settings
        assert b.execute("show timezone").fetchone()[0] == default_tz
        assert b.execute("show application_name").fetchone()[0] != "client-a"
        assert a.execute("show timezone").fetchone()[0] == "Asia/Tokyo"
        assert a.execute("show application_name").fetchone()[0] == "client-a"
        assert a.info.parameter_status("TimeZone") == "Asia/Tokyo"
    with psycopg.connect(dsn(d, new_db, application_name="startup-name"), autocommit=True) as c:
        assert c.execute("show application_name").fetchone()[0] == "startup-name"


def test_query_wait_timeout(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=1, query_wait_timeout=1)
    with connect(d, new_db) as a, connect(d, new_db) as b:
        a.execute("begin")
        a.execute("select 1")
        with pytest.raises(psycopg.OperationalError, match="query_wait_timeout"):
            b.execute("select 1")
        a.execute("commit")
    with connect(d, new_db) as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_unknown_database_and_bad_startup(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db)
    with pytest.raises(psycopg.OperationalError, match="no such database: nope"):
        psycopg.connect(dsn(d, "nope"))
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter"):
        psycopg.connect(dsn(d, new_db, options="'-c work_mem=1MB'"))


def test_oversized_and_malformed_messages_close_only_that_client(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, max_packet_size=100000)
    with connect(d, new_db) as bystander:
        bystander.execute("begin")
        s, _ = raw_login(d.port, new_db)
        s.sendall(b"Q" + struct.pack("!i", 200000) + b"select")
        msgs = read_messages(s, until=b"E")
        assert msgs[-1][0] == b"E"
        assert "max_packet_size" in error_fields(msgs[-1][1])["M"]
        assert s.recv(10) == b""
        s2, _ = raw_login(d.port, new_db)
        s2.sendall(b"Q\x00\x00\x00\x01")  # length below 4
        msgs = read_messages(s2, until=b"E")
        assert msgs[-1][0] == b"E"
        assert s2.recv(10) == b""
        # garbage instead of a startup packet
        s3 = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s3.sendall(b"\xff\xff\xff\xff" * 4)
        assert read_messages(s3, until=b"E")[-1][0] == b"E"
        assert bystander.execute("select 5").fetchone()[0] == 5
        bystander.execute("commit")


def test_ssl_request_is_declined_and_login_goes_on(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db)
    with psycopg.connect(dsn(d, new_db, sslmode="prefer"), autocommit=True) as c:
        assert c.execute("select 1").fetchone()[0] == 1
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn(d, new_db, sslmode="require"))


def test_query_sent_with_the_startup_packet_is_answered(daemon_factory, new_db):
    """With trust auth nothing is asked back, so a client may send its first query in the
    same write as its startup packet; PostgreSQL answers it, and so must the pooler."""
    d = start_pooler(daemon_factory, new_db)
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    try:
        s.sendall(startup_packet("postgres", new_db) + message(b"Q", b"select 41 + 1\0"))
        login = read_messages(s)
        assert login[-1][0] == b"Z", login
        answer = read_messages(s)
        rows = [body for t, body in answer if t == b"D"]
        assert len(rows) == 1 and rows[0].endswith(b"42"), answer
        assert answer[-1] == (b"Z", b"I")
    finally:
        s.close()


def test_reload_changes_pool_size(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=1, query_wait_timeout=30)
    with open(d.config_path) as f:
        text = f.read()
    with open(d.config_path, "w") as f:
        f.write(text.replace("default_pool_size = 1", "default_pool_size = 3"))
    d.kill(signal.SIGHUP)
    wait_until(lambda: "default_pool_size: '1' -> '3'" in d.log(), timeout=10, what="reload logged")
    conns = [connect(d, new_db) for _ in range(3)]
    try:
        pids = set()
        for c in conns:
            c.execute("begin")
            pids.add(c.execute("select pg_backend_pid()").fetchone()[0])
        assert len(pids) == 3  # three transactions at once: the pool grew
        for c in conns:
            c.execute("commit")
    finally:
        for c in conns:
            c.close()


def test_statement_mode_refuses_transactions(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, pool_mode="statement", default_pool_size=1)
    with connect(d, new_db) as c:
        assert c.execute("select 1").fetchone()[0] == 1
        with pytest.raises(psycopg.OperationalError, match="transaction blocks not allowed in statement pooling mode"):
            c.execute("begin")
            c.execute("select 1")
    with connect(d, new_db) as c:
        assert c.execute("select 2").fetchone()[0] == 2


def test_session_mode_keeps_the_server_and_resets_it(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, pool_mode="session", default_pool_size=1)
    with connect(d, new_db) as c:
        c.execute("create temp table scratch(x int)")
        c.execute("insert into scratch values (1)")
        assert c.execute("select count(*) from scratch").fetchone()[0] == 1
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
    with connect(d, new_db) as c:
        assert c.execute("select pg_backend_pid()").fetchone()[0] == pid
        # server_reset_query (DISCARD ALL) dropped the previous client's temp table
        with pytest.raises(errors.UndefinedTable):
            c.execute("select * from scratch")


def test_session_mode_many_first_logins_at_once_all_complete(daemon_factory, new_db):
    # The pool's first logins wait for a server connection to learn its parameters; in
    # session mode that connection must not stay with the client that borrowed it.
    d = start_pooler(daemon_factory, new_db, pool_mode="session", default_pool_size=2)
    socks = [socket.create_connection(("127.0.0.1", d.port), timeout=20) for _ in range(30)]
    try:
        for s in socks:
            s.sendall(startup_packet("postgres", new_db))
        for s in socks:
            msgs = read_messages(s)
            assert msgs and msgs[-1] == (b"Z", b"I"), msgs[-3:]
    finally:
        for s in socks:
            s.close()
    with connect(d, new_db) as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_unreachable_server_fails_the_client_quickly(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, query_wait_timeout=60)
    with open(d.config_path) as f:
        text = f.read()
    # a second [databases] section is merged into the first
    text += "[databases]\nnowhere = host=127.0.0.1 port=1 dbname=nowhere\n"
    with open(d.config_path, "w") as f:
        f.write(text)
    d.kill(signal.SIGHUP)
    wait_until(lambda: "nowhere" in d.log(), timeout=10, what="reload")
    start = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="server login failed"):
        psycopg.connect(dsn(d, "nowhere"))
    assert time.monotonic() - start < 30
    with connect(d, new_db) as c:  # other pools are unaffected
        assert c.execute("select 1").fetchone()[0] == 1


def test_postgres_restart_is_survived(daemon_factory, new_db, pg):
    d = start_pooler(daemon_factory, new_db, default_pool_size=2)
    with connect(d, new_db) as c:
        c.execute("select 1")
    pg.restart()

    def works():
        try:
            with connect(d, new_db) as c:
                return c.execute("select 2").fetchone()[0] == 2
        except psycopg.OperationalError:
            return False  # a connection that died with the restart is reported once
    wait_until(works, timeout=30, what="a working connection after the restart")
