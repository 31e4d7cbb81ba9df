"""LISTEN/NOTIFY for clients in transaction pooling: the daemon answers LISTEN and UNLISTEN
itself, one connection per database listens on the union of the channels, and every
notification reaches each listening client between its transactions (psycopg, asyncpg,
node-postgres), in order per channel, also for 1,000 listening clients."""
import asyncio
import os
import queue
import re
import shutil
import subprocess
import threading
import time
import urllib.request

import asyncpg
import psycopg
import pytest

from pool_helpers import connect, start_pooler

HERE = os.path.dirname(os.path.abspath(__file__))


def metric(d, name, db):
    with urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(rf'^{name}\{{database="{db}"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


def wait_for(predicate, timeout=10, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def collector(conn):
    """Notifications psycopg hands to its handler, in a queue."""
    got = queue.Queue()
    conn.add_notify_handler(lambda n: got.put((n.channel, n.payload)))
    return got


def poll(conn, q, n=1, timeout=10):
    """Runs SELECT 1 on `conn` (psycopg reads notifications only while it works) until `q`
    holds `n` notifications."""
    wait_for(lambda: conn.execute("SELECT 1") is not None and q.qsize() >= n, timeout, f"{n} notification(s)")


def drain(q):
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


def test_psycopg_notifies_gets_a_notification_sent_through_the_pool(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=1)
    with connect(d, new_db) as listener, connect(d, new_db) as sender:
        listener.execute("LISTEN orders")
        sender.execute("NOTIFY orders, 'first'")
        sender.execute("SELECT pg_notify('orders', 'second')")
        got = []

        def read():
            for n in listener.notifies():
                got.append((n.channel, n.payload))
                if len(got) == 2:
                    break
        th = threading.Thread(target=read, daemon=True)
        th.start()
        th.join(10)
        assert got == [("orders", "first"), ("orders", "second")]


def test_a_pooled_server_connection_never_listens_for_the_next_client(daemon_factory, new_db):
    # One server connection: before this feature the client's LISTEN ran on it, and the
    # next client that used it got the notifications.
    d = start_pooler(daemon_factory, new_db, default_pool_size=1)
    with connect(d, new_db) as listener, connect(d, new_db) as bystander:
        listener.execute("LISTEN orders")
        seen = collector(bystander)
        bystander.execute("NOTIFY orders, 'x'")
        for _ in range(5):
            bystander.execute("SELECT 1")
        time.sleep(0.3)
        bystander.execute("SELECT 1")
        assert drain(seen) == []
        mine = collector(listener)
        poll(listener, mine)
        assert drain(mine) == [("orders", "x")]


def test_a_client_inside_a_transaction_gets_notifications_after_it_ends(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=2)
    with connect(d, new_db) as listener, connect(d, new_db) as sender:
        listener.execute("LISTEN jobs")
        got = collector(listener)
        listener.execute("BEGIN")
        listener.execute("SELECT 1")
        sender.execute("NOTIFY jobs, 'during'")
        time.sleep(0.3)
        listener.execute("SELECT 2")
        assert drain(got) == []  # PostgreSQL too delivers only between transactions
        listener.execute("COMMIT")
        assert drain(got) == [("jobs", "during")]


def test_listen_inside_a_transaction_block_is_answered_with_the_transaction_status(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=2)
    with connect(d, new_db) as listener, connect(d, new_db) as sender:
        listener.execute("BEGIN")
        listener.execute("LISTEN in_tx")
        assert listener.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        listener.execute("COMMIT")
        got = collector(listener)
        sender.execute("NOTIFY in_tx, 'after'")
        poll(listener, got)
        assert drain(got) == [("in_tx", "after")]
        listener.execute("BEGIN")
        with pytest.raises(psycopg.errors.DivisionByZero):
            listener.execute("SELECT 1/0")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            listener.execute("LISTEN other")
        listener.execute("ROLLBACK")


def test_unlisten_and_unlisten_star_stop_delivery(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=2)
    with connect(d, new_db) as listener, connect(d, new_db) as sender:
        listener.execute("LISTEN a")
        listener.execute("LISTEN b")
        listener.execute("LISTEN sync")
        got = collector(listener)
        listener.execute("UNLISTEN a")
        sender.execute("NOTIFY a, '1'")
        sender.execute("NOTIFY b, '2'")
        sender.execute("NOTIFY sync, '3'")
        poll(listener, got, 2)
        assert drain(got) == [("b", "2"), ("sync", "3")]
        listener.execute("UNLISTEN *")
        listener.execute("LISTEN sync")
        sender.execute("NOTIFY b, '4'")
        sender.execute("NOTIFY sync, '5'")
        poll(listener, got)
        assert drain(got) == [("sync", "5")]


def test_listen_with_other_statements_in_one_query_is_refused(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db)
    with connect(d, new_db) as c:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="own query"):
            c.execute("SELECT 1; LISTEN x")
        assert c.execute("SELECT 7").fetchone()[0] == 7


def test_unlisten_mixed_with_other_statements_runs_and_unlistens(daemon_factory, new_db):
    # asyncpg's connection reset sends "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;".
    d = start_pooler(daemon_factory, new_db)
    with connect(d, new_db) as c:
        c.execute("LISTEN x")
        assert metric(d, "pgcohere_listen_clients", new_db) == 1
        c.execute("SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;")
        assert metric(d, "pgcohere_listen_clients", new_db) == 0
        assert c.execute("SELECT 8").fetchone()[0] == 8


def test_nothing_of_a_clients_listens_survives_its_disconnect(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db)
    with connect(d, new_db) as c:
        c.execute("LISTEN gone1")
        c.execute('LISTEN "Gone 2"')
        assert metric(d, "pgcohere_listen_channels", new_db) == 2
        assert metric(d, "pgcohere_listen_clients", new_db) == 1
    wait_for(lambda: metric(d, "pgcohere_listen_channels", new_db) == 0, what="channels released")
    assert metric(d, "pgcohere_listen_clients", new_db) == 0
    assert metric(d, "pgcohere_listen_connected", new_db) == 1


def test_the_listen_connection_comes_back_and_listens_again(daemon_factory, new_db, pg):
    d = start_pooler(daemon_factory, new_db)
    with connect(d, new_db) as listener, connect(d, new_db) as sender:
        listener.execute("LISTEN back")
        with pg.connect(new_db) as admin:
            pids = [r[0] for r in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgcohered listen'").fetchall()]
            assert len(pids) == 1
            admin.execute("SELECT pg_terminate_backend(%s)", (pids[0],))
        got = collector(listener)

        def delivered():
            sender.execute("NOTIFY back, 'again'")
            time.sleep(0.1)
            listener.execute("SELECT 1")
            return not got.empty()
        wait_for(delivered, timeout=15, what="delivery after the LISTEN connection came back")
        assert set(drain(got)) == {("back", "again")}


def test_asyncpg_add_listener_receives_notifications(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=2)

    async def run():
        # statement_cache_size=0 is the documented setting for transaction pooling;
        # the default cache (named statements) is exercised too.
        for cache in (0, 100):
            listener = await asyncpg.connect(host="127.0.0.1", port=d.port, user="postgres", database=new_db,
                                             statement_cache_size=cache)
            sender = await asyncpg.connect(host="127.0.0.1", port=d.port, user="postgres", database=new_db,
                                           statement_cache_size=cache)
            got = asyncio.Queue()

            def on(conn, pid, channel, payload):
                got.put_nowait((channel, payload))
            await listener.add_listener("ev", on)
            await sender.execute("NOTIFY ev, 'one'")
            await sender.execute("SELECT pg_notify('ev', 'two')")
            first = await asyncio.wait_for(got.get(), 10)
            second = await asyncio.wait_for(got.get(), 10)
            assert [first, second] == [("ev", "one"), ("ev", "two")]
            assert await listener.fetchval("SELECT 41 + $1::int", 1) == 42
            assert metric(d, "pgcohere_listen_channels", new_db) == 1
            await listener.remove_listener("ev", on)  # asyncpg's UNLISTEN, in the extended protocol
            assert metric(d, "pgcohere_listen_channels", new_db) == 0
            await sender.execute("NOTIFY ev, 'three'")
            assert await listener.fetchval("SELECT 1") == 1
            await asyncio.sleep(0.2)
            assert got.empty()
            await listener.close()
            await sender.close()

    asyncio.run(run())
    wait_for(lambda: metric(d, "pgcohere_listen_channels", new_db) == 0, what="channels released")


def test_node_postgres_on_notification(daemon_factory, new_db):
    if shutil.which("node") is None:
        pytest.skip("node not installed")
    if not os.path.isdir(os.path.join(HERE, "node", "node_modules", "pg")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=os.path.join(HERE, "node"), check=True,
                       capture_output=True, timeout=300)
    d = start_pooler(daemon_factory, new_db, default_pool_size=2)
    out = subprocess.run(["node", os.path.join(HERE, "node", "listen.js"), str(d.port), new_db],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.strip() == "ok"


def test_notifications_keep_their_order_per_channel(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=4)
    n = 300

    async def run():
        listener = await asyncpg.connect(host="127.0.0.1", port=d.port, user="postgres", database=new_db,
                                         statement_cache_size=0)
        got = {"c1": [], "c2": []}
        done = asyncio.Event()

        def on(conn, pid, channel, payload):
            got[channel].append(int(payload))
            if len(got["c1"]) == n and len(got["c2"]) == n:
                done.set()
        await listener.add_listener("c1", on)
        await listener.add_listener("c2", on)
        senders = [await asyncpg.connect(host="127.0.0.1", port=d.port, user="postgres", database=new_db,
                                         statement_cache_size=0) for _ in range(2)]

        async def send(conn, channel):
            for i in range(n):
                await conn.execute(f"NOTIFY {channel}, '{i}'")
        await asyncio.gather(send(senders[0], "c1"), send(senders[1], "c2"))
        await asyncio.wait_for(done.wait(), 20)
        assert got["c1"] == list(range(n))
        assert got["c2"] == list(range(n))
        for c in senders + [listener]:
            await c.close()

    asyncio.run(run())


def test_a_thousand_listening_clients_each_get_every_notification(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=10, max_client_conn=1200)
    clients, per_client = 1000, 3

    async def run():
        sem = asyncio.Semaphore(100)

        async def one(i):
            async with sem:
                c = await asyncpg.connect(host="127.0.0.1", port=d.port, user="postgres", database=new_db,
                                          statement_cache_size=0)
            got = []
            ready = asyncio.Event()

            def on(conn, pid, channel, payload):
                got.append(payload)
                if len(got) == per_client:
                    ready.set()
            await c.add_listener("fanout", on)
            return c, got, ready

        conns = await asyncio.gather(*(one(i) for i in range(clients)))
        assert metric(d, "pgcohere_listen_clients", new_db) == clients
        sender = await asyncpg.connect(host="127.0.0.1", port=d.port, user="postgres", database=new_db)
        start = time.time()
        for i in range(per_client):
            await sender.execute(f"NOTIFY fanout, 'm{i}'")
        await asyncio.wait_for(asyncio.gather(*(ready.wait() for _, _, ready in conns)), 60)
        took = time.time() - start
        for _, got, _ in conns:
            assert got == [f"m{i}" for i in range(per_client)]
        print(f"{clients} clients x {per_client} notifications delivered in {took:.2f} s")
        await sender.close()
        await asyncio.gather(*(c.close() for c, _, _ in conns))

    asyncio.run(run())
    wait_for(lambda: metric(d, "pgcohere_listen_clients", new_db) == 0, what="clients released")


def test_session_pooling_passes_listen_to_the_clients_own_server_connection(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, pool_mode="session")
    with connect(d, new_db) as listener, connect(d, new_db) as sender:
        listener.execute("LISTEN sess")
        assert listener.execute("SELECT pg_listening_channels()").fetchall() == [("sess",)]
        got = collector(listener)
        sender.execute("NOTIFY sess, 'x'")
        poll(listener, got)
        assert drain(got) == [("sess", "x")]
    assert metric(d, "pgcohere_listen_channels", new_db) == 0


def test_an_unnamed_extended_protocol_listen_is_answered_like_postgres_answers_it(daemon_factory, new_db):
    # What JDBC sends: Parse/Bind/Describe/Execute/Sync of the unnamed statement, one write.
    import struct

    from pool_helpers import message, raw_login, read_messages
    d = start_pooler(daemon_factory, new_db)
    s, _ = raw_login(d.port, new_db)
    batch = (message(b"P", b"\0LISTEN raw_ch\0" + struct.pack("!h", 0))
             + message(b"B", b"\0\0" + struct.pack("!hhh", 0, 0, 0))
             + message(b"D", b"P\0")
             + message(b"E", b"\0" + struct.pack("!i", 0))
             + message(b"S"))
    s.sendall(batch)
    reply = read_messages(s)
    assert [t for t, _ in reply] == [b"1", b"2", b"n", b"C", b"Z"]
    assert reply[3][1] == b"LISTEN\0" and reply[4][1] == b"I"
    with connect(d, new_db) as sender:
        sender.execute("NOTIFY raw_ch, 'jdbc'")
    (t, body), = read_messages(s, until=b"A")
    assert t == b"A" and body[4:] == b"raw_ch\0jdbc\0"
    s.close()


def test_a_client_that_does_not_read_its_notifications_is_disconnected_at_the_bound(daemon_factory, new_db):
    from pool_helpers import raw_login
    d = start_pooler(daemon_factory, new_db)
    s, _ = raw_login(d.port, new_db)
    from pool_helpers import message, read_messages
    s.sendall(message(b"Q", b"LISTEN big\0"))
    assert [t for t, _ in read_messages(s)] == [b"C", b"Z"]
    # The client reads nothing from here on: 21 MB of notifications fill its socket, then
    # its 1 MiB of pending ones.
    with connect(d, new_db) as sender:
        sender.execute("SELECT pg_notify('big', repeat('x', 7000) || i) FROM generate_series(1, 3000) i")
    wait_for(lambda: metric(d, "pgcohere_listen_overflows_total", new_db) == 1, timeout=20, what="overflow")
    wait_for(lambda: metric(d, "pgcohere_listen_clients", new_db) == 0, what="the client's subscriptions dropped")
    with connect(d, new_db) as other:  # everyone else is fine
        assert other.execute("SELECT 1").fetchone()[0] == 1
    s.close()
