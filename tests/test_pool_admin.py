"""The admin console (pseudo-database pgcohere, alias pgbouncer) through real clients:
every SHOW parsed by psycopg with PgBouncer's columns, PAUSE/RESUME, RELOAD, KILL, access."""
import threading

import psycopg
import pytest

from pool_helpers import connect, dsn, start_pooler

SHOWS = {
    "POOLS": ["database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle", "maxwait", "pool_mode"],
    "STATS": ["database", "total_xact_count", "total_query_count", "avg_xact_count"],
    "SERVERS": ["type", "user", "database", "state", "addr", "port", "remote_pid"],
    "CLIENTS": ["type", "user", "database", "state", "addr", "port"],
    "DATABASES": ["name", "host", "port", "database", "pool_size", "paused"],
    "CONFIG": ["key", "value", "default", "changeable"],
    "LISTS": ["list", "items"],
    "USERS": ["name"],
    "VERSION": ["version"],
}


def console(d, db="pgcohere", user="admin"):
    return psycopg.connect(dsn(d, db, user=user), autocommit=True)


@pytest.mark.parametrize("alias", ["pgcohere", "pgbouncer"])
def test_every_show_parses(daemon_factory, new_db, alias):
    d = start_pooler(daemon_factory, new_db)
    with connect(d, new_db) as c:
        c.execute("select 1")
        with console(d, alias) as a:
            for what, columns in SHOWS.items():
                cur = a.execute(f"SHOW {what}")
                names = [col.name for col in cur.description]
                for col in columns:
                    assert col in names, (what, col, names)
                rows = cur.fetchall()
                if what in ("POOLS", "SERVERS", "CLIENTS", "DATABASES", "STATS"):
                    assert any(new_db in r for r in rows), (what, rows)
            pools = a.execute("SHOW POOLS").fetchall()
            assert [r for r in pools if r[0] == new_db][0][-2] == "transaction"  # pool_mode
            stats = {r[0]: r for r in a.execute("SHOW STATS").fetchall()}
            assert stats[new_db][2] >= 1  # total_xact_count
            assert "1.24" in a.execute("SHOW VERSION").fetchone()[0]


def test_pause_resume_kill_reload(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=1)
    with console(d) as a, connect(d, new_db) as c:
        c.execute("select 1")
        a.execute("PAUSE")
        done = threading.Event()

        def query():
            c.execute("select 2")
            done.set()
        th = threading.Thread(target=query)
        th.start()
        assert not done.wait(0.5)  # paused: the query waits
        a.execute("RESUME")
        assert done.wait(10)
        th.join()
        a.execute("RELOAD")
        a.execute(f"KILL {new_db}")
        with pytest.raises(psycopg.OperationalError):
            c.execute("select 3")
    with connect(d, new_db) as c2:
        assert c2.execute("select 4").fetchone()[0] == 4


def test_console_access(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db)
    with pytest.raises(psycopg.OperationalError, match="not allowed"):
        console(d, user="postgres")
    with console(d, user="stats") as s:
        assert s.execute("SHOW POOLS").fetchall() is not None
        with pytest.raises(psycopg.Error, match="admin access needed"):
            s.execute("PAUSE")
    with console(d) as a:
        with pytest.raises(psycopg.Error):
            a.execute("SHOW NOSUCHTHING")
        assert a.execute("SHOW VERSION").fetchone()


def test_show_stats_times_cover_queries_and_transactions(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db)
    with connect(d, new_db, autocommit=False) as c, console(d) as a:
        c.execute("select pg_sleep(0.2)")
        c.execute("select pg_sleep(0.1)")
        c.commit()
        cur = a.execute("SHOW STATS")
        names = [col.name for col in cur.description]
        row = dict(zip(names, [r for r in cur.fetchall() if r[0] == new_db][0]))
    # microseconds, as PgBouncer reports them: the transaction spans both sleeps and the
    # COMMIT; query time counts the time PostgreSQL spent answering (from the request).
    assert row["total_query_time"] >= 300_000, row
    assert row["total_xact_time"] >= row["total_query_time"] - 1000, row
    assert row["total_xact_time"] < 60_000_000, row


def test_console_reload_applies_the_file_and_shutdown_stops_the_daemon(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=1)
    with open(d.config_path) as f:
        text = f.read()
    with open(d.config_path, "w") as f:
        f.write(text.replace("default_pool_size = 1", "default_pool_size = 3"))
    with console(d) as a:
        a.execute("RELOAD")
        row = [r for r in a.execute("SHOW CONFIG").fetchall() if r[0] == "default_pool_size"][0]
        assert row[1] == "3"
        a.execute("SHUTDOWN")
    assert d.proc.wait(timeout=15) == 0
    assert "got signal" not in d.log()  # no signal was raised: the console called the app
