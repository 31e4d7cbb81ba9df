"""What the extension publishes for the query cache (docs/cache.md, docs/protocol.md), as
a LISTENer receives it, in preload mode (the session cluster: ring + publisher worker)
and in direct mode (a cluster of our own without preload): tbl:/row:/all: tags of
committed writes only (rollbacks and rolled-back savepoints publish nothing), OLD and
NEW values of a changed `by` column, TRUNCATE, partitions, coarsening past
max_keys_per_xact, COPY, and `c <oid>` with tbl:/all: for policy changes, DDL, DROP and a
shadowing relation; policies and triggers survive pg_dump/restore. Payloads are parsed and their signatures checked in Python."""
import os
import subprocess

import pytest

from harness.servers import PgCluster
from test_extension_publish import PG_BIN, Listener


@pytest.fixture(scope="module")
def direct_cluster(workdir, secret_file):
    cluster = PgCluster(os.path.join(workdir, "pg-cache-direct"), preload=False, secret_file=secret_file).init().start()
    yield cluster
    cluster.remove()


@pytest.fixture(params=["preload", "direct"])
def stream(request, pg, new_db, secret):
    """(cluster, dbname, listener) for a fresh database with the extension."""
    if request.param == "preload":
        cluster, dbname = pg, new_db
    else:
        cluster, dbname = request.getfixturevalue("direct_cluster"), new_db
        with cluster.connect() as c:
            c.execute(f"CREATE DATABASE {dbname}")
        with cluster.connect(dbname) as c:
            c.execute("CREATE EXTENSION pgcohere")
    listener = Listener(cluster, dbname, secret)
    yield cluster, dbname, listener
    listener.close()
    if request.param == "direct":
        with cluster.connect() as c:
            c.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


class Writer:
    """Runs writes and returns the entries published for them: each step ends with a
    marker key invalidated in its own transaction; payloads arrive in commit order, so
    everything before the marker belongs to the step."""

    def __init__(self, cluster, dbname, listener):
        self.conn = cluster.connect(dbname)
        self.conn.execute("SET pgcohere.warn_undeclared_keys = off")
        self.listener = listener
        self.steps = 0

    def oid(self, name):
        return self.conn.execute("SELECT %s::regclass::oid", (name,)).fetchone()[0]

    def step(self, *statements):
        before = len(self.listener.payloads)
        for sql in statements:
            self.conn.execute(sql)
        return self.flush(before)

    def flush(self, before):
        self.steps += 1
        marker = f"marker:{self.steps}"
        self.conn.execute("SELECT pgcohere.invalidate(%s)", (marker,))
        self.listener.wait(lambda ps: any(marker in p.of("k") for p in ps), marker)
        payloads = self.listener.payloads[before:]
        assert all(p.signature_ok for p in payloads)
        entries = {(k, text) for p in payloads for k, text in p.entries}
        return entries - {("k", marker)}


def policy_change(oid):
    return {("c", str(oid)), ("t", f"tbl:{oid}"), ("t", f"all:{oid}")}


def test_committed_writes_publish_tbl_and_old_and_new_row_tags(stream):
    w = Writer(*stream)
    w.conn.execute("CREATE TABLE messages (id int PRIMARY KEY, conversation_id int, body text)")
    o = w.oid("messages")
    assert w.step("SELECT pgcohere.cache_table('messages', ttl => '30 s', \"by\" => ARRAY['conversation_id'])") \
        == policy_change(o)
    assert w.step("INSERT INTO messages VALUES (1, 42, 'a'), (2, NULL, 'b')") == {
        ("t", f"tbl:{o}"), ("t", f"row:{o}:conversation_id=42")}
    assert w.step("UPDATE messages SET conversation_id = 43 WHERE id = 1") == {
        ("t", f"tbl:{o}"), ("t", f"row:{o}:conversation_id=42"), ("t", f"row:{o}:conversation_id=43")}
    assert w.step("DELETE FROM messages WHERE id = 1") == {("t", f"tbl:{o}"), ("t", f"row:{o}:conversation_id=43")}
    with w.conn.cursor() as cur:
        before = len(w.listener.payloads)
        with cur.copy("COPY messages (id, conversation_id) FROM STDIN") as copy:
            copy.write_row((5, 500))
        assert w.flush(before) == {("t", f"tbl:{o}"), ("t", f"row:{o}:conversation_id=500")}
    assert w.step("TRUNCATE messages") == {("t", f"tbl:{o}"), ("t", f"all:{o}")}


def test_rolled_back_transactions_and_savepoints_publish_nothing(stream):
    w = Writer(*stream)
    w.conn.execute("CREATE TABLE messages (id int PRIMARY KEY, conversation_id int)")
    w.step("SELECT pgcohere.cache_table('messages', \"by\" => ARRAY['conversation_id'])")
    o = w.oid("messages")
    assert w.step("BEGIN", "INSERT INTO messages VALUES (1, 99)", "ROLLBACK") == set()
    assert w.step("BEGIN", "SELECT pgcohere.uncache_table('messages')", "ROLLBACK") == set()
    assert w.step("BEGIN", "INSERT INTO messages VALUES (3, 50)", "SAVEPOINT s",
                  "INSERT INTO messages VALUES (4, 77)", "ROLLBACK TO SAVEPOINT s", "COMMIT") == {
        ("t", f"tbl:{o}"), ("t", f"row:{o}:conversation_id=50")}


