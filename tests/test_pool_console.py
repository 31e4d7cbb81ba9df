"""The admin console's commands that act on the pool, each checked by its effect: SUSPEND
holds traffic until RESUME, DISABLE refuses new clients of a database until ENABLE,
RECONNECT closes server connections once released, WAIT_CLOSE waits for that, SET changes
a reloadable setting, and SHOW SERVERS' local_addr/local_port are the server connection's
own end as PostgreSQL sees it."""
import threading
import time

import psycopg
import pytest

from pool_helpers import connect, dsn, start_pooler


def console(d):
    return psycopg.connect(dsn(d, "pgcohere", user="admin"), autocommit=True)


def rows(a, what):
    cur = a.execute(f"SHOW {what}")
    names = [c.name for c in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def in_thread(fn):
    done = threading.Event()
    result = {}

    def run():
        try:
            result["value"] = fn()
        except Exception as e:  # noqa: BLE001 - handed to the test
            result["error"] = e
        done.set()
    threading.Thread(target=run, daemon=True).start()
    return done, result


def test_suspend_holds_new_traffic_and_logins_until_resume(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db)
    with console(d) as a, connect(d, new_db) as c:
        c.execute("SELECT 1")
        a.execute("SUSPEND")
        state = {r["key"]: r["value"] for r in rows(a, "STATE")}
        assert state["suspended"] == "yes"
        query_done, query = in_thread(lambda: c.execute("SELECT 2").fetchone()[0])
        login_done, login = in_thread(lambda: connect(d, new_db).execute("SELECT 3").fetchone()[0])
        assert not query_done.wait(0.7)
        assert not login_done.wait(0.1)
        a.execute("RESUME")
        assert query_done.wait(10) and query.get("value") == 2, query
        assert login_done.wait(10) and login.get("value") == 3, login
        assert {r["key"]: r["value"] for r in rows(a, "STATE")}["suspended"] == "no"


def test_disable_refuses_new_clients_of_the_database_until_enable(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db)
    with console(d) as a, connect(d, new_db) as old:
        a.execute(f"DISABLE {new_db}")
        assert [r["disabled"] for r in rows(a, "DATABASES") if r["name"] == new_db] == [1]
        with pytest.raises(psycopg.OperationalError, match="disabled"):
            connect(d, new_db)
        assert old.execute("SELECT 1").fetchone()[0] == 1  # clients already in stay
        with pytest.raises(psycopg.Error, match="no such database"):
            a.execute("DISABLE nosuchdb")
        a.execute(f"ENABLE {new_db}")
        with connect(d, new_db) as again:
            assert again.execute("SELECT 2").fetchone()[0] == 2


def backend_pids(pg, db):
    with pg.connect(db) as c:
        return {r[0] for r in c.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'").fetchall()}


def test_reconnect_closes_servers_once_released_and_wait_close_waits_for_it(daemon_factory, new_db, pg):
    d = start_pooler(daemon_factory, new_db, default_pool_size=2)
    with console(d) as a, connect(d, new_db) as busy, connect(d, new_db) as other:
        busy.execute("BEGIN")
        in_tx = busy.execute("SELECT pg_backend_pid()").fetchone()[0]
        idle = other.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert in_tx != idle
        a.execute(f"RECONNECT {new_db}")
        servers = {r["remote_pid"]: r for r in rows(a, "SERVERS")}
        assert servers[in_tx]["close_needed"] == 1
        deadline = time.time() + 5
        while idle in backend_pids(pg, new_db) and time.time() < deadline:
            time.sleep(0.05)
        assert idle not in backend_pids(pg, new_db)  # idle: closed at once
        waited, result = in_thread(lambda: a.execute(f"WAIT_CLOSE {new_db}"))
        assert not waited.wait(0.7)  # the transaction still holds its connection
        assert busy.execute("SELECT pg_backend_pid()").fetchone()[0] == in_tx
        busy.execute("COMMIT")
        assert waited.wait(10) and "error" not in result, result
        assert in_tx not in backend_pids(pg, new_db)
        assert other.execute("SELECT pg_backend_pid()").fetchone()[0] not in (in_tx, idle)


def test_set_changes_a_reloadable_setting_which_shows_and_acts(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=4)
    with console(d) as a, connect(d, new_db) as first, connect(d, new_db) as second:
        a.execute("SET default_pool_size = 1")
        config = {r["key"]: r for r in rows(a, "CONFIG")}
        assert config["default_pool_size"]["value"] == "1"
        assert config["default_pool_size"]["changeable"] == "yes"
        assert config["listen_port"]["changeable"] == "no"
        first.execute("BEGIN")
        first.execute("SELECT 1")
        done, _ = in_thread(lambda: second.execute("SELECT 2"))
        assert not done.wait(0.7)  # one server connection now: the second client waits
        first.execute("COMMIT")
        assert done.wait(10)
        with pytest.raises(psycopg.Error, match="restart"):
            a.execute("SET listen_port = 7777")
        with pytest.raises(psycopg.Error, match="unknown setting"):
            a.execute("SET no_such_key = 1")
        with pytest.raises(psycopg.Error, match="integer"):
            a.execute("SET default_pool_size = 'many'")
        assert {r["key"]: r["value"] for r in rows(a, "CONFIG")}["default_pool_size"] == "1"


def test_show_servers_local_address_is_what_postgres_sees_as_the_client(daemon_factory, new_db, pg):
    d = start_pooler(daemon_factory, new_db, default_pool_size=2)
    with console(d) as a, connect(d, new_db) as c:
        c.execute("SELECT 1")
        servers = rows(a, "SERVERS")
        assert servers
        with pg.connect(new_db) as direct:
            for s in servers:
                addr, port = direct.execute("SELECT host(client_addr), client_port FROM pg_stat_activity WHERE pid = %s",
                                            (s["remote_pid"],)).fetchone()
                assert (s["local_addr"], s["local_port"]) == (addr, port)
                assert s["local_port"] > 0
