"""The query cache's allow-lists (daemon/src/cache/allow_list.cpp) checked against a real
PostgreSQL 15 catalog: every listed function is IMMUTABLE in every pg_catalog overload it
can be called as, every listed operator is IMMUTABLE except the documented STABLE overloads
(whose inputs are all in the cache key), and every cast type exists with no VOLATILE input
or output function. Needs no pgcohere install (a cluster without the extension)."""
import os
import re

import pytest

from harness.servers import REPO, PgCluster, temp_dir

SOURCE = os.path.join(REPO, "daemon", "src", "cache", "allow_list.cpp")

# Builtin operator overloads that are STABLE, and why that is safe (docs/cache.md, Operators):
# timestamptz arithmetic and cross-type comparisons read TimeZone; textanycat/anytextcat
# call an output function (DateStyle, IntervalStyle, TimeZone, extra_float_digits,
# bytea_output). All are in the key.
STABLE_OPERATORS = {
    ("timestamp with time zone", "+", "interval"), ("interval", "+", "timestamp with time zone"),
    ("timestamp with time zone", "-", "interval"),
    ("text", "||", "anynonarray"), ("anynonarray", "||", "text"),
} | {(left, op, right) for op in ("=", "<>", "<", "<=", ">", ">=")
     for left, right in (("date", "timestamp with time zone"), ("timestamp with time zone", "date"),
                         ("timestamp without time zone", "timestamp with time zone"),
                         ("timestamp with time zone", "timestamp without time zone"))}


def _source():
    with open(SOURCE) as f:
        return f.read()


def allowed_functions():
    return [(m[0], m[1], int(m[2]), int(m[3])) for m in
            re.findall(r'AllowedFunction\{"(\w+)", K::(\w+), (\d+), (\d+)\}', _source())]


def _string_array(name):
    body = re.search(name + r"\{(.*?)\};", _source(), re.S).group(1)
    return re.findall(r'"([^"]+)"', body)


@pytest.fixture(scope="module")
def catalog_pg():
    d = temp_dir("pgcohere-allow-")
    cluster = PgCluster(os.path.join(d, "pg"), preload=False).init().start()
    yield cluster
    cluster.remove()


def test_the_lists_are_found_in_the_source():
    assert len(allowed_functions()) >= 30
    assert "=" in _string_array("kOperators")
    assert "timestamptz" in _string_array("kCastTypes")


def test_every_allowed_function_is_immutable_in_every_callable_overload(catalog_pg):
    kinds = {"scalar": {"f"}, "aggregate": {"a"}, "window": {"w", "a"}}
    for name, kind, lo, hi in allowed_functions():
        rows = catalog_pg.psql(
            "SELECT pronargs, provolatile, prokind, proretset FROM pg_proc "
            f"WHERE pronamespace = 'pg_catalog'::regnamespace AND proname = '{name}' "
            f"AND pronargs BETWEEN {lo} AND {hi}").splitlines()
        assert rows, f"{name} has no pg_catalog overload with {lo}..{hi} arguments"
        for row in rows:
            nargs, volatility, prokind, retset = row.split("|")
            assert volatility == "i", f"{name}({nargs} args) is not IMMUTABLE"
            assert retset == "f", f"{name} returns a set"
            assert prokind in kinds[kind], f"{name} is prokind {prokind}, listed as {kind}"


def test_every_allowed_operator_is_immutable_apart_from_the_documented_stable_overloads(catalog_pg):
    operators = [op for op in _string_array("kOperators") if op != "!="]  # the lexer makes != into <>
    quoted = ",".join("'" + op + "'" for op in operators)
    rows = catalog_pg.psql(
        "SELECT concat_ws(E'\\t', o.oprname, format_type(o.oprleft, NULL), format_type(o.oprright, NULL), "
        "p.provolatile) "
        "FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode "
        f"WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprname IN ({quoted})").splitlines()
    seen = {r.split("\t")[0] for r in rows}
    assert seen == set(operators)
    stable = set()
    for row in rows:
        op, left, right, volatility = row.split("\t")
        assert volatility != "v", f"{left} {op} {right} is VOLATILE"
        if volatility == "s":
            stable.add((left, op, right))
    assert stable == STABLE_OPERATORS


def test_every_cast_type_exists_with_no_volatile_input_or_output(catalog_pg):
    for name in _string_array("kCastTypes"):
        row = catalog_pg.psql(
            "SELECT pi.provolatile::text || po.provolatile::text FROM pg_type t "
            "JOIN pg_proc pi ON pi.oid = t.typinput JOIN pg_proc po ON po.oid = t.typoutput "
            f"WHERE t.typnamespace = 'pg_catalog'::regnamespace AND t.typname = '{name}'")
        assert row, f"type {name} is not in pg_catalog"
        assert "v" not in row, f"type {name} has a VOLATILE input or output function"


def test_the_refused_examples_of_the_docs_are_really_not_immutable(catalog_pg):
    # The names docs/cache.md gives as refused must stay refused for a reason.
    for name in ("now", "nextval", "random", "concat", "to_char", "format", "date_trunc", "extract", "age"):
        vols = catalog_pg.psql(f"SELECT string_agg(DISTINCT provolatile::text, '') FROM pg_proc "
                               f"WHERE pronamespace = 'pg_catalog'::regnamespace AND proname = '{name}'")
        assert vols != "i", f"{name} is IMMUTABLE in every overload: it could be allowed"
    listed = {f[0] for f in allowed_functions()}
    assert not listed & {"now", "nextval", "random", "concat", "to_char", "format", "date_trunc", "extract", "age"}
