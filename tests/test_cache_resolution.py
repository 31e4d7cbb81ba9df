"""The query cache's name resolution and row tags (daemon/src/cache/, through the
pgcohere_cache_explain tool) compared with what a real PostgreSQL 15 does with the same
statement: the relations it resolves (the dependencies of a view made from the statement,
under the same search_path and role) and the values of the rows a row-tagged statement
returns. Needs no pgcohere install (a cluster without the extension)."""
import os
import subprocess

import pytest

from harness.servers import REPO, PgCluster, temp_dir

EXPLAIN = os.path.join(REPO, "build", "daemon", "pgcohere_cache_explain")
DEFAULT_PATH = '"$user", public'

SETUP = """
CREATE ROLE alice; CREATE ROLE app;
CREATE SCHEMA app; CREATE SCHEMA archive; CREATE SCHEMA alice; CREATE SCHEMA "App"; CREATE SCHEMA probe;
CREATE TABLE public.messages (id int8, conversation_id int8, author uuid, body text, n int2);
CREATE TABLE archive.messages (LIKE public.messages);
CREATE TABLE public.users (uid int4, name text, nick varchar(20));
CREATE TABLE app.users (LIKE public.users);
CREATE TABLE alice.users (LIKE public.users);
CREATE TABLE "App".users (LIKE public.users);
CREATE TABLE public.b (x int);
CREATE VIEW public.v_messages AS SELECT * FROM public.messages;
GRANT USAGE, CREATE ON SCHEMA probe TO PUBLIC;
GRANT USAGE ON SCHEMA app, archive, alice, "App" TO PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA public, app, archive, alice, "App" TO PUBLIC;
INSERT INTO public.messages VALUES
  (1, 1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'hi', 1), (2, 3, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'yo', 2),
  (3, 3, '00000000-0000-0000-0000-000000000001', 'x', 3), (4, 3000000000, NULL, 'big', -4), (5, 2, NULL, 'two', 5);
INSERT INTO alice.users VALUES (1, 'o''k', 'ok'), (2, 'bob', 'b'), (3, 'zoë', 'z');
INSERT INTO public.b VALUES (1), (2);
"""

CACHED = {("public", "messages"): ("conversation_id,author", "int8,uuid"),
          ("public", "users"): ("name", "text"), ("app", "users"): ("name", "text"),
          ("alice", "users"): ("name,nick", "text,varchar"), ("App", "users"): ("name", "text"),
          ("public", "b"): ("x", "int4")}


@pytest.fixture(scope="module")
def pg_probe():
    if not os.path.exists(EXPLAIN):
        pytest.skip("build/daemon/pgcohere_cache_explain is not built")
    d = temp_dir("pgcohere-resolve-")
    cluster = PgCluster(os.path.join(d, "pg"), preload=False).init().start()
    with cluster.connect() as c:
        c.execute(SETUP)
        rows = c.execute(
            "SELECT c.oid::int8, n.nspname::text, c.relname::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname IN ('messages', 'users', 'b', 'v_messages') AND c.relkind IN ('r', 'v')").fetchall()
    lines = []
    for oid, nsp, rel in rows:
        by, types = CACHED.get((nsp, rel), ("", ""))
        cached = "t" if (nsp, rel) in CACHED else "f"
        lines.append("\t".join([str(oid), nsp, rel, cached, "", by, types, "f", "f"]))
    catalog = os.path.join(d, "catalog.tsv")
    with open(catalog, "w") as f:
        f.write("\n".join(lines) + "\n")
    cluster.catalog_path = catalog
    cluster.oids = {(nsp, rel): oid for oid, nsp, rel in rows}
    yield cluster
    cluster.remove()


def explain(pg, sql, search_path=DEFAULT_PATH, role="alice"):
    out = subprocess.run([EXPLAIN, pg.catalog_path, search_path, role], input=sql, capture_output=True,
                         text=True, check=True).stdout
    fields = dict(line.split(" ", 1) if " " in line else (line, "") for line in out.splitlines())
    return {"cacheable": fields["cacheable"] == "1", "reason": fields["reason"],
            "relids": [int(x) for x in fields["relids"].split()], "tags": fields["tags"].split()}


def postgres_relations(pg, sql, search_path=DEFAULT_PATH, role="alice"):
    """The relations PostgreSQL resolves the statement to: a view's dependencies."""
    with pg.connect() as c:
        c.execute(f"SET ROLE {role}")
        c.execute(f"SET search_path = {search_path}")
        c.execute("DROP VIEW IF EXISTS probe.v")
        c.execute(f"CREATE VIEW probe.v AS {sql}")
        rows = c.execute(
            "SELECT DISTINCT d.refobjid::int8 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
            "WHERE d.classid = 'pg_rewrite'::regclass AND r.ev_class = 'probe.v'::regclass "
            "AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> 'probe.v'::regclass").fetchall()
        c.execute("DROP VIEW probe.v")
    return {r[0] for r in rows}


