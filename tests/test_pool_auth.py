"""Client authentication at the pooler against an auth_file (PgBouncer's userlist.txt):
md5 and scram-sha-256, right and wrong passwords; passwords never reach the log."""
import hashlib
import os
import socket
import struct

import psycopg
import pytest

from pool_helpers import dsn, error_fields, read_messages, start_pooler, startup_packet

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


def test_oversized_message_before_login_is_refused(daemon_factory, users_db):
    """A client that has not authenticated cannot make the pooler buffer a large message
    (max_packet_size only applies after login); other clients are not disturbed."""
    db, userlist = users_db
    d = start_pooler(daemon_factory, db, auth_type="md5", auth_file=userlist)
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(startup_packet("bob", db))
    challenge = read_messages(s, until=b"R")
    assert challenge and challenge[-1][0] == b"R"
    # A PasswordMessage header announcing 1 MB: refused from the header alone.
    s.sendall(b"p" + struct.pack("!i", 1 << 20) + b"x" * 1000)
    reply = read_messages(s, until=b"E")
    assert reply and reply[-1][0] == b"E", reply
    assert error_fields(reply[-1][1])["S"] == "FATAL"
    s.close()
    assert login(d, db, "bob", PASSWORDS["bob"]) == "postgres"
