"""The extension end to end, with psycopg LISTENers: preload mode (shared ring and
per-database publisher workers) and direct mode (NOTIFY at pre-commit), signed payloads
in the docs/protocol.md format, chunking, several databases, an epoch change across a
server restart, ring overflow -> resync, pg_dump/restore of rules, and a secret that
ordinary roles cannot read.

Uses the lead's fixtures (tests/conftest.py: pg, new_db, secret, secret_file) and starts
two extra clusters of its own: one without preload (direct mode) and one with a tiny ring."""
import hashlib
import hmac
import os
import signal
import subprocess
import threading

import psycopg
import psycopg.sql
import pytest

from harness.servers import PgCluster, wait_until

PG_BIN = "/usr/lib/postgresql/15/bin"


# ---- payloads (docs/protocol.md), parsed independently of the extension ----

def unescape(text):
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append({"\\": "\\", "n": "\n", "r": "\r"}[text[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Payload:
    def __init__(self, raw, dbname, secret, pid):
        assert len(raw.encode()) < 8000, "NOTIFY payloads stay under 8000 bytes"
        body, sep, sig = raw.rpartition("sig ")
        assert sep and body.endswith("\n"), raw
        lines = body.split("\n")[:-1]
        magic, epoch, seq, commit_us, *pos = lines[0].split(" ")
        assert magic == "pgc1" and len(pos) <= 1, lines[0]
        self.epoch, self.seq, self.commit_us = int(epoch), int(seq), int(commit_us)
        self.pos = int(pos[0]) if pos else None  # read-your-writes (docs/protocol.md)
        self.entries = [(line[0], unescape(line[2:])) for line in lines[1:]]
        for kind, _ in self.entries:
            assert kind in "kptrc"
        expected = hmac.new(secret, (dbname + "\n" + body).encode(), hashlib.sha256).hexdigest()
        self.signature_ok = sig == expected
        self.pid = pid

    def of(self, kind):
        return {text for k, text in self.entries if k == kind}


class Listener:
    """LISTEN pgcohere on dbname; notifications are read with conn.notifies() in a thread."""

    def __init__(self, cluster, dbname, secret):
        self.dbname, self.secret = dbname, secret
        self.conn = cluster.connect(dbname)
        self.conn.execute("LISTEN pgcohere")
        self.payloads = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            for n in self.conn.notifies():
                with self._lock:
                    self.payloads.append(Payload(n.payload, self.dbname, self.secret, n.pid))
        except Exception:  # connection closed by close()
            pass

    def wait(self, predicate, what, timeout=15):
        def check():
            with self._lock:
                return predicate(list(self.payloads))
        return wait_until(check, timeout=timeout, what=what)

    def keys(self):
        with self._lock:
            return set().union(*[p.of("k") for p in self.payloads]) if self.payloads else set()

    def close(self):
        self.conn.close()


def contains_key(key):
    return lambda ps: any(key in p.of("k") for p in ps)


@pytest.fixture
def listener_factory():
    made = []

    def make(cluster, dbname, secret):
        listener = Listener(cluster, dbname, secret)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()


def setup_table(cluster, dbname, templates=("item:{id}", "owner:{owner}:*")):
    with cluster.connect(dbname) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, owner text)")
        c.execute("SELECT pgcohere.watch('items', %s)", (list(templates),))


def backend_type(cluster, dbname, pid):
    with cluster.connect(dbname) as c:
        row = c.execute("SELECT backend_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        return row[0] if row else None


# ---- preload mode (the session cluster of conftest.py) ----

def test_preload_publishes_committed_work_signed_from_the_worker(pg, new_db, secret, listener_factory):
    setup_table(pg, new_db)
    listener = listener_factory(pg, new_db, secret)
    with pg.connect(new_db) as c:
        writer = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        with c.transaction():
            c.execute("INSERT INTO items VALUES (1, 'ann')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            with c.transaction():
                c.execute("INSERT INTO items VALUES (2, 'rolled-back')")
                c.execute("INSERT INTO items VALUES (1, 'dup')")
        c.execute("UPDATE items SET owner = 'bob' WHERE id = 1")
    listener.wait(lambda ps: len(ps) >= 1 and contains_key("item:1")(ps), "first payload")
    listener.wait(lambda ps: any("owner:bob:*" in p.of("p") for p in ps), "update payload")
    payloads = listener.payloads
    assert all(p.signature_ok for p in payloads)
    assert [p.seq for p in payloads] == list(range(1, len(payloads) + 1))
    assert len({p.epoch for p in payloads}) == 1
    patterns = set().union(*[p.of("p") for p in payloads])
    assert {"owner:ann:*", "owner:bob:*"} <= patterns
    assert not any("rolled-back" in p for p in patterns)
    assert "item:2" not in listener.keys()
    assert all(p.of("t") == {"table:public.items"} for p in payloads)
    # user backends never NOTIFY in preload mode: the publisher worker does
    assert writer not in {p.pid for p in payloads}
    kind = backend_type(pg, new_db, payloads[0].pid)
    assert kind in ("pgcohere publisher", None)  # None: it already exited, idle
    with pg.connect(new_db) as c:
        stats = c.execute("SELECT mode, keys_published, notifications FROM pgcohere.stats()").fetchone()
    assert stats[0] == "preload" and stats[1] > 0 and stats[2] > 0


def test_preload_large_transaction_is_chunked(pg, new_db, secret, listener_factory):
    setup_table(pg, new_db, templates=("item:{id}:" + "x" * 40,))
    listener = listener_factory(pg, new_db, secret)
    with pg.connect(new_db) as c:
        c.execute("INSERT INTO items SELECT g, 'o' FROM generate_series(1, 3000) g")
    want = {f"item:{i}:" + "x" * 40 for i in range(1, 3001)}
    listener.wait(lambda ps: want <= set().union(*[p.of("k") for p in ps]) if ps else False, "all 3000 keys")
    payloads = listener.payloads
    assert len(payloads) > 1
    assert [p.seq for p in payloads] == list(range(1, len(payloads) + 1))
    assert all(p.signature_ok for p in payloads)


def test_preload_several_databases_have_their_own_sequence(pg, secret, listener_factory):
    names = [f"multi_{os.getpid()}_{i}" for i in range(2)]
    with pg.connect() as c:
        for n in names:
            c.execute(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {n}")
    listeners = []
    try:
        for n in names:
            with pg.connect(n) as c:
                c.execute("CREATE EXTENSION pgcohere")
            setup_table(pg, n)
            listeners.append(listener_factory(pg, n, secret))
        for round_ in range(3):
            for i, n in enumerate(names):
                with pg.connect(n) as c:
                    c.execute("INSERT INTO items VALUES (%s, %s)", (round_ * 10 + i, n))
        for i, (n, listener) in enumerate(zip(names, listeners)):
            listener.wait(contains_key(f"item:{20 + i}"), f"last key of {n}")
            ps = listener.payloads
            assert all(p.signature_ok for p in ps), "signed with the database's own name"
            # each database is its own stream: one epoch, seqs 1, 2, 3 whatever the other
            # database published in between (epochs of two databases may be equal or not:
            # the daemon tracks them per database)
            assert len({p.epoch for p in ps}) == 1
            assert [p.seq for p in ps] == list(range(1, len(ps) + 1))
            assert listener.keys() == {f"item:{r * 10 + i}" for r in range(3)}
    finally:
        for listener in listeners:
            listener.close()
        with pg.connect() as c:
            for n in names:
                c.execute(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)")


def test_direct_sessions_in_a_preloaded_cluster_share_the_database_stream(pg, new_db, secret, listener_factory):
    """publish_mode=direct in one session, the ring in another: one epoch, distinct seqs
    (an interleaved second epoch would make the daemon drop payloads as replays)."""
    setup_table(pg, new_db)
    listener = listener_factory(pg, new_db, secret)
    with pg.connect(new_db) as ring_conn, pg.connect(new_db) as direct_conn:
        direct_conn.execute("SET pgcohere.publish_mode = direct")
        for i in range(10):
            (direct_conn if i % 2 else ring_conn).execute("INSERT INTO items VALUES (%s, 'x')", (i,))
    listener.wait(lambda ps: {f"item:{i}" for i in range(10)} <= set().union(*[p.of("k") for p in ps])
                  if ps else False, "all keys")
    ps = listener.payloads
    assert len({p.epoch for p in ps}) == 1
    seqs = [p.seq for p in ps]
    assert len(set(seqs)) == len(seqs)
    assert sorted(seqs) == list(range(1, len(seqs) + 1))
    assert all(p.signature_ok for p in ps)


def test_worker_exits_when_idle_so_drop_database_works(pg, secret, listener_factory):
    name = f"dropme_{os.getpid()}"
    with pg.connect() as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {name}")
    with pg.connect(name) as c:
        c.execute("CREATE EXTENSION pgcohere")
    setup_table(pg, name)
    listener = listener_factory(pg, name, secret)
    with pg.connect(name) as c:
        c.execute("INSERT INTO items VALUES (1, 'x')")
    listener.wait(contains_key("item:1"), "key")
    listener.close()

    def publisher_gone():
        with pg.connect() as c:
            return c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()[0] == 0
    wait_until(publisher_gone, timeout=15, what="idle publisher worker to exit")
    with pg.connect() as c:
        c.execute(f"DROP DATABASE {name}")  # no FORCE needed


def test_epoch_changes_across_server_restart(pg, new_db, secret, listener_factory):
    setup_table(pg, new_db)
    listener = listener_factory(pg, new_db, secret)
    with pg.connect(new_db) as c:
        c.execute("INSERT INTO items VALUES (1, 'before')")
    before = listener.wait(lambda ps: [p for p in ps if "item:1" in p.of("k")], "payload before restart")[0]
    listener.close()
    pg.restart()
    listener = listener_factory(pg, new_db, secret)
    with pg.connect(new_db) as c:
        c.execute("INSERT INTO items VALUES (2, 'after')")
    after = listener.wait(lambda ps: [p for p in ps if "item:2" in p.of("k")], "payload after restart")[0]
    assert after.signature_ok
    assert after.epoch != before.epoch, "a restart may have lost notifications: the epoch must change"
    assert after.seq == 1, "sequence numbers restart with the epoch"


def test_secret_is_hidden_from_ordinary_roles(pg, new_db, secret_file):
    with pg.connect(new_db) as c:
        c.execute("DROP ROLE IF EXISTS pgc_reader")
        c.execute("CREATE ROLE pgc_reader LOGIN")
        assert c.execute("SHOW pgcohere.secret_file").fetchone()[0] == secret_file
    try:
        with pg.connect(new_db, user="pgc_reader") as c:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("SHOW pgcohere.secret_file")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("SELECT current_setting('pgcohere.secret_file')")
            rows = c.execute("SELECT setting FROM pg_settings WHERE name = 'pgcohere.secret_file'").fetchall()
            assert rows == []
            all_settings = c.execute("SELECT string_agg(setting, ',') FROM pg_settings").fetchone()[0]
            assert secret_file not in all_settings
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("SELECT pg_read_file(%s)", (secret_file,))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("SET pgcohere.secret_file = '/tmp/mine'")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("SET pgcohere.enabled = off")
    finally:
        with pg.connect(new_db) as c:
            c.execute("DROP ROLE pgc_reader")


def test_ordinary_role_writes_publish(pg, new_db, secret, listener_factory):
    setup_table(pg, new_db)
    with pg.connect(new_db) as c:
        c.execute("DROP ROLE IF EXISTS pgc_writer")
        c.execute("CREATE ROLE pgc_writer LOGIN")
        c.execute("GRANT ALL ON items TO pgc_writer")
    listener = listener_factory(pg, new_db, secret)
    try:
        with pg.connect(new_db, user="pgc_writer") as c:
            c.execute("INSERT INTO items VALUES (5, 'w')")
            c.execute("SELECT pgcohere.invalidate('manual:1')")
        listener.wait(lambda ps: "item:5" in set().union(*[p.of("k") for p in ps]) and
                      "manual:1" in set().union(*[p.of("k") for p in ps]), "keys of an ordinary role")
    finally:
        with pg.connect(new_db) as c:
            c.execute("DROP OWNED BY pgc_writer")
            c.execute("DROP ROLE pgc_writer")


def test_pg_dump_and_restore_keep_rules_and_triggers(pg, new_db, secret, listener_factory):
    setup_table(pg, new_db)
    with pg.connect(new_db) as c:  # declared key families are kept too
        c.execute("SELECT pgcohere.declare_keys('user:profile:{id}', 'feed:*')")
    target = new_db + "_restored"
    with pg.connect() as c:
        c.execute(f"CREATE DATABASE {target}")
    try:
        dump = subprocess.run([f"{PG_BIN}/pg_dump", "-d", pg.dsn(new_db)], check=True, capture_output=True).stdout
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg.dsn(target)], input=dump,
                       check=True, capture_output=True)
        with pg.connect(target) as c:
            rules = c.execute("SELECT tbl::text, template FROM pgcohere.rules ORDER BY 2").fetchall()
        assert rules == [("items", "item:{id}"), ("items", "owner:{owner}:*")]
        with pg.connect(target) as c:
            declared = c.execute("SELECT pattern FROM pgcohere.declared_keys ORDER BY 1").fetchall()
            patterns = [row[0] for row in c.execute("SELECT * FROM pgcohere.coarse_patterns()")]
        assert declared == [("feed:*",), ("user:profile:{id}",)]
        assert {"feed:*", "user:profile:*"} <= set(patterns)
        listener = listener_factory(pg, target, secret)
        with pg.connect(target) as c:
            c.execute("INSERT INTO items VALUES (42, 'restored')")
        listener.wait(contains_key("item:42"), "key from the restored database")
    finally:
        with pg.connect() as c:
            c.execute(f"DROP DATABASE IF EXISTS {target} WITH (FORCE)")


# ---- clusters of our own: direct mode, and a tiny ring ----

@pytest.fixture(scope="module")
def direct_pg(workdir, secret_file):
    cluster = PgCluster(os.path.join(workdir, "pg-direct"), preload=False, secret_file=secret_file).init().start()
    with cluster.connect() as c:
        c.execute("CREATE EXTENSION pgcohere")
    yield cluster
    cluster.remove()


def test_direct_mode_notifies_from_the_committing_backend(direct_pg, secret, listener_factory):
    setup_table(direct_pg, "postgres")
    try:
        listener = listener_factory(direct_pg, "postgres", secret)
        with direct_pg.connect() as c:
            pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
            c.execute("INSERT INTO items VALUES (1, 'a')")
            with c.transaction():
                c.execute("INSERT INTO items VALUES (2, 'b')")
                c.execute("UPDATE items SET owner = 'c' WHERE id = 2")
            c.execute("BEGIN")
            c.execute("INSERT INTO items VALUES (3, 'rolled back')")
            c.execute("ROLLBACK")
            c.execute("INSERT INTO items SELECT g, 'bulk' FROM generate_series(100, 2100) g")
            mode = c.execute("SELECT mode FROM pgcohere.stats()").fetchone()[0]
        assert mode == "direct"
        want = {"item:1", "item:2"} | {f"item:{g}" for g in range(100, 2101)}
        listener.wait(lambda ps: want <= set().union(*[p.of("k") for p in ps]) if ps else False, "direct keys")
        ps = listener.payloads
        assert all(p.signature_ok for p in ps)
        assert all(p.pid == pid for p in ps), "direct mode: the committing backend NOTIFYs"
        assert "item:3" not in listener.keys()
        seqs = [p.seq for p in ps]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert len(ps) >= 3, "the 2001-row insert is chunked"
    finally:
        with direct_pg.connect() as c:
            c.execute("DROP TABLE items")


def test_direct_mode_seqs_keep_growing_across_drop_and_create_extension(direct_pg, secret, listener_factory):
    """Direct mode's epoch is the server start time, so it survives DROP/CREATE EXTENSION:
    the re-created sequence must continue above every seq published before (else the
    daemon would ignore the new payloads as replays). The same holds for a transaction
    that drops the extension after its changes: same epoch, a seq above the earlier ones."""
    listener = listener_factory(direct_pg, "postgres", secret)
    try:
        setup_table(direct_pg, "postgres")
        with direct_pg.connect() as c:
            c.execute("INSERT INTO items VALUES (1, 'a')")
        before = listener.wait(lambda ps: [p for p in ps if "item:1" in p.of("k")], "first key")[0]
        with direct_pg.connect() as c:
            c.execute("DROP TABLE items")
            c.execute("DROP EXTENSION pgcohere")
            c.execute("CREATE EXTENSION pgcohere")
        setup_table(direct_pg, "postgres")
        with direct_pg.connect() as c:
            c.execute("INSERT INTO items VALUES (2, 'b')")
        after = listener.wait(lambda ps: [p for p in ps if "item:2" in p.of("k")], "key after re-create")[0]
        assert after.signature_ok
        assert after.epoch == before.epoch
        assert after.seq > before.seq, "a re-created extension must not replay old seqs"
        with direct_pg.connect() as c:
            with c.transaction():
                c.execute("INSERT INTO items VALUES (3, 'c')")
                c.execute("DROP EXTENSION pgcohere CASCADE")
        dropped = listener.wait(lambda ps: [p for p in ps if "item:3" in p.of("k")], "key of the dropping xact")[0]
        assert dropped.signature_ok
        assert dropped.epoch == before.epoch, "never a higher epoch that would lock the daemon out"
        assert dropped.seq > after.seq
        with direct_pg.connect() as c:
            c.execute("DROP TABLE items")
            c.execute("CREATE EXTENSION pgcohere")
        setup_table(direct_pg, "postgres")
        with direct_pg.connect() as c:
            c.execute("INSERT INTO items VALUES (4, 'd')")
        last = listener.wait(lambda ps: [p for p in ps if "item:4" in p.of("k")], "key after the second re-create")[0]
        assert last.epoch == before.epoch and last.seq > dropped.seq
    finally:
        with direct_pg.connect() as c:
            c.execute("DROP TABLE IF EXISTS items")
            c.execute("CREATE EXTENSION IF NOT EXISTS pgcohere")


def test_invalidation_during_the_row_trigger_does_not_free_its_rules(direct_pg, secret, listener_factory):
    """The row trigger's type output calls can process invalidation messages (a catalog
    cache miss locks the catalog, which accepts pending invalidations). A relcache
    invalidation of the watched table that arrives there drops the table's cached rules
    while the trigger is still using them: the trigger must keep its own reference.
    Here: enum_out of a value not yet in the cache, right after another session committed
    ALTER TABLE ... SET (fillfactor) on the table (a plpgsql AFTER trigger that fires
    first waits for that commit on an advisory lock)."""
    listener = listener_factory(direct_pg, "postgres", secret)
    with direct_pg.connect() as c, direct_pg.connect() as alter:
        try:
            c.execute("CREATE TYPE kind AS ENUM ('a', 'b', 'c')")
            c.execute("CREATE TABLE things (id int PRIMARY KEY, k kind)")
            c.execute("SELECT pgcohere.watch('things', ARRAY['thing:{k}:{id}'])")
            c.execute("""CREATE FUNCTION things_wait() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.id = 2 THEN PERFORM pg_advisory_xact_lock(4242); END IF;
                    RETURN NULL;
                END $$""")
            # fires before pgcohere_row (AFTER triggers fire in name order)
            c.execute("CREATE TRIGGER a_wait AFTER INSERT ON things FOR EACH ROW EXECUTE FUNCTION things_wait()")
            c.execute("INSERT INTO things VALUES (0, 'c')")  # rules cached in this backend
            writer = c.execute("SELECT pg_backend_pid()").fetchone()[0]
            alter.execute("BEGIN")
            alter.execute("SELECT pg_advisory_xact_lock(4242)")
            alter.execute("ALTER TABLE things SET (fillfactor = 50)")  # relcache invalidation at commit
            inserted = []
            t = threading.Thread(target=lambda: inserted.append(
                c.execute("INSERT INTO things VALUES (1, 'a'), (2, 'b')").rowcount), daemon=True)
            t.start()
            wait_until(lambda: alter.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                             (writer,)).fetchone() == ("Lock",), what="the writer to wait")
            alter.execute("COMMIT")
            t.join(30)
            assert inserted == [2], "the insert went through"
            listener.wait(lambda ps: {"thing:a:1", "thing:b:2"} <= set().union(*[p.of("k") for p in ps])
                          if ps else False, "keys rendered with the rules")
        finally:
            if alter.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                alter.execute("ROLLBACK")
            with direct_pg.connect() as cleanup:
                cleanup.execute("DROP TABLE IF EXISTS things")
                cleanup.execute("DROP FUNCTION IF EXISTS things_wait()")
                cleanup.execute("DROP TYPE IF EXISTS kind")


@pytest.fixture(scope="module")
def small_ring_pg(workdir, secret_file):
    cluster = PgCluster(os.path.join(workdir, "pg-small-ring"), preload=True, secret_file=secret_file,
                        settings={"pgcohere.ring_size": "'16kB'", "pgcohere.max_databases": 2}).init().start()
    with cluster.connect() as c:
        c.execute("CREATE EXTENSION pgcohere")
    yield cluster
    cluster.remove()


def publisher_pid(cluster, dbname):
    with cluster.connect(dbname) as c:
        row = c.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgcohere publisher' "
                        "AND datname = current_database()").fetchone()
        return row[0] if row else None


def test_ring_overflow_publishes_resync_never_drops_silently(small_ring_pg, secret, listener_factory):
    """The publisher is stopped (SIGSTOP) while small commits fill the 16 kB ring: the
    commits that do not fit are replaced by one resync entry; nothing fails."""
    setup_table(small_ring_pg, "postgres", templates=("item:{id}:" + "y" * 30,))
    pid = None
    try:
        listener = listener_factory(small_ring_pg, "postgres", secret)
        with small_ring_pg.connect() as c:
            c.execute("INSERT INTO items VALUES (0, 'start the publisher')")
            listener.wait(contains_key("item:0:" + "y" * 30), "first key")
            pid = wait_until(lambda: publisher_pid(small_ring_pg, "postgres"), what="publisher pid")
            os.kill(pid, signal.SIGSTOP)
            # safety net: if it was stopped while holding its ring's lock, commits would
            # wait for it; never let the test hang on that
            safety = threading.Timer(20, os.kill, (pid, signal.SIGCONT))
            safety.start()
            for i in range(1, 600):  # ~90 bytes each: far more than 16 kB
                c.execute("INSERT INTO items VALUES (%s, 'o')", (i,))
            overflows = c.execute("SELECT ring_overflows FROM pgcohere.stats()").fetchone()[0]
            assert overflows >= 1
            os.kill(pid, signal.SIGCONT)
            safety.cancel()
            pid = None
            listener.wait(lambda ps: any(p.of("r") for p in ps), "resync entry")
            # (a commit made before the worker drained the full ring would be covered by
            # the resync too; this one comes after it)
            c.execute("INSERT INTO items VALUES (5000, 'after')")
        listener.wait(contains_key("item:5000:" + "y" * 30), "the commit after the overflow")
        ps = listener.payloads
        assert all(p.signature_ok for p in ps)
        assert {"ring-overflow"} == set().union(*[p.of("r") for p in ps])
        assert "item:1:" + "y" * 30 in listener.keys(), "commits that fit the ring are published"
    finally:
        if pid:
            os.kill(pid, signal.SIGCONT)
        with small_ring_pg.connect() as c:
            c.execute("DROP TABLE items")


def test_transaction_bigger_than_the_ring_is_published_directly(small_ring_pg, secret, listener_factory):
    """A single transaction that would not fit half the ring is NOTIFYed by its own
    backend at pre-commit (direct mode for that transaction), not turned into a resync."""
    setup_table(small_ring_pg, "postgres", templates=("big:{id}:" + "z" * 30,))
    try:
        listener = listener_factory(small_ring_pg, "postgres", secret)
        with small_ring_pg.connect() as c:
            writer = c.execute("SELECT pg_backend_pid()").fetchone()[0]
            c.execute("INSERT INTO items SELECT g, 'o' FROM generate_series(1, 2000) g")
        want = {f"big:{i}:" + "z" * 30 for i in range(1, 2001)}
        listener.wait(lambda ps: want <= set().union(*[p.of("k") for p in ps]) if ps else False, "all keys")
        ps = [p for p in listener.payloads if p.of("k") & want]
        assert all(p.pid == writer for p in ps)
        assert all(p.signature_ok for p in ps)
        assert not any(p.of("r") for p in listener.payloads)
    finally:
        with small_ring_pg.connect() as c:
            c.execute("DROP TABLE items")


def test_rings_of_dropped_databases_are_reused(small_ring_pg, secret, listener_factory):
    """max_databases = 2 here: database after database keeps publishing through the ring
    (from the publisher worker, not the writing backend) as dropped ones free their slot."""
    for n in range(4):
        name = f"cycle_{os.getpid()}_{n}"
        with small_ring_pg.connect() as c:
            c.execute(f"CREATE DATABASE {name}")
        try:
            with small_ring_pg.connect(name) as c:
                c.execute("CREATE EXTENSION pgcohere")
            setup_table(small_ring_pg, name)
            listener = listener_factory(small_ring_pg, name, secret)
            with small_ring_pg.connect(name) as c:
                writer = c.execute("SELECT pg_backend_pid()").fetchone()[0]
                c.execute("INSERT INTO items VALUES (1, 'x')")
            p = listener.wait(lambda ps: [p for p in ps if "item:1" in p.of("k")], f"key in {name}")[0]
            assert p.pid != writer, "published by the database's worker, not in direct mode"
            assert p.seq == 1 and p.signature_ok
            listener.close()
        finally:
            with small_ring_pg.connect() as c:
                c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_worker_failure_degrades_to_resync(small_ring_pg, secret, secret_file, listener_factory):
    """The worker cannot sign (secret file unreadable): the drained entries are replaced by
    a resync entry, published as soon as it can sign again; user commits never fail."""
    setup_table(small_ring_pg, "postgres")
    try:
        listener = listener_factory(small_ring_pg, "postgres", secret)
        with small_ring_pg.connect() as c:
            c.execute("ALTER SYSTEM SET pgcohere.secret_file = '/nonexistent/pgcohere-secret'")
            c.execute("SELECT pg_reload_conf()")
            ids = iter(range(100, 100000))

            def failed():
                # writes commit fine; once the worker has seen the reload, it cannot sign
                c.execute("INSERT INTO items VALUES (%s, 'during')", (next(ids),))
                return c.execute("SELECT notify_failures FROM pgcohere.stats()").fetchone()[0] > 0
            wait_until(failed, timeout=15, what="the worker to fail signing")
            c.execute("ALTER SYSTEM SET pgcohere.secret_file = %s" % psycopg.sql.quote(secret_file))
            c.execute("SELECT pg_reload_conf()")
            c.execute("INSERT INTO items VALUES (2, 'after')")
            # item:2 may be drained before the worker sees the reload: then the resync
            # covers it too. Either way a signed resync entry arrives.
            resync = listener.wait(lambda ps: [p for p in ps if "encode-failed" in p.of("r")], "resync entry")[0]
            assert resync.signature_ok
            c.execute("INSERT INTO items VALUES (3, 'later')")
        listener.wait(contains_key("item:3"), "publication back to normal")
        assert all(p.signature_ok for p in listener.payloads)
    finally:
        with small_ring_pg.connect() as c:
            # the harness keeps the secret in postgresql.auto.conf: put it back there
            c.execute("ALTER SYSTEM SET pgcohere.secret_file = %s" % psycopg.sql.quote(secret_file))
            c.execute("SELECT pg_reload_conf()")
            c.execute("DROP TABLE items")


class NotifyLockHeld:
    """Holds PostgreSQL's global NOTIFY lock: a session whose NOTIFY transaction waits, in
    its commit, for a synchronous standby that does not exist (every other session commits
    with synchronous_commit = local). release() cancels the wait; the commit completes."""

    def __init__(self, cluster, admin):
        self.cluster, self.admin = cluster, admin
        self.conn = cluster.connect()
        self.pid = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.thread = None

    def __enter__(self):
        a = self.admin
        a.execute("CREATE TABLE IF NOT EXISTS notify_blocker (i int)")
        a.execute("ALTER SYSTEM SET synchronous_commit = 'local'")
        a.execute("ALTER SYSTEM SET synchronous_standby_names = 'pgcohere_test_nobody'")
        a.execute("SELECT pg_reload_conf()")
        self.conn.execute("SET synchronous_commit = on")

        def waits():
            # the setting takes effect once the checkpointer has processed the reload:
            # until then the NOTIFY just commits, and is repeated. It must write WAL
            # besides its commit record to wait for the standby.
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=lambda: self.conn.execute(
                    "INSERT INTO notify_blocker VALUES (1); NOTIFY pgcohere_test_other"), daemon=True)
                self.thread.start()
            return a.execute("SELECT wait_event FROM pg_stat_activity WHERE pid = %s",
                             (self.pid,)).fetchone() == ("SyncRep",)
        wait_until(waits, timeout=15, what="a session to hold the NOTIFY lock")
        return self

    def release(self):
        if self.thread is not None:
            self.admin.execute("SELECT pg_cancel_backend(%s)", (self.pid,))
            self.thread.join(15)
            self.thread = None

    def __exit__(self, *exc):
        try:
            self.release()
        finally:
            self.admin.execute("ALTER SYSTEM RESET synchronous_standby_names")
            self.admin.execute("ALTER SYSTEM RESET synchronous_commit")
            self.admin.execute("SELECT pg_reload_conf()")
            self.admin.execute("DROP TABLE IF EXISTS notify_blocker")
            self.conn.close()


