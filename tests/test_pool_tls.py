"""TLS in the pooler, on both sides: clients (psql, psycopg) to pgcohered under each
client_tls_sslmode, and pgcohered to a PostgreSQL that has ssl = on and only hostssl lines
in pg_hba.conf (plain text is refused there), under server_tls_sslmode. Certificates are
made with openssl at test time."""
import hashlib
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading

import psycopg
import pytest

from harness.servers import DAEMON_BIN, Daemon, free_port, temp_dir, wait_until
from pool_helpers import error_fields, read_messages, startup_packet
from transport_helpers import Certs, give_to_postgres, own_cluster, pooler_ini, psql


@pytest.fixture(scope="module")
def certs():
    c = Certs(temp_dir("pgcohere-certs-"))
    c.ca("pg_ca")
    c.issue("pg", "pg_ca", "localhost")
    c.issue("pg_misnamed", "pg_ca", "elsewhere", names=("DNS:elsewhere.invalid",))
    c.ca("pooler_ca")
    c.issue("pooler", "pooler_ca", "localhost")
    c.ca("client_ca")
    c.issue("client", "client_ca", "postgres", names=())
    c.ca("other_ca")
    c.issue("stranger", "other_ca", "postgres", names=())
    c.issue("pooler_renewed", "other_ca", "localhost")
    yield c
    shutil.rmtree(c.dir, ignore_errors=True)


def install_pg_cert(certs, name):
    """PostgreSQL's server.crt/server.key become certificate `name` (it rereads them on reload)."""
    for ext in ("crt", "key"):
        shutil.copyfile(certs.path(f"{name}.{ext}"), certs.path(f"pg_server.{ext}"))
    give_to_postgres(certs.path("pg_server.crt"), certs.path("pg_server.key"), mode=0o600)


@pytest.fixture(scope="module")
def tls_pg(certs):
    install_pg_cert(certs, "pg")
    pg = own_cluster("pgcohere-tls-pg-",
                     settings={"ssl": "on", "ssl_cert_file": f"'{certs.path('pg_server.crt')}'",
                               "ssl_key_file": f"'{certs.path('pg_server.key')}'"},
                     hba_lines=["local all all trust",
                                "hostssl all scram_user 127.0.0.1/32 scram-sha-256",
                                "hostssl all all 127.0.0.1/32 trust"])
    pg.psql("CREATE ROLE scram_user LOGIN PASSWORD 'secret'")
    yield pg
    pg.remove()
    shutil.rmtree(pg.base, ignore_errors=True)


@pytest.fixture
def poolers(tls_pg):
    """poolers(*lines, wait=True, **pooler_ini kw) -> a started Daemon ([pgcohered] lines)."""
    base = temp_dir("pgcohere-tls-daemon-")
    started = []

    def make(*lines, wait=True, **kw):
        port = free_port()
        d = Daemon(base, pooler_ini(port, tls_pg, ("unix_socket_dir =",) + lines, **kw), port)
        started.append(d)
        return d.start(wait_for_port=wait)

    yield make
    for d in started:
        d.stop()
    shutil.rmtree(base, ignore_errors=True)


def client_tls(certs, mode="require", cert="pooler", *extra):
    return (f"client_tls_sslmode = {mode}", f"client_tls_cert_file = {certs.path(cert + '.crt')}",
            f"client_tls_key_file = {certs.path(cert + '.key')}") + extra


def dsn(d, dbname="app", user="postgres", host="127.0.0.1", **extra):
    return " ".join([f"host={host} port={d.port} dbname={dbname} user={user}"] + [f"{k}={v}" for k, v in extra.items()])


def show(d, what, **tls):
    with psycopg.connect(dsn(d, "pgcohere", "admin", **tls), autocommit=True) as a:
        cur = a.execute(f"SHOW {what}")
        names = [c.name for c in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def test_psql_with_sslmode_require_talks_tls_to_the_pooler_which_talks_tls_to_postgres(certs, poolers):
    d = poolers(*client_tls(certs, "require"))
    assert psql(dsn(d, sslmode="require"), "select 40 + 2").stdout.strip() == "42"
    assert "SSL connection (protocol: TLSv1.3" in psql(dsn(d, sslmode="require"), "\\conninfo").stdout
    with psycopg.connect(dsn(d, sslmode="require"), autocommit=True) as c:
        # The server connection is TLS too: PostgreSQL says so for the backend it gave us.
        assert c.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0] is True
        clients = [r for r in show(d, "CLIENTS", sslmode="require") if r["database"] == "app"]
        servers = [r for r in show(d, "SERVERS", sslmode="require") if r["database"] == "app"]
    assert clients and all(r["tls"].startswith("TLSv1.3/TLS_") and "/ECDH=" in r["tls"] for r in clients), clients
    assert servers and all(r["tls"].startswith("TLSv1.3/TLS_") for r in servers), servers


