"""auth_type = hba: auth_hba_file (PgBouncer's subset of pg_hba.conf) picks each
connection's method by database, user and address; users come from auth_file and
auth_query alike. A file outside the subset stops the daemon (and a reload) with its
file:line."""
import os
import signal
import subprocess

import psycopg
import pytest

from auth_cluster import AUTH_QUERY, PASSWORDS, current_user, make_cluster, start_daemon, write_userlist
from harness.servers import DAEMON_BIN, wait_until

RULES = """\
# first match wins
host app     md5_user     127.0.0.1/32  md5
host all     scram_user   127.0.0.1/32  password
host other   pgc_auth     127.0.0.1/32  trust
host app     pgc_auth     127.0.0.1/32  reject
host "all"   all          127.0.0.1/32  trust
host all     admin        127.0.0.0/8   scram-sha-256
"""


@pytest.fixture(scope="module")
def apg(workdir):
    pg = make_cluster(os.path.join(workdir, "hbapg"))
    yield pg
    pg.remove()


def hba_file(workdir, text, name="pg_hba.conf"):
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def start(workdir, apg, rules=RULES):
    userlist = write_userlist(workdir, {"pgc_auth": PASSWORDS["pgc_auth"], "admin": PASSWORDS["admin"]})
    return start_daemon(workdir, apg, auth_type="hba", auth_hba_file=hba_file(workdir, rules),
                        auth_file=userlist, auth_user="pgc_auth", auth_query=AUTH_QUERY)


def test_each_connection_gets_the_method_of_the_first_matching_rule(workdir, apg):
    d = start(workdir, apg)
    assert current_user(d, "app", "md5_user", PASSWORDS["md5_user"]) == "md5_user"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        current_user(d, "app", "md5_user", "wrong")
    # `password` with a SCRAM secret runs SCRAM: the server login needs its key.
    assert current_user(d, "app", "scram_user", PASSWORDS["scram_user"]) == "scram_user"
    assert current_user(d, "other", "pgc_auth", "anything") == "pgc_auth"  # trust
    with pytest.raises(psycopg.OperationalError,
                       match='pg_hba.conf rejects connection for host "127.0.0.1", user "pgc_auth", database "app"'):
        current_user(d, "app", "pgc_auth", PASSWORDS["pgc_auth"])
    # "all" in quotes is a database named all, not the keyword: md5_user has no rule for other.
    with pytest.raises(psycopg.OperationalError,
                       match='no pg_hba.conf entry for host "127.0.0.1", user "md5_user", database "other"'):
        current_user(d, "other", "md5_user", PASSWORDS["md5_user"])
    # The console is a database like any other for the rules.
    with psycopg.connect(f"host=127.0.0.1 port={d.port} dbname=pgbouncer user=admin password={PASSWORDS['admin']}",
                         autocommit=True) as c:
        assert c.execute("SHOW VERSION").fetchone()


def test_a_file_outside_the_subset_is_refused_with_its_line(workdir, apg):
    bad = hba_file(workdir, "host all all 127.0.0.1/32 md5\nhost all +staff 127.0.0.1/32 md5\n", "bad_hba.conf")
    ini = os.path.join(workdir, "bad-hba.ini")
    with open(ini, "w") as f:
        f.write(f"[databases]\napp = host=127.0.0.1 port={apg.port}\n[pgcohered]\nauth_type = hba\n"
                f"auth_hba_file = {bad}\n[invalidation]\nenabled = 0\n")
    out = subprocess.run([DAEMON_BIN, "--check", ini], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert f"{bad}:2: group membership (\"+staff\") is not supported" in out.stderr


def test_a_reload_with_a_broken_file_keeps_the_rules_in_force(workdir, apg):
    d = start(workdir, apg)
    path = os.path.join(workdir, "pg_hba.conf")
    with open(path, "w") as f:
        f.write("host all all 127.0.0.1/32 ident\n")
    d.kill(signal.SIGHUP)
    wait_until(lambda: "reload refused" in d.log(), timeout=10, what="the refused reload")
    assert "pg_hba.conf:1: authentication method \"ident\" is not supported" in d.log()
    assert current_user(d, "app", "md5_user", PASSWORDS["md5_user"]) == "md5_user"
    # A good file takes effect at the next reload.
    with open(path, "w") as f:
        f.write("host all all 127.0.0.1/32 reject\n")
    d.kill(signal.SIGHUP)
    wait_until(lambda: d.log().count("rule(s)") >= 2, timeout=10, what="the reload")
    with pytest.raises(psycopg.OperationalError, match="pg_hba.conf rejects connection"):
        current_user(d, "app", "md5_user", PASSWORDS["md5_user"])
