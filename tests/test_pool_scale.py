"""Scale: 10,000 clients logged in at once share at most 50 server connections, and every
one of them gets its own answer (bounded: about 20,000 sockets on loopback, one query each).
Logged in and idle, a client costs the daemon less than IDLE_CLIENT_BOUND_KB of memory."""
import resource
import selectors
import socket
import struct

import pytest

from harness.servers import SANITIZED, rss_mb
from pool_helpers import message, start_pooler, startup_packet

CLIENTS = 10_000
POOL = 50
# An idle client holds no coroutine and no read buffer (docs/pooler.md): about 1.5 kB here,
# 1.6 kB for PgBouncer 1.18, 5 kB while idle clients kept their coroutine frames. Skipped
# under ASan (harness.servers.SANITIZED).
IDLE_CLIENT_BOUND_KB = 3.0


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))  # root may raise the hard limit
            return
        except (ValueError, OSError):
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need} and cannot be raised")
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def read_until_ready(sel, pending, on_message, deadline_what):
    """Drives every socket in `pending` until it has sent ReadyForQuery; on_message(i, type, body)."""
    bufs = {i: b"" for i in pending}
    while pending:
        events = sel.select(timeout=60)
        assert events, f"no progress while waiting for {deadline_what} ({len(pending)} left)"
        for key, _ in events:
            i = key.data
            chunk = key.fileobj.recv(65536)
            assert chunk, f"client {i} was closed"
            bufs[i] += chunk
            buf = bufs[i]
            while len(buf) >= 5:
                t, n = buf[:1], struct.unpack("!i", buf[1:5])[0]
                if len(buf) < n + 1:
                    break
                on_message(i, t, buf[5:n + 1])
                buf = buf[n + 1:]
                if t == b"Z":
                    pending.discard(i)
                    sel.unregister(key.fileobj)
            bufs[i] = buf


def test_ten_thousand_clients_share_fifty_server_connections(daemon_factory, new_db, pg):
    raise_fd_limit(CLIENTS + 1000)  # ours; the daemon inherits the limit for its own sockets
    d = start_pooler(daemon_factory, new_db, max_client_conn=CLIENTS + 100, default_pool_size=POOL,
                     listen_backlog=4096, query_wait_timeout=300)
    socks = []
    sel = selectors.DefaultSelector()
    rss_before = rss_mb(d.pid)
    try:
        for i in range(CLIENTS):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=60)
            s.sendall(startup_packet("postgres", new_db))
            socks.append(s)
        for i, s in enumerate(socks):
            sel.register(s, selectors.EVENT_READ, i)
        errors = []
        read_until_ready(sel, set(range(CLIENTS)), lambda i, t, b: t == b"E" and errors.append((i, b)), "logins")
        assert not errors, errors[:3]
        per_client_kb = (rss_mb(d.pid) - rss_before) * 1024 / CLIENTS
        assert SANITIZED or per_client_kb < IDLE_CLIENT_BOUND_KB, f"{per_client_kb:.2f} kB of RSS per idle client"

        # Every client asks at once; each must get its own number back.
        for i, s in enumerate(socks):
            s.sendall(message(b"Q", f"select {i}".encode() + b"\0"))
            sel.register(s, selectors.EVENT_READ, i)
        answers = {}

        def on_row(i, t, body):
            if t == b"D":
                n = struct.unpack("!i", body[2:6])[0]
                answers[i] = int(body[6:6 + n])
            assert t != b"E", body

        read_until_ready(sel, set(range(CLIENTS)), on_row, "answers")
        assert answers == {i: i for i in range(CLIENTS)}
    finally:
        sel.close()
        for s in socks:
            s.close()
    # (psycopg waits with select(): only once our 10,000 sockets are closed.) The pooler's
    # server connections stay open, idle, after their clients left.
    with pg.connect(new_db) as c:
        servers = c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = "
                            "'client backend' AND pid <> pg_backend_pid() AND application_name = ''",
                            (new_db,)).fetchone()[0]
    assert 0 < servers <= POOL