def test_large_results_copy_and_pipelines_pass_through_tls_on_both_sides_intact(certs, poolers):
    d = poolers(*client_tls(certs, "require"), "server_tls_sslmode = require")
    with psycopg.connect(dsn(d, sslmode="require"), autocommit=True) as c:
        rows = c.execute("select i, repeat(md5(i::text), 40) from generate_series(1, 20000) i").fetchall()
        assert len(rows) == 20000 and rows[-1] == (20000, hashlib.md5(b"20000").hexdigest() * 40)
        c.execute("drop table if exists tls_copy")
        c.execute("create table tls_copy (x text)")
        line = "y" * 999 + "\n"
        with c.cursor().copy("copy tls_copy from stdin") as copy:
            for _ in range(8):
                copy.write(line * 1000)  # 8 MB in 8 writes
        assert c.execute("select count(*), sum(length(x)) from tls_copy").fetchone() == (8000, 8000 * 999)
        with c.pipeline():
            cursors = [c.execute("select %s::int", (i,)) for i in range(300)]
        assert [cur.fetchone()[0] for cur in cursors] == list(range(300))
        c.execute("drop table tls_copy")


def test_psql_with_sslmode_verify_full_checks_the_poolers_certificate_and_name(certs, poolers):
    d = poolers(*client_tls(certs, "require"))
    for host in ("localhost", "127.0.0.1"):  # the certificate names both
        out = psql(dsn(d, host=host, sslmode="verify-full", sslrootcert=certs.path("pooler_ca.crt")), "select 1")
        assert out.stdout.strip() == "1"
    wrong_ca = psql(dsn(d, sslmode="verify-full", sslrootcert=certs.path("other_ca.crt")), "select 1", check=False)
    assert wrong_ca.returncode != 0 and "certificate verify failed" in wrong_ca.stderr


def test_a_client_that_does_not_offer_tls_is_refused_when_tls_is_required(certs, poolers):
    d = poolers(*client_tls(certs, "require"))
    with pytest.raises(psycopg.OperationalError, match="SSL required"):
        psycopg.connect(dsn(d, sslmode="disable"))
    refused = psql(dsn(d, sslmode="disable"), "select 1", check=False)
    assert refused.returncode != 0 and "SSL required" in refused.stderr
    assert "did not ask for TLS" in d.log()
    with psycopg.connect(dsn(d, sslmode="prefer"), autocommit=True) as c:  # prefer offers it: accepted
        assert c.execute("select 1").fetchone()[0] == 1


def test_prefer_takes_tls_when_offered_and_plain_text_otherwise(certs, poolers):
    d = poolers(*client_tls(certs, "prefer"))
    with psycopg.connect(dsn(d, sslmode="disable"), autocommit=True) as plain, \
            psycopg.connect(dsn(d, sslmode="require"), autocommit=True) as tls:
        assert plain.execute("select 1").fetchone()[0] == tls.execute("select 1").fetchone()[0] == 1
        tls_column = sorted(r["tls"] for r in show(d, "CLIENTS") if r["database"] == "app")
    assert tls_column[0] == "" and tls_column[1].startswith("TLSv1.3/")


def test_verify_ca_admits_only_clients_with_a_certificate_from_client_tls_ca_file(certs, poolers):
    d = poolers(*client_tls(certs, "verify-ca", "pooler", f"client_tls_ca_file = {certs.path('client_ca.crt')}"))
    no_cert = certs.path("absent.crt")  # libpq sends no certificate when the file is missing
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn(d, sslmode="require", sslcert=no_cert, sslkey=no_cert))
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn(d, sslmode="require", sslcert=certs.path("stranger.crt"), sslkey=certs.path("stranger.key")))
    with psycopg.connect(dsn(d, sslmode="require", sslcert=certs.path("client.crt"), sslkey=certs.path("client.key")),
                         autocommit=True) as c:
        assert c.execute("select 1").fetchone()[0] == 1
    assert "TLS handshake failed" in d.log()


