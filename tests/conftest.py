"""Shared fixtures: one private PostgreSQL 15 cluster (pgcohere preloaded) and one Redis
per test session, a fresh database per test, and pgcohered daemons on demand."""
import itertools
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness.servers import (Daemon, PgCluster, RedisServer, daemon_config, free_port,  # noqa: E402
                             make_secret_file, temp_dir)

_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def workdir():
    d = temp_dir("pgcohere-test-")
    yield d
    if not os.environ.get("PGCOHERE_KEEP_TEST_DIR"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def secret_file(workdir):
    return make_secret_file(workdir)


@pytest.fixture(scope="session")
def secret(secret_file):
    with open(secret_file, "rb") as f:
        return f.read().rstrip()


@pytest.fixture(scope="session")
def pg(workdir, secret_file):
    cluster = PgCluster(os.path.join(workdir, "pg"), preload=True, secret_file=secret_file).init().start()
    yield cluster
    cluster.remove()


@pytest.fixture(scope="session")
def redis_srv(workdir):
    server = RedisServer(os.path.join(workdir, "redis")).start()
    yield server
    server.stop()


@pytest.fixture
def new_db(pg):
    """A fresh database with CREATE EXTENSION pgcohere; its name."""
    name = f"t{os.getpid()}_{next(_db_counter)}"
    with pg.connect() as c:
        c.execute(f"CREATE DATABASE {name}")
    with pg.connect(name) as c:
        c.execute("CREATE EXTENSION pgcohere")
    yield name
    with pg.connect() as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def daemon_factory(workdir, pg, redis_srv, secret_file):
    """daemon_factory(databases=[...], extra_ini="", redis_url=None, start=True) -> Daemon."""
    started = []

    def make(databases=(), extra_ini="", redis_url=None, start=True):
        port, metrics_port = free_port(), free_port()
        text = daemon_config(port, pg, list(databases), redis_url or redis_srv.url, secret_file,
                             metrics_port, extra_ini)
        d = Daemon(os.path.join(workdir, "daemon"), text, port)
        d.metrics_port = metrics_port
        started.append(d)
        return d.start() if start else d

    yield make
    for d in started:
        d.stop()


@pytest.fixture(autouse=True)
def stop_auth_daemons():
    """Stops the daemons tests started with auth_cluster.start_daemon() (no leftover
    pgcohered once a test is done)."""
    yield
    import auth_cluster
    while auth_cluster.STARTED:
        auth_cluster.STARTED.pop().stop()