def publisher_waiting_for_lock(c):
    row = c.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgcohere publisher' "
                    "AND datname = current_database() AND wait_event_type = 'Lock'").fetchone()
    return row[0] if row else None


def test_publisher_terminated_before_its_notify_commits_publishes_resync(small_ring_pg, secret, listener_factory):
    """The publisher drains a batch, then dies before its NOTIFY transaction commits (it
    is terminated while it waits for the global NOTIFY lock). The drained batch is not
    lost silently: without any further commit, a resync entry is published."""
    setup_table(small_ring_pg, "postgres")
    try:
        listener = listener_factory(small_ring_pg, "postgres", secret)
        with small_ring_pg.connect() as c:
            c.execute("INSERT INTO items VALUES (1, 'start the publisher')")
            listener.wait(contains_key("item:1"), "first key")
            with NotifyLockHeld(small_ring_pg, c) as lock:
                c.execute("INSERT INTO items VALUES (2, 'drained, then lost')")
                publisher = wait_until(lambda: publisher_waiting_for_lock(c), timeout=15,
                                       what="the publisher to wait in its NOTIFY")
                c.execute("SELECT pg_terminate_backend(%s)", (publisher,))
                wait_until(lambda: c.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                             (publisher,)).fetchone()[0] == 0, what="the publisher to exit")
                lock.release()
            # no further commit: the launcher must notice the lost batch by itself
            resync = listener.wait(lambda ps: [p for p in ps if p.of("r")], "resync entry for the lost batch")[0]
            assert resync.signature_ok
            assert resync.of("r") <= {"worker-exited", "worker-restarted"}
            assert len({p.epoch for p in listener.payloads}) == 1, "same stream: a resync entry, not a new epoch"
    finally:
        with small_ring_pg.connect() as c:
            c.execute("DROP TABLE items")


