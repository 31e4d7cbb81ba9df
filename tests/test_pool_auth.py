"""Client authentication at the pooler against an auth_file (PgBouncer's userlist.txt):
md5 and scram-sha-256, right and wrong passwords; passwords never reach the log."""
import hashlib
import os

import psycopg
import pytest

from pool_helpers import dsn, start_pooler

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-2"}


@pytest.fixture
def users_db(pg, new_db, workdir):
    with pg.connect() as c:
        for user in PASSWORDS:
            c.execute(f"drop role if exists {user}")
            c.execute(f"create role {user} login")
    path = os.path.join(workdir, f"userlist-{new_db}.txt")
    md5 = "md5" + hashlib.md5((PASSWORDS["alice"] + "alice").encode()).hexdigest()
    with open(path, "w") as f:
        f.write(f'"alice" "{md5}"\n"bob" "{PASSWORDS["bob"]}"\n')
    return new_db, path


# The shared test config's [databases] entry forces user=postgres on the server side, so
# every successful login runs as postgres: the check here is the pooler's own password check.
def login(d, db, user, password):
    with psycopg.connect(dsn(d, db, user=user, password=password), autocommit=True) as c:
        return c.execute("select current_user").fetchone()[0]


@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256"])
def test_password_auth(daemon_factory, users_db, auth_type):
    db, userlist = users_db
    d = start_pooler(daemon_factory, db, auth_type=auth_type, auth_file=userlist)
    if auth_type == "md5":
        assert login(d, db, "alice", PASSWORDS["alice"]) == "postgres"
    assert login(d, db, "bob", PASSWORDS["bob"]) == "postgres"
    for user in ("alice", "bob", "nobody"):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            login(d, db, user, "wrong")
    log = d.log()
    for pw in PASSWORDS.values():
        assert pw not in log


def test_scram_client_with_md5_auth_type_for_scram_capable_entry(daemon_factory, users_db):
    # PgBouncer: with auth_type md5, a plain-text auth_file password also serves md5 clients
    db, userlist = users_db
    d = start_pooler(daemon_factory, db, auth_type="md5", auth_file=userlist)
    assert login(d, db, "bob", PASSWORDS["bob"]) == "postgres"