# (statement, search_path, role, cacheable, the relations PostgreSQL reads by (schema, name))
RESOLUTION_CASES = [
    ("SELECT * FROM messages", DEFAULT_PATH, "alice", True, {("public", "messages")}),
    ("SELECT * FROM users", DEFAULT_PATH, "alice", True, {("alice", "users")}),
    ("SELECT * FROM users", DEFAULT_PATH, "app", True, {("app", "users")}),
    ("SELECT * FROM users", "app, public", "alice", True, {("app", "users")}),
    ("SELECT * FROM users", "APP, public", "alice", True, {("app", "users")}),
    ("SELECT * FROM users", '"App", public', "alice", True, {("App", "users")}),
    ("SELECT * FROM users", "public", "alice", True, {("public", "users")}),
    ("SELECT * FROM messages", "archive, public", "alice", False, {("archive", "messages")}),
    ("SELECT * FROM v_messages", DEFAULT_PATH, "alice", False, {("public", "v_messages")}),
    ("WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS y) SELECT * FROM a", DEFAULT_PATH, "alice", True,
     {("public", "b")}),
    ("WITH RECURSIVE a AS (SELECT x FROM b UNION ALL SELECT x + 1 FROM a WHERE x < 3) SELECT * FROM a",
     DEFAULT_PATH, "alice", True, {("public", "b")}),
    ("SELECT * FROM (WITH messages AS (SELECT 1 AS z) SELECT * FROM messages) s, b", DEFAULT_PATH, "alice", True,
     {("public", "b")}),
    ("SELECT id FROM messages WHERE conversation_id IN (SELECT uid FROM users) AND EXISTS (SELECT 1 FROM public.b)",
     DEFAULT_PATH, "alice", True, {("public", "messages"), ("alice", "users"), ("public", "b")}),
    ("SELECT m.id, u.name FROM public.messages m JOIN app.users u ON u.uid = m.n", DEFAULT_PATH, "alice", True,
     {("public", "messages"), ("app", "users")}),
    ("SELECT x FROM b UNION SELECT uid FROM users", "app, public", "alice", True, {("public", "b"), ("app", "users")}),
]


@pytest.mark.parametrize("sql,search_path,role,cacheable,expected", RESOLUTION_CASES)
def test_cache_resolves_relations_as_postgres_does(pg_probe, sql, search_path, role, cacheable, expected):
    want = {pg_probe.oids[k] for k in expected}
    assert postgres_relations(pg_probe, sql, search_path, role) == want  # the case itself is right
    got = explain(pg_probe, sql, search_path, role)
    assert got["cacheable"] == cacheable, got["reason"]
    if cacheable:
        assert set(got["relids"]) == want


ROW_TAG_CASES = [
    "SELECT * FROM messages WHERE conversation_id = ' +0003 '",
    "SELECT * FROM messages WHERE conversation_id = 3000000000",
    "SELECT * FROM messages WHERE conversation_id = '2'::int8 AND body <> 'x'",
    "SELECT * FROM messages m WHERE m.author = '{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}'",
    "SELECT * FROM messages WHERE author = 'a0eebc999c0b4ef8bb6d6bb9bd380a11'::uuid",
    "SELECT * FROM users WHERE name = E'o\\'k'",
    "SELECT * FROM users WHERE name = U&'zo\\00eb'",
    "SELECT * FROM users u WHERE 'bob' = u.name",
    "SELECT * FROM users WHERE nick = 'b'",
]


@pytest.mark.parametrize("sql", ROW_TAG_CASES)
def test_row_tag_values_are_the_text_postgres_prints_for_the_rows_returned(pg_probe, sql):
    got = explain(pg_probe, sql)
    assert got["cacheable"], got["reason"]
    rows = [t for t in got["tags"] if t.startswith("row:")]
    assert len(rows) == 1, got["tags"]
    oid, rest = rows[0][len("row:"):].split(":", 1)
    column, value = rest.split("=", 1)
    assert f"all:{oid}" in got["tags"]
    with pg_probe.connect() as c:
        c.execute("SET ROLE alice")
        total, other = c.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {column}::text IS DISTINCT FROM %s) FROM ({sql}) s",
            (value,)).fetchone()
    assert total > 0, "the statement returns no row: the case proves nothing"
    assert other == 0, f"rows with {column} other than {value!r}"
