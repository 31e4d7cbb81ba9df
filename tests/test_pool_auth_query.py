"""auth_user / auth_query / auth_dbname: users who are not in auth_file have their md5 hash
or SCRAM secret looked up in PostgreSQL, are checked against it, and the pooler logs in
to a PostgreSQL that asks for passwords as them (with the key a SCRAM client proved).
The lookups are cached for auth_query_cache_ttl seconds."""
import asyncio
import os
import subprocess
import time

import asyncpg
import psycopg
import pytest

from auth_cluster import (AUTH_QUERY, PASSWORDS, current_user, dsn, lookups, make_cluster, start_daemon,
                          write_userlist)


@pytest.fixture(scope="module")
def apg(workdir):
    pg = make_cluster(os.path.join(workdir, "authpg"))
    yield pg
    pg.remove()


@pytest.fixture
def userlist(workdir):
    return write_userlist(workdir, {"pgc_auth": PASSWORDS["pgc_auth"], "admin": PASSWORDS["admin"]})


def pooler(workdir, apg, userlist, **settings):
    settings.setdefault("auth_type", "md5")
    settings.setdefault("auth_user", "pgc_auth")
    settings.setdefault("auth_query", AUTH_QUERY)
    return start_daemon(workdir, apg, auth_file=userlist, **settings)


@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256", "plain"])
def test_looked_up_md5_and_scram_secrets_log_clients_in_and_the_server_as_them(workdir, apg, userlist, auth_type):
    d = pooler(workdir, apg, userlist, auth_type=auth_type)
    # With plain or md5, the SCRAM user is asked for SCRAM: only its proof lets the pooler
    # log in to PostgreSQL as that user (pgbouncer#1186).
    assert current_user(d, "app", "scram_user", PASSWORDS["scram_user"]) == "scram_user"
    if auth_type != "scram-sha-256":  # an md5 hash cannot check a SCRAM exchange
        assert current_user(d, "app", "md5_user", PASSWORDS["md5_user"]) == "md5_user"
    for user in ("scram_user", "md5_user", "nobody", "nopw_user"):
        with pytest.raises(psycopg.OperationalError, match=f'password authentication failed for user "{user}"'):
            current_user(d, "app", user, "wrong")
    log = d.log()
    for secret in PASSWORDS.values():
        assert secret not in log
    assert "SCRAM-SHA-256$" not in log


def test_asyncpg_and_psql_log_in_with_secrets_from_postgres(workdir, apg, userlist):
    d = pooler(workdir, apg, userlist)

    async def as_asyncpg(user):
        c = await asyncpg.connect(host="127.0.0.1", port=d.port, database="app", user=user,
                                  password=PASSWORDS[user], statement_cache_size=0)
        try:
            return await c.fetchval("select current_user")
        finally:
            await c.close()

    assert asyncio.run(as_asyncpg("scram_user")) == "scram_user"
    assert asyncio.run(as_asyncpg("md5_user")) == "md5_user"
    env = dict(os.environ, PGPASSWORD=PASSWORDS["scram_user"])
    out = subprocess.run(["psql", "-X", "-At", "-d", dsn(d, "app", "scram_user"), "-c", "select current_user"],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "scram_user"


def test_connect_per_request_clients_cost_one_lookup_per_ttl(workdir, apg, userlist):
    d = pooler(workdir, apg, userlist, auth_query_cache_ttl=2)
    before = lookups(apg)
    for _ in range(10):
        assert current_user(d, "app", "scram_user", PASSWORDS["scram_user"]) == "scram_user"
    assert lookups(apg) - before == 1  # pgbouncer#1302: not one (or two) per connection
    time.sleep(2.2)
    assert current_user(d, "app", "scram_user", PASSWORDS["scram_user"]) == "scram_user"
    assert lookups(apg) - before == 2  # the cached secret expired: asked again


def test_auth_file_users_are_not_looked_up(workdir, apg, userlist):
    d = pooler(workdir, apg, userlist)
    before = lookups(apg)
    # pgc_auth is in auth_file: its line decides, and PostgreSQL is not asked.
    assert current_user(d, "app", "pgc_auth", PASSWORDS["pgc_auth"]) == "pgc_auth"
    assert lookups(apg) == before


def test_auth_dbname_runs_the_lookup_in_another_database(workdir, apg, userlist):
    # "other" has no lookup function: without auth_dbname its clients could not log in.
    d = pooler(workdir, apg, userlist)
    with pytest.raises(psycopg.OperationalError, match="auth_query failed: .*pgc_lookup"):
        current_user(d, "other", "md5_user", PASSWORDS["md5_user"])
    d.stop()
    d = pooler(workdir, apg, userlist, auth_dbname="app")
    before = lookups(apg)
    assert current_user(d, "other", "md5_user", PASSWORDS["md5_user"]) == "md5_user"
    assert lookups(apg) == before + 1


def test_a_databases_entry_may_name_its_own_auth_user_and_query(workdir, apg, userlist):
    # The default auth_query reads pg_shadow, which only a superuser may: postgres (trusted
    # by this cluster for 127.0.0.1) looks up the users of "other".
    d = start_daemon(workdir, apg, auth_file=userlist, auth_type="md5",
                     databases={"other": "dbname=other auth_user=postgres"})
    assert current_user(d, "other", "scram_user", PASSWORDS["scram_user"]) == "scram_user"


def test_a_failing_lookup_tells_the_client_why(workdir, apg):
    wrong = write_userlist(workdir, {"pgc_auth": "not-the-password"})
    d = pooler(workdir, apg, wrong)
    with pytest.raises(psycopg.OperationalError,
                       match='auth_query failed: login as auth_user pgc_auth: password authentication failed'):
        current_user(d, "app", "md5_user", PASSWORDS["md5_user"])