def test_failed_notify_transaction_publishes_resync_and_worker_goes_on(small_ring_pg, secret, listener_factory):
    """The publisher's NOTIFY transaction fails (cancelled while it waits for the global
    NOTIFY lock): the error is logged, the worker stays up and publishes a resync for the
    batch, and later commits flow normally."""
    setup_table(small_ring_pg, "postgres")
    try:
        listener = listener_factory(small_ring_pg, "postgres", secret)
        with small_ring_pg.connect() as c:
            c.execute("INSERT INTO items VALUES (1, 'start the publisher')")
            listener.wait(contains_key("item:1"), "first key")
            failures = c.execute("SELECT notify_failures FROM pgcohere.stats()").fetchone()[0]
            with NotifyLockHeld(small_ring_pg, c) as lock:
                c.execute("INSERT INTO items VALUES (2, 'in the failed batch')")
                publisher = wait_until(lambda: publisher_waiting_for_lock(c), timeout=15,
                                       what="the publisher to wait in its NOTIFY")
                c.execute("SELECT pg_cancel_backend(%s)", (publisher,))
                wait_until(lambda: c.execute("SELECT notify_failures FROM pgcohere.stats()").fetchone()[0]
                           > failures, what="the NOTIFY transaction to fail")
                lock.release()
            resync = listener.wait(lambda ps: [p for p in ps if "notify-failed" in p.of("r")], "resync entry")[0]
            assert resync.signature_ok
            assert resync.pid == publisher, "the same worker goes on after the error"
            c.execute("INSERT INTO items VALUES (3, 'after')")
        listener.wait(contains_key("item:3"), "the commit after the failure")
        assert all(p.signature_ok for p in listener.payloads)
    finally:
        with small_ring_pg.connect() as c:
            c.execute("DROP TABLE items")


