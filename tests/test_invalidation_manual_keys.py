"""Keys that only pgcohere.invalidate() publishes, end to end (PostgreSQL with the
extension preloaded, Redis, pgcohered): a resync purges the families declared with
pgcohere.declare_keys(), read from the database at every resync; a key of an undeclared
family stays (the documented limit), and invalidate() warns about it."""
import re

from harness.servers import wait_until
from test_invalidation import gone, inv_daemon  # noqa: F401


def force_resync(pg, d, db):
    """Ends the daemon's LISTEN session (a possible loss): waits until it has listened
    again and its resync is done."""
    log = d.log()
    listens = log.count(f"in database {db} (backend pid")
    resyncs = len(re.findall(rf"invalidation \[{db}\]: resync \([^)]*\) done", log))
    with pg.connect() as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE application_name = 'pgcohered-listen' AND datname = %s", (db,))
    d.wait_listening(db, count=listens + 1)
    d.wait_resyncs(db, resyncs + 1)


def invalidate(pg, db, *keys):
    """Commits pgcohere.invalidate(keys); returns the warnings as (message, hint)."""
    warnings = []

    def on_notice(n):  # the Diagnostic is valid only inside the handler
        if n.severity_nonlocalized == "WARNING":
            warnings.append((n.message_primary, n.message_hint))

    with pg.connect(db) as c:
        c.add_notice_handler(on_notice)
        c.execute("SELECT pgcohere.invalidate(VARIADIC %s)", (list(keys),))
    return warnings


def test_resync_purges_declared_families_and_not_undeclared_ones(pg, new_db, redis_srv, inv_daemon):
    d = inv_daemon([new_db])  # started before the declaration: nothing to reload
    with pg.connect(new_db) as c:
        c.execute("SELECT pgcohere.declare_keys(%s)", (new_db + ":profile:{user_id}",))
    r = redis_srv.client()
    declared, undeclared = f"{new_db}:profile:42", f"{new_db}:session:42"

    # The normal path: each invalidate() commit purges its key. Only the undeclared key warns.
    r.mset({declared: "cached", undeclared: "cached"})
    assert invalidate(pg, new_db, declared) == []
    warnings = invalidate(pg, new_db, undeclared)
    assert len(warnings) == 1
    message, hint = warnings[0]
    assert f'covers key "{undeclared}": a resync cannot purge it' in message
    assert f"pgcohere.declare_keys('{new_db}:session:*')" in hint
    wait_until(lambda: gone(r, declared, undeclared), what="both keys purged by their notifications")

    # Stale values whose invalidations were lost: only a resync can cover them.
    r.mset({declared: "stale", undeclared: "stale"})
    force_resync(pg, d, new_db)
    wait_until(lambda: gone(r, declared), what="the resync purged the declared family")
    assert r.get(undeclared) == b"stale"  # the limit: no rule and no declaration covers it

    # Undeclared again: the next resync leaves the family alone.
    with pg.connect(new_db) as c:
        assert c.execute("SELECT pgcohere.undeclare_keys(%s)", (new_db + ":profile:{user_id}",)).fetchone()[0] == 1
    r.set(declared, "stale")
    force_resync(pg, d, new_db)
    assert r.get(declared) == b"stale"


def test_declared_family_spelled_like_a_table_tag_is_still_purged(pg, new_db, redis_srv, inv_daemon):
    """The daemon skips table tags at a resync (their query-cache entries live under its
    namespace), but a declared family with the same text is a key pattern."""
    table = f"t_{new_db}"
    with pg.connect(new_db) as c:
        c.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
        c.execute("SELECT pgcohere.watch(%s, ARRAY['thing:{id}'])", (table,))
    d = inv_daemon([new_db])
    r = redis_srv.client()
    tag = f"table:public.{table}"
    r.set(tag, "stale")
    force_resync(pg, d, new_db)
    assert r.get(tag) == b"stale"  # a tag only: not a key pattern
    with pg.connect(new_db) as c:
        c.execute("SELECT pgcohere.declare_keys(%s)", (tag,))
    force_resync(pg, d, new_db)
    wait_until(lambda: gone(r, tag), what="the declared family purged although it is spelled like a tag")
