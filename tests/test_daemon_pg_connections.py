"""The daemon's own PostgreSQL connections (each database's LISTEN connection, the query
cache's policy reads) reach PostgreSQL the way its pool's server connections do:
server_tls_* apply (a managed server that wants TLS and a client certificate), a RELOAD
that moves a database moves the LISTEN connection too (with the resync of any reconnect),
and an entry without host goes to unix_socket_dir, as in PgBouncer.

Payloads are signed here with Python's hmac and sent with pg_notify, so the clusters need
no extension."""
import hashlib
import hmac
import os
import shutil
import signal
import time

import psycopg
import pytest

from harness.servers import Daemon, PgCluster, free_port, temp_dir, wait_until
from transport_helpers import Certs, give_to_postgres


def signed(dbname, secret, epoch, seq, keys):
    body = f"pgc1 {epoch} {seq} {int(time.time() * 1e6)}\n" + "".join(f"k {k}\n" for k in keys)
    return body + "sig " + hmac.new(secret, (dbname + "\n" + body).encode(), hashlib.sha256).hexdigest()


def notify(dsn, text):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT pg_notify('pgcohere', %s)", (text,))


def local_dsn(pg, dbname="app"):
    """Through the cluster's Unix socket (pg_hba trusts it in every cluster here)."""
    return f"host={pg.dir} port={pg.port} dbname={dbname} user=postgres"


def cluster(prefix, settings=None, hba_lines=None):
    base = temp_dir(prefix)
    settings = dict(settings or {})
    if hba_lines:
        hba = os.path.join(base, "pg_hba.conf")
        with open(hba, "w") as f:
            f.write("\n".join(hba_lines) + "\n")
        give_to_postgres(hba)
        settings["hba_file"] = f"'{hba}'"
    pg = PgCluster(os.path.join(base, "pg"), preload=False, settings=settings).init().start()
    pg.base = base
    with psycopg.connect(local_dsn(pg, "postgres"), autocommit=True) as c:
        c.execute("CREATE DATABASE app")
    return pg


def drop(pg):
    pg.remove()
    shutil.rmtree(pg.base, ignore_errors=True)


def listen_backends(pg, application="pgcohered-listen"):
    with psycopg.connect(local_dsn(pg), autocommit=True) as c:
        return c.execute("SELECT pid, ssl, client_addr::text FROM pg_stat_activity a LEFT JOIN pg_stat_ssl s "
                         "USING (pid) WHERE application_name = %s", (application,)).fetchall()


@pytest.fixture
def daemons(redis_srv, secret_file):
    """daemons(databases_lines, pgcohered_lines, cache=False) -> a started Daemon."""
    base = temp_dir("pgcohere-pgconns-")
    started = []

    def make(databases, lines=(), cache=False):
        port = free_port()
        text = "\n".join(["[databases]", *databases, "[pgcohered]", "listen_addr = 127.0.0.1",
                          f"listen_port = {port}", "auth_type = trust", "admin_users = admin",
                          "pool_mode = transaction", *lines, "[redis]", f"url = {redis_srv.url}",
                          "[invalidation]", f"secret_file = {secret_file}", "reconnect_max = 0.5",
                          *(["[cache]", "enabled = 1"] if cache else [])]) + "\n"
        d = Daemon(base, text, port)
        started.append(d)
        return d.start()

    yield make
    for d in started:
        d.stop()
    shutil.rmtree(base, ignore_errors=True)


def purged_through(pg, d, redis_srv, secret, key, epoch):
    """A signed invalidation of `key` sent on `pg` is applied by `d`."""
    r = redis_srv.client()
    r.set(key, "stale")
    notify(local_dsn(pg), signed("app", secret, epoch, 1, [key]))
    wait_until(lambda: r.get(key) is None, timeout=10, what=f"{key} purged (log: {d.log_path})")


# ---- server_tls_* ----

@pytest.fixture(scope="module")
def certs():
    c = Certs(temp_dir("pgcohere-pgconns-certs-"))
    c.ca("pg_ca")
    c.issue("pg", "pg_ca", "localhost")
    c.ca("client_ca")
    c.issue("client", "client_ca", "postgres", names=())
    yield c
    shutil.rmtree(c.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cert_pg(certs):
    """ssl = on, and TCP logins only by TLS with a client certificate (a managed server)."""
    for ext in ("crt", "key"):
        shutil.copyfile(certs.path(f"pg.{ext}"), certs.path(f"pg_server.{ext}"))
    shutil.copyfile(certs.path("client_ca.crt"), certs.path("pg_client_ca.crt"))
    give_to_postgres(certs.path("pg_server.crt"), certs.path("pg_server.key"), certs.path("pg_client_ca.crt"),
                     mode=0o600)
    pg = cluster("pgcohere-pgconns-tls-",
                 settings={"ssl": "on", "ssl_cert_file": f"'{certs.path('pg_server.crt')}'",
                           "ssl_key_file": f"'{certs.path('pg_server.key')}'",
                           "ssl_ca_file": f"'{certs.path('pg_client_ca.crt')}'"},
                 hba_lines=["local all all trust", "hostssl all all 127.0.0.1/32 cert"])
    yield pg
    drop(pg)


def test_the_listen_and_cache_policy_connections_log_in_with_the_server_tls_certificate(
        certs, cert_pg, daemons, redis_srv, secret):
    d = daemons([f"app = host=127.0.0.1 port={cert_pg.port} dbname=app user=postgres"],
                ["server_tls_sslmode = verify-full", f"server_tls_ca_file = {certs.path('pg_ca.crt')}",
                 f"server_tls_cert_file = {certs.path('client.crt')}",
                 f"server_tls_key_file = {certs.path('client.key')}"], cache=True)
    wait_until(lambda: "invalidation [app]: listening on" in d.log(), timeout=15, what=f"LISTEN (log: {d.log_path})")
    backends = listen_backends(cert_pg)
    assert len(backends) == 1 and backends[0][1] is True, backends  # over TLS
    purged_through(cert_pg, d, redis_srv, secret, "pgconns:tls:1", int(time.time() * 1000))
    # The cache read the policies there (none: no extension in this database) without error.
    wait_until(lambda: "cache [app]: 0 cache-enabled table(s)" in d.log(), timeout=10, what="policies read")
    assert "cannot read the cache policies" not in d.log()
    assert "certificate" not in d.log()
    # The pool's server connections, for comparison, as before.
    with psycopg.connect(f"host=127.0.0.1 port={d.port} dbname=app user=postgres", autocommit=True) as c:
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)


