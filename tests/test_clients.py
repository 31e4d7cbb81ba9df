"""Real client libraries and tools through pgcohered in transaction mode: psql, pgbench
(simple, extended, prepared), psycopg 3 (server-side prepared statements), asyncpg (its
default statement cache) and node-postgres (named queries)."""
import asyncio
import os
import re
import shutil
import subprocess

import psycopg
import pytest

from pool_helpers import dsn, start_pooler

HERE = os.path.dirname(os.path.abspath(__file__))


def pgbench(args, d, db, **kw):
    return subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(d.port), "-U", "postgres", *args, db],
                          capture_output=True, text=True, timeout=120, **kw)


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench(daemon_factory, new_db, pg, mode):
    subprocess.run(["pgbench", "-i", "-s", "1", "-q", "-d", pg.dsn(new_db)], check=True, capture_output=True)
    d = start_pooler(daemon_factory, new_db, default_pool_size=3)
    # One thread per client: pgbench prepares each statement synchronously on first use,
    # which with one thread for all clients deadlocks against any transaction pooler once
    # a client holds a server inside BEGIN ... END and another blocks in PQprepare.
    out = pgbench(["-c", "8", "-j", "8", "-t", "200", "-M", mode], d, new_db)
    assert out.returncode == 0, out.stderr
    assert re.search(r"number of transactions actually processed: 1600/1600", out.stdout), out.stdout
    assert "number of failed transactions: 0" in out.stdout


def test_psycopg_prepared_statements_across_server_connections(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=2, max_prepared_statements=3)
    conns = [psycopg.connect(dsn(d, new_db), autocommit=True, prepare_threshold=0) for _ in range(5)]
    try:
        for rnd in range(20):
            for i, c in enumerate(conns):
                # more distinct statements than max_prepared_statements: eviction and re-prepare
                q = f"select %s::int + {i % 4}"
                assert c.execute(q, (rnd,)).fetchone()[0] == rnd + i % 4
        c = conns[0]
        with c.transaction():
            c.execute("create temp table pt(x int)")
            c.execute("insert into pt values (%s)", (1,))
            assert c.execute("select count(*) from pt where x = %s", (1,)).fetchone()[0] == 1
        # DROP makes psycopg send DEALLOCATE ALL and reuse its names (_pg3_0, ...) for
        # other queries: the pooler must forget the client's names and the server's copies
        c.execute("create table dd(x int)")
        c.execute("drop table dd")
        assert c.execute("select %s::text || 'new'", ("a",)).fetchone()[0] == "anew"
        for other in conns[1:]:
            assert other.execute("select %s::int + 1", (1,)).fetchone()[0] == 2
        # a statement that fails to prepare leaves the connection usable
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("select * from no_such_table where x = %s", (1,))
        assert c.execute("select %s::int + 1", (1,)).fetchone()[0] == 2
    finally:
        for c in conns:
            c.close()


def test_psycopg_statement_cache_rotation(daemon_factory, new_db):
    # Past prepared_max, psycopg sends SQL "DEALLOCATE _pg3_N" for protocol-level names.
    d = start_pooler(daemon_factory, new_db, default_pool_size=2)
    with psycopg.connect(dsn(d, new_db), autocommit=True, prepare_threshold=0) as c:
        c.prepared_max = 2
        for rnd in range(3):
            for i in range(6):
                assert c.execute(f"select %s::int + {i}", (rnd,)).fetchone()[0] == rnd + i
        with c.transaction():
            for i in range(6):
                assert c.execute(f"select %s::int * {i}", (2,)).fetchone()[0] == 2 * i


def test_asyncpg_default_statement_cache(daemon_factory, new_db):
    asyncpg = pytest.importorskip("asyncpg")
    d = start_pooler(daemon_factory, new_db, default_pool_size=2)

    async def run():
        conns = [await asyncpg.connect(host="127.0.0.1", port=d.port, user="postgres", database=new_db)
                 for _ in range(6)]
        try:
            for rnd in range(20):
                results = await asyncio.gather(*[c.fetchval("select $1::int * 2", rnd * 10 + i)
                                                 for i, c in enumerate(conns)])
                assert results == [2 * (rnd * 10 + i) for i in range(6)]
                rows = await conns[rnd % 6].fetch("select g from generate_series(1, $1) g", 5)
                assert [r["g"] for r in rows] == [1, 2, 3, 4, 5]
            async with conns[0].transaction():
                await conns[0].execute("create temp table at(x int)")
                await conns[0].executemany("insert into at values ($1)", [(i,) for i in range(10)])
                assert await conns[0].fetchval("select count(*) from at") == 10
            pool = await asyncpg.create_pool(host="127.0.0.1", port=d.port, user="postgres", database=new_db,
                                             min_size=2, max_size=4)
            async with pool.acquire() as c:
                assert await c.fetchval("select $1::text", "pooled") == "pooled"
            await pool.close()
        finally:
            for c in conns:
                await c.close()

    asyncio.run(run())


def test_node_postgres_named_queries(daemon_factory, new_db):
    if shutil.which("node") is None:
        pytest.skip("node not installed")
    if not os.path.isdir(os.path.join(HERE, "node", "node_modules", "pg")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=os.path.join(HERE, "node"), check=True,
                       capture_output=True, timeout=300)
    d = start_pooler(daemon_factory, new_db, default_pool_size=2)
    out = subprocess.run(["node", os.path.join(HERE, "node", "named_queries.js"), str(d.port), new_db],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.strip() == "ok"


def test_pgbench_new_connection_per_transaction(daemon_factory, new_db, pg):
    subprocess.run(["pgbench", "-i", "-s", "1", "-q", "-d", pg.dsn(new_db)], check=True, capture_output=True)
    d = start_pooler(daemon_factory, new_db, default_pool_size=2)
    out = pgbench(["-C", "-S", "-c", "4", "-t", "50"], d, new_db)
    assert out.returncode == 0, out.stderr
    assert "number of failed transactions: 0" in out.stdout