def test_hostssl_only_postgres_refuses_the_pooler_without_tls(poolers):
    d = poolers("server_tls_sslmode = disable", "query_wait_timeout = 3", "server_login_retry = 1")
    with pytest.raises(psycopg.OperationalError):
        with psycopg.connect(dsn(d), autocommit=True) as c:
            c.execute("select 1")
    wait_until(lambda: "no encryption" in d.log(), timeout=10, what="the server's refusal in the log")


def test_server_verify_full_checks_the_ca_and_the_servers_name(certs, tls_pg, poolers):
    good = poolers("server_tls_sslmode = verify-full", f"server_tls_ca_file = {certs.path('pg_ca.crt')}")
    with psycopg.connect(dsn(good), autocommit=True) as c:
        assert c.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0] is True
    wrong_ca = poolers("server_tls_sslmode = verify-full", f"server_tls_ca_file = {certs.path('other_ca.crt')}",
                       "query_wait_timeout = 3", "server_login_retry = 1")
    with pytest.raises(psycopg.OperationalError):
        with psycopg.connect(dsn(wrong_ca), autocommit=True) as c:
            c.execute("select 1")
    assert "certificate verify failed" in wrong_ca.log()

    # A certificate from the right CA that does not name 127.0.0.1: verify-ca accepts it,
    # verify-full does not.
    install_pg_cert(certs, "pg_misnamed")
    try:
        tls_pg.psql("select pg_reload_conf()")
        check = f"host=127.0.0.1 port={tls_pg.port} dbname=app user=postgres sslmode=verify-full " \
                f"sslrootcert={certs.path('pg_ca.crt')}"
        wait_until(lambda: psql(check, "select 1", check=False).returncode != 0, timeout=10,
                   what="PostgreSQL serving the misnamed certificate")
        ca_only = poolers("server_tls_sslmode = verify-ca", f"server_tls_ca_file = {certs.path('pg_ca.crt')}")
        with psycopg.connect(dsn(ca_only), autocommit=True) as c:
            assert c.execute("select 1").fetchone()[0] == 1
        full = poolers("server_tls_sslmode = verify-full", f"server_tls_ca_file = {certs.path('pg_ca.crt')}",
                       "query_wait_timeout = 3", "server_login_retry = 1")
        with pytest.raises(psycopg.OperationalError):
            with psycopg.connect(dsn(full), autocommit=True) as c:
                c.execute("select 1")
        assert "certificate verify failed" in full.log()
    finally:
        install_pg_cert(certs, "pg")
        tls_pg.psql("select pg_reload_conf()")


def test_scram_over_tls_from_the_client_to_the_pooler_and_from_the_pooler_to_postgres(certs, tls_pg, poolers):
    users = os.path.join(certs.dir, "userlist.txt")
    with open(users, "w") as f:
        f.write('"scram_user" "secret"\n')
    d = poolers(*client_tls(certs, "require"), "server_tls_sslmode = verify-full",
                f"server_tls_ca_file = {certs.path('pg_ca.crt')}", auth="scram-sha-256", auth_file=users)
    with psycopg.connect(dsn(d, user="scram_user", password="secret", sslmode="require"), autocommit=True) as c:
        # pg_hba.conf lets scram_user in only with SCRAM over hostssl: the pooler did both.
        row = c.execute("select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()
        assert row == ("scram_user", True)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn(d, user="scram_user", password="wrong", sslmode="require"))