def test_server_tls_verify_full_keeps_the_listen_connection_off_a_server_with_another_ca(
        certs, cert_pg, daemons):
    # The CA the daemon trusts did not sign the server's certificate: no LISTEN session.
    d = daemons([f"app = host=127.0.0.1 port={cert_pg.port} dbname=app user=postgres"],
                ["server_tls_sslmode = verify-full", f"server_tls_ca_file = {certs.path('client_ca.crt')}",
                 f"server_tls_cert_file = {certs.path('client.crt')}",
                 f"server_tls_key_file = {certs.path('client.key')}"])
    wait_until(lambda: "invalidation [app]: cannot connect" in d.log(), timeout=15, what="refused")
    assert "certificate verify failed" in d.log()
    assert listen_backends(cert_pg) == []


# ---- RELOAD moves a database ----

def test_a_reload_that_moves_a_database_moves_its_listen_connection_and_resyncs(
        daemons, redis_srv, secret):
    first, second = cluster("pgcohere-pgconns-a-"), cluster("pgcohere-pgconns-b-")
    try:
        d = daemons([f"app = host=127.0.0.1 port={first.port} dbname=app user=postgres"])
        wait_until(lambda: listen_backends(first), timeout=15, what="LISTEN on the first server")
        epoch = int(time.time() * 1000)
        purged_through(first, d, redis_srv, secret, "pgconns:move:1", epoch)
        resynced = lambda n: d.log().count("invalidation [app]: resync (connect) done") >= n  # noqa: E731
        wait_until(lambda: resynced(1), timeout=10, what="the first connect's resync")
        r = redis_srv.client()
        r.set("pgcohere:app:left-behind", "x")  # under the namespace: the resync of the move purges it
        with open(d.config_path) as f:
            text = f.read()
        with open(d.config_path, "w") as f:
            f.write(text.replace(f"port={first.port}", f"port={second.port}"))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: listen_backends(second), timeout=15, what=f"LISTEN on the second server ({d.log_path})")
        wait_until(lambda: listen_backends(first) == [], timeout=10, what="the first LISTEN session ended")
        assert "connection settings changed; reconnecting" in d.log()
        assert "LISTEN connection lost" not in d.log()
        wait_until(lambda: resynced(2), timeout=10, what="the resync after the move")
        assert r.get("pgcohere:app:left-behind") is None
        # What is committed on the new server purges; the old one is no longer listened to.
        purged_through(second, d, redis_srv, secret, "pgconns:move:2", epoch + 1)
        r.set("pgconns:move:3", "stale")
        notify(local_dsn(first), signed("app", secret, epoch + 2, 1, ["pgconns:move:3"]))
        time.sleep(0.5)
        assert r.get("pgconns:move:3") == b"stale"
    finally:
        drop(first)
        drop(second)


# ---- an entry without host ----

def test_an_entry_without_host_goes_to_unix_socket_dir_for_the_pool_and_the_listen_connection(
        pg_socket_cluster, daemons, redis_srv, secret):
    pg = pg_socket_cluster
    d = daemons([f"app = port={pg.port} dbname=app user=postgres"], [f"unix_socket_dir = {pg.dir}"])
    with psycopg.connect(f"host=127.0.0.1 port={d.port} dbname=app user=postgres", autocommit=True) as c:
        # The pool's server connection came through the socket: no client address.
        assert c.execute("SELECT client_addr FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchone() == (None,)
    wait_until(lambda: listen_backends(pg), timeout=15, what=f"LISTEN (log: {d.log_path})")
    assert [b[2] for b in listen_backends(pg)] == [None]
    purged_through(pg, d, redis_srv, secret, "pgconns:unix:1", int(time.time() * 1000))


@pytest.fixture
def pg_socket_cluster():
    pg = cluster("pgcohere-pgconns-unix-")
    os.chmod(pg.dir, 0o777)  # the daemon puts its own socket there too
    yield pg
    drop(pg)
