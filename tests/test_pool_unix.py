"""Unix sockets in the pooler: clients through unix_socket_dir/.s.PGSQL.<port> (with
unix_socket_mode and unix_socket_group, PgBouncer's default /tmp), and server connections
to PostgreSQL's own socket (host=<directory>)."""
import grp
import os
import shutil
import socket
import stat
import subprocess

import psycopg
import pytest

from harness.servers import Daemon, free_port, temp_dir
from transport_helpers import own_cluster, pooler_ini, psql


@pytest.fixture(scope="module")
def plain_pg():
    pg = own_cluster("pgcohere-unix-pg-")
    yield pg
    pg.remove()
    shutil.rmtree(pg.base, ignore_errors=True)


@pytest.fixture
def base():
    d = temp_dir("pgcohere-unix-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def poolers(plain_pg, base):
    """poolers(*lines, wait=True, port=None, **pooler_ini kw) -> a Daemon ([pgcohered] lines)."""
    started = []

    def make(*lines, wait=True, port=None, **kw):
        port = port or free_port()
        d = Daemon(os.path.join(base, "daemons"), pooler_ini(port, plain_pg, lines, **kw), port)
        started.append(d)
        return d.start(wait_for_port=wait)

    yield make
    for d in started:
        d.stop()


def socket_dir(base):
    d = os.path.join(base, "sock")
    os.makedirs(d, exist_ok=True)
    return d


def a_group_that_is_not_ours():
    mine = os.getegid()
    for name in ("postgres", "daemon", "nogroup"):
        try:
            g = grp.getgrnam(name)
        except KeyError:
            continue
        if g.gr_gid != mine:
            return g
    pytest.skip("no group other than our own to test unix_socket_group with")


def test_clients_connect_through_the_unix_socket_with_its_mode_and_group(poolers, base):
    sock_dir = socket_dir(base)
    group = a_group_that_is_not_ours()
    d = poolers(f"unix_socket_dir = {sock_dir}", "unix_socket_mode = 0770", f"unix_socket_group = {group.gr_name}")
    path = os.path.join(sock_dir, f".s.PGSQL.{d.port}")
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o770
    assert st.st_gid == group.gr_gid
    # libpq: a host that starts with '/' is the socket's directory.
    assert psql(f"host={sock_dir} port={d.port} dbname=app user=postgres", "select 40 + 2").stdout.strip() == "42"
    with psycopg.connect(f"host={sock_dir} port={d.port} dbname=app user=postgres", autocommit=True) as c:
        c.execute("select 1")
        with psycopg.connect(f"host={sock_dir} port={d.port} dbname=pgcohere user=admin", autocommit=True) as a:
            cur = a.execute("SHOW CLIENTS")
            names = [col.name for col in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall() if r[names.index("database")] == "app"]
    assert [(r["addr"], r["port"], r["local_addr"]) for r in rows] == [("unix", d.port, sock_dir)]


def test_the_default_socket_is_in_tmp_and_removed_at_stop(poolers):
    d = poolers()
    path = f"/tmp/.s.PGSQL.{d.port}"
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o777  # PgBouncer's default unix_socket_mode
    assert psql(f"host=/tmp port={d.port} dbname=app user=postgres", "select 1").stdout.strip() == "1"
    d.stop()
    assert not os.path.exists(path)


def test_a_stale_socket_file_is_replaced_and_a_live_one_is_not_taken(poolers, base):
    sock_dir = socket_dir(base)
    port = free_port()
    # What a pooler killed with SIGKILL leaves behind: a socket file nobody listens on.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(os.path.join(sock_dir, f".s.PGSQL.{port}"))
    stale.close()
    first = poolers(f"unix_socket_dir = {sock_dir}", port=port, listen_addr="")
    assert psql(f"host={sock_dir} port={port} dbname=app user=postgres", "select 1").stdout.strip() == "1"
    second = poolers(f"unix_socket_dir = {sock_dir}", port=port, listen_addr="", wait=False)
    assert second.proc.wait(timeout=15) == 1
    assert "another process listens on it" in second.log()
    # The first one still serves.
    assert psql(f"host={sock_dir} port={port} dbname=app user=postgres", "select 2").stdout.strip() == "2"
    assert first.proc.poll() is None


def test_a_unix_socket_client_needs_no_tls_even_when_tls_is_required(poolers, base, tmp_path):
    # As PostgreSQL, which offers no TLS on its Unix socket: there the file mode guards.
    sock_dir = socket_dir(base)
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    d = poolers(f"unix_socket_dir = {sock_dir}", "client_tls_sslmode = require", f"client_tls_key_file = {key}",
                f"client_tls_cert_file = {crt}")
    assert psql(f"host={sock_dir} port={d.port} dbname=app user=postgres sslmode=prefer", "select 1").stdout.strip() == "1"
    refused = psql(f"host=127.0.0.1 port={d.port} dbname=app user=postgres sslmode=disable", "select 1", check=False)
    assert refused.returncode != 0 and "SSL required" in refused.stderr


def test_server_connections_go_through_postgres_unix_socket(plain_pg, poolers):
    d = poolers(host=plain_pg.dir)  # [databases] app = host=<the directory of PostgreSQL's socket>
    with psycopg.connect(f"host=127.0.0.1 port={d.port} dbname=app user=postgres", autocommit=True) as c:
        # inet_server_addr() is NULL on a Unix-socket connection.
        assert c.execute("select inet_server_addr() is null").fetchone()[0] is True
        with psycopg.connect(f"host=127.0.0.1 port={d.port} dbname=pgcohere user=admin", autocommit=True) as a:
            cur = a.execute("SHOW SERVERS")
            names = [col.name for col in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
    assert rows and all(r["addr"] == plain_pg.dir and r["port"] == plain_pg.port and r["tls"] == "" for r in rows)