def test_sighup_reloads_the_certificate_for_new_connections(certs, poolers):
    live_crt, live_key = certs.path("live.crt"), certs.path("live.key")
    shutil.copyfile(certs.path("pooler.crt"), live_crt)
    shutil.copyfile(certs.path("pooler.key"), live_key)
    d = poolers("client_tls_sslmode = require", f"client_tls_cert_file = {live_crt}", f"client_tls_key_file = {live_key}")
    old_ca, new_ca = certs.path("pooler_ca.crt"), certs.path("other_ca.crt")
    with psycopg.connect(dsn(d, host="localhost", sslmode="verify-full", sslrootcert=old_ca), autocommit=True) as old:
        shutil.copyfile(certs.path("pooler_renewed.crt"), live_crt)
        shutil.copyfile(certs.path("pooler_renewed.key"), live_key)
        d.kill(signal.SIGHUP)
        wait_until(lambda: "reloaded " in d.log(), timeout=10, what="the reload")
        with psycopg.connect(dsn(d, host="localhost", sslmode="verify-full", sslrootcert=new_ca),
                             autocommit=True) as new:
            assert new.execute("select 1").fetchone()[0] == 1
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            psycopg.connect(dsn(d, host="localhost", sslmode="verify-full", sslrootcert=old_ca))
        assert old.execute("select 2").fetchone()[0] == 2  # established connections keep theirs


def test_a_reload_that_changes_server_tls_settings_replaces_the_server_connections(poolers):
    d = poolers("default_pool_size = 1", "server_tls_protocols = secure")
    with psycopg.connect(dsn(d, sslmode="disable"), autocommit=True) as c:
        before = c.execute("select pg_backend_pid()").fetchone()[0]
        assert c.execute("select pg_backend_pid()").fetchone()[0] == before  # the pool's one connection
        with open(d.config_path) as f:
            text = f.read()
        with open(d.config_path, "w") as f:
            f.write(text.replace("server_tls_protocols = secure", "server_tls_protocols = tlsv1.3"))
        d.kill(signal.SIGHUP)
        wait_until(lambda: "server_tls_* changed" in d.log(), timeout=10, what="the reload")
        after = c.execute("select pg_backend_pid()").fetchone()[0]
        assert after != before
        assert c.execute("select version from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0] == "TLSv1.3"


def test_gssenc_request_is_declined_then_ssl_request_starts_tls(certs, poolers):
    d = poolers(*client_tls(certs, "require"))
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    raw.sendall(struct.pack("!ii", 8, 80877104))  # GSSENCRequest
    assert raw.recv(1) == b"N"
    raw.sendall(struct.pack("!ii", 8, 80877103))  # SSLRequest
    assert raw.recv(1) == b"S"
    context = ssl.create_default_context(cafile=certs.path("pooler_ca.crt"))
    tls = context.wrap_socket(raw, server_hostname="localhost")
    tls.sendall(startup_packet("postgres", "app"))
    assert read_messages(tls)[-1][0] == b"Z"
    tls.close()


def test_a_client_that_stalls_in_the_tls_handshake_is_closed_at_client_login_timeout(certs, poolers):
    d = poolers(*client_tls(certs, "require"), "client_login_timeout = 1")
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(struct.pack("!ii", 8, 80877103))
    assert s.recv(1) == b"S"
    # No ClientHello: the janitor must still end it.
    assert s.recv(10) == b""


def test_a_query_through_tls_on_both_sides_can_be_canceled(certs, poolers):
    d = poolers(*client_tls(certs, "require"))
    with psycopg.connect(dsn(d, sslmode="require"), autocommit=True) as c:
        canceler = threading.Timer(0.5, c.cancel)
        canceler.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("select pg_sleep(20)")
        canceler.join()
        assert c.execute("select 1").fetchone()[0] == 1


def test_plain_bytes_sent_behind_an_ssl_request_are_refused(certs, poolers):
    d = poolers(*client_tls(certs, "prefer"))
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(struct.pack("!ii", 8, 80877103) + startup_packet("postgres", "app"))
    msgs = read_messages(s, until=b"E")
    assert msgs and msgs[-1][0] == b"E"
    assert error_fields(msgs[-1][1])["M"] == "received unencrypted data after SSL request"
    assert s.recv(10) == b""


def test_check_refuses_a_certificate_file_that_does_not_load(tmp_path):
    ini = tmp_path / "pgcohered.ini"
    ini.write_text("[pgcohered]\nauth_type = trust\nclient_tls_sslmode = require\n"
                   f"client_tls_key_file = {tmp_path}/absent.key\nclient_tls_cert_file = {tmp_path}/absent.crt\n")
    out = subprocess.run([DAEMON_BIN, "--check", str(ini)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert f"client_tls_cert_file {tmp_path}/absent.crt: " in out.stderr
