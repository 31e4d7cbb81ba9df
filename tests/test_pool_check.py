"""server_check_query / server_check_delay with PgBouncer's meanings: a server connection
idle longer than server_check_delay is checked before a client gets it, a failed check
closes it and the client gets another one; an empty query disables the check."""
import urllib.request

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.servers import wait_until
from pool_helpers import Relay, connect, dsn, pooler_via


def _metric(d, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                total += s.value
    return total


@pytest.fixture
def proxy(pg):
    p = Relay(pg.port)
    yield p
    p.close()


def test_failed_check_gives_the_client_a_fresh_connection(daemon_factory, new_db, pg, proxy):
    d = pooler_via(daemon_factory, new_db, proxy.port, pg.port, server_check_delay=0, default_pool_size=2)
    with connect(d, new_db) as c:
        assert c.execute("select 1").fetchone()[0] == 1
        proxy.break_existing()
        # The idle connection is dead; the check finds out, not the client's query.
        assert c.execute("select 2").fetchone()[0] == 2
        assert c.execute("select 3").fetchone()[0] == 3
    assert _metric(d, "pgcohere_pool_server_check_failures_total") >= 1
    assert _metric(d, "pgcohere_pool_server_checks_total") >= 2
    assert "failed server_check_query" in d.log()


def test_empty_check_query_disables_the_check(daemon_factory, new_db, pg, proxy):
    d = pooler_via(daemon_factory, new_db, proxy.port, pg.port, server_check_delay=0, server_check_query="")
    with connect(d, new_db) as c:
        assert c.execute("select 1").fetchone()[0] == 1
        proxy.break_existing()
        with pytest.raises(psycopg.OperationalError):
            c.execute("select 2")
    assert _metric(d, "pgcohere_pool_server_checks_total") == 0


def _server_states(d):
    with psycopg.connect(dsn(d, "pgcohere", user="admin"), autocommit=True) as a:
        cur = a.execute("SHOW SERVERS")
        col = [x.name for x in cur.description].index("state")
        return [r[col] for r in cur.fetchall()]


def test_check_runs_only_after_server_check_delay(daemon_factory, new_db, pg):
    d = pooler_via(daemon_factory, new_db, pg.port, pg.port, server_check_delay=1, default_pool_size=1)
    with connect(d, new_db) as c:
        for i in range(5):  # reused at once: within the delay, no check
            assert c.execute("select %s::int", (i,)).fetchone()[0] == i
        assert _metric(d, "pgcohere_pool_server_checks_total") == 0
        # Idle past the delay, the janitor marks it (SHOW SERVERS state "used", as PgBouncer)...
        wait_until(lambda: _server_states(d) == ["used"], timeout=10, what="the idle connection to need a check")
        # ...and the next client query runs only after a check passed on it.
        assert c.execute("select 42").fetchone()[0] == 42
        assert _metric(d, "pgcohere_pool_server_checks_total") == 1
        assert _server_states(d) == ["idle"]


def test_terminated_idle_servers_do_not_fail_the_next_query(daemon_factory, new_db, pg):
    d = pooler_via(daemon_factory, new_db, pg.port, pg.port, server_check_delay=0, default_pool_size=2)
    with connect(d, new_db) as a, connect(d, new_db) as b:
        a.execute("begin")
        b.execute("select 1")  # two server connections, both idle after the commit
        a.execute("commit")
        with pg.connect(new_db) as direct:
            killed = direct.execute(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = %s"
                " and pid <> pg_backend_pid() and backend_type = 'client backend'"
                " and application_name <> 'pgcohered-listen'", (new_db,)).fetchone()[0]
        assert killed == 2
        for i in range(5):
            assert a.execute("select %s::int", (i,)).fetchone()[0] == i
            assert b.execute("select %s::int", (i,)).fetchone()[0] == i
    # Reuses were checked (server_check_delay = 0: every time).
    assert _metric(d, "pgcohere_pool_server_checks_total") >= 1