def test_a_write_to_a_partition_publishes_the_parents_tags(stream):
    w = Writer(*stream)
    w.conn.execute("CREATE TABLE events (id int, kind text) PARTITION BY LIST (kind)")
    w.conn.execute("CREATE TABLE events_a PARTITION OF events FOR VALUES IN ('a', 'b')")
    w.step("SELECT pgcohere.cache_table('events', \"by\" => ARRAY['kind'])")
    parent = w.oid("events")
    assert w.step("INSERT INTO events_a VALUES (1, 'a')") == {("t", f"tbl:{parent}"), ("t", f"row:{parent}:kind=a")}
    assert w.step("UPDATE events SET kind = 'b'") == {
        ("t", f"tbl:{parent}"), ("t", f"row:{parent}:kind=a"), ("t", f"row:{parent}:kind=b")}
    assert w.step("TRUNCATE events_a") == {("t", f"tbl:{parent}"), ("t", f"all:{parent}")}
    assert w.step("DROP TABLE events_a") == {("t", f"tbl:{parent}"), ("t", f"all:{parent}")}


def test_past_max_keys_per_xact_row_tags_coarsen_to_tbl_and_all(stream):
    w = Writer(*stream)
    w.conn.execute("CREATE TABLE messages (id int PRIMARY KEY, conversation_id int)")
    w.step("SELECT pgcohere.cache_table('messages', \"by\" => ARRAY['conversation_id'])")
    o = w.oid("messages")
    w.conn.execute("SET pgcohere.max_keys_per_xact = 5")
    entries = w.step("INSERT INTO messages SELECT g, g FROM generate_series(1, 100) g")
    w.conn.execute("RESET pgcohere.max_keys_per_xact")
    rows = {text for kind, text in entries if text.startswith(f"row:{o}:")}
    assert {("t", f"tbl:{o}"), ("t", f"all:{o}")} <= entries
    assert 0 < len(rows) <= 5, "the set stops growing; all:<oid> covers the rows left out"


def test_policy_changes_ddl_drop_and_shadowing_publish_c_entries(stream):
    w = Writer(*stream)
    w.conn.execute("CREATE TABLE users (id int PRIMARY KEY, name text)")
    o = w.oid("users")
    assert w.step("SELECT pgcohere.cache_table('users')") == policy_change(o)
    assert w.step("SELECT pgcohere.cache_table('users', ttl => '1 min')") == policy_change(o)
    assert w.step("ALTER TABLE users ALTER COLUMN name TYPE varchar(40)") == policy_change(o)
    assert w.step("ALTER TABLE users RENAME TO members") == policy_change(o)
    assert w.step("CREATE SCHEMA other", "CREATE TABLE other.members (id int)") == policy_change(o)
    assert w.step("CREATE TABLE unrelated (id int)") == set()
    assert w.step("SELECT pgcohere.uncache_table('members')") == policy_change(o)
    assert w.step("INSERT INTO members VALUES (1, 'no policy, no tags')") == set()
    w.step("SELECT pgcohere.cache_table('members')")
    assert w.step("DROP TABLE members") == policy_change(o)
    rows = w.conn.execute("SELECT count(*) FROM pgcohere.cache_policies").fetchone()[0]
    assert rows == 0


def test_pg_dump_and_restore_keep_cache_policies_and_their_triggers(pg, new_db, secret):
    with pg.connect(new_db) as c:
        c.execute("CREATE TABLE messages (id int PRIMARY KEY, conversation_id int)")
        c.execute("CREATE TABLE events (id int, kind text) PARTITION BY LIST (kind)")
        c.execute("CREATE TABLE events_a PARTITION OF events FOR VALUES IN ('a')")
        c.execute("SELECT pgcohere.cache_table('messages', ttl => '30 s', \"by\" => ARRAY['conversation_id'])")
        c.execute("SELECT pgcohere.cache_table('events')")
    target = new_db + "_restored"
    with pg.connect() as c:
        c.execute(f"CREATE DATABASE {target}")
    try:
        dump = subprocess.run([f"{PG_BIN}/pg_dump", "-d", pg.dsn(new_db)], check=True, capture_output=True).stdout
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg.dsn(target)], input=dump,
                       check=True, capture_output=True)
        with pg.connect(target) as c:
            policies = c.execute("SELECT tbl::text, ttl::text, \"by\" FROM pgcohere.cache_policies ORDER BY 1").fetchall()
            catalog = c.execute("SELECT relname, cached, ttl_ms, by_types FROM pgcohere.cache_catalog() "
                                "ORDER BY 1").fetchall()
        assert policies == [("events", None, None), ("messages", "00:00:30", ["conversation_id"])]
        assert catalog == [("events", True, None, None), ("messages", True, 30000, ["int4"])]
        listener = Listener(pg, target, secret)
        try:
            w = Writer(pg, target, listener)
            o, parent = w.oid("messages"), w.oid("events")
            assert w.step("INSERT INTO messages VALUES (1, 42)") == {
                ("t", f"tbl:{o}"), ("t", f"row:{o}:conversation_id=42")}
            assert w.step("INSERT INTO events VALUES (1, 'a')") == {("t", f"tbl:{parent}")}
            assert w.step("TRUNCATE events_a") == {("t", f"tbl:{parent}"), ("t", f"all:{parent}")}
            w.conn.close()
        finally:
            listener.close()
    finally:
        with pg.connect() as c:
            c.execute(f"DROP DATABASE IF EXISTS {target} WITH (FORCE)")