def test_database_whose_publisher_cannot_connect_gets_a_resync_not_silence(small_ring_pg, secret, listener_factory):
    """No publisher can connect to the database (ALLOW_CONNECTIONS false; existing sessions
    stay). The launcher gives up after repeated failures and discards the pending entries,
    but flags a resync: once publishers can connect again, the next commit's payload
    carries it, in the same stream."""
    name = f"noconn_{os.getpid()}"
    with small_ring_pg.connect() as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {name}")
    try:
        with small_ring_pg.connect(name) as c:
            c.execute("CREATE EXTENSION pgcohere")
        setup_table(small_ring_pg, name)
        listener = listener_factory(small_ring_pg, name, secret)
        with small_ring_pg.connect(name) as c, small_ring_pg.connect() as admin:
            c.execute("INSERT INTO items VALUES (1, 'x')")
            first = listener.wait(lambda ps: [p for p in ps if "item:1" in p.of("k")], "first key")[0]
            with open(small_ring_pg.logfile) as f:
                f.seek(0, os.SEEK_END)
                log_start = f.tell()
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")

            def idle_publisher_gone():
                return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                     "AND backend_type = 'pgcohere publisher'", (name,)).fetchone()[0] == 0
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                          "AND backend_type = 'pgcohere publisher'", (name,))
            wait_until(idle_publisher_gone, what="the publisher to exit")
            c.execute("INSERT INTO items VALUES (2, 'discarded')")  # publishers fail to connect

            def gave_up():
                with open(small_ring_pg.logfile) as f:
                    f.seek(log_start)
                    return "is unreachable" in f.read()
            wait_until(gave_up, timeout=30, what="the launcher to give up on the database")
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
            c.execute("INSERT INTO items VALUES (3, 'after')")
        listener.wait(contains_key("item:3"), "the commit after connections are allowed again")
        ps = listener.payloads
        assert all(p.signature_ok for p in ps)
        assert "worker-failed" in set().union(*[p.of("r") for p in ps]), "the discarded entries are covered"
        assert {p.epoch for p in ps} == {first.epoch}
    finally:
        with small_ring_pg.connect() as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
