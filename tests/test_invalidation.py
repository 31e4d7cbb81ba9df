"""The invalidation path end to end: signed NOTIFY payloads reach pgcohered's LISTEN
connection and purge Redis; forged, replayed and cross-database payloads purge nothing;
gaps, epochs, resync messages and lost connections degrade to a resync.

Payloads are built here with Python's hmac (an implementation independent of the daemon's)
and sent with pg_notify, so these tests run with or without the extension installed. The
tests that need the extension's triggers skip when it is not installed."""
import hashlib
import hmac
import itertools
import os
import re
import signal
import time
import urllib.request

import pytest

from harness.servers import Daemon, daemon_config, free_port, wait_until

_db_counter = itertools.count(1)
_epoch_counter = itertools.count(int(time.time()) * 1000)


# ---- payloads (docs/protocol.md), written independently of the daemon's codec ----

def escape(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def payload(dbname, secret, epoch, seq, entries, commit_us=None):
    """entries: [("k", "key"), ("p", "pat*"), ("t", "tag"), ("r", "reason")]."""
    commit_us = commit_us if commit_us is not None else int(time.time() * 1e6)
    body = f"pgc1 {epoch} {seq} {commit_us}\n" + "".join(f"{k} {escape(t)}\n" for k, t in entries)
    sig = hmac.new(secret, (dbname + "\n" + body).encode(), hashlib.sha256).hexdigest()
    return body + "sig " + sig


class Stream:
    """A sender of correctly signed payloads for one database, with its own epoch."""

    def __init__(self, pg, dbname, secret, channel="pgcohere"):
        self.pg, self.dbname, self.secret, self.channel = pg, dbname, secret, channel
        self.epoch = next(_epoch_counter)
        self.seq = 0

    def build(self, entries, seq=None, epoch=None, dbname=None, secret=None):
        if seq is None:
            self.seq += 1
            seq = self.seq
        return payload(dbname or self.dbname, secret or self.secret, epoch or self.epoch, seq, entries)

    def send(self, entries, user="postgres", **kw):
        text = self.build(entries, **kw)
        self.notify(text, user)
        return text

    def notify(self, text, user="postgres"):
        with self.pg.connect(self.dbname, user=user) as c:
            c.execute("SELECT pg_notify(%s, %s)", (self.channel, text))


# ---- fixtures ----

class InvDaemon(Daemon):
    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels`."""
        total = 0.0
        for line in self.metrics().splitlines():
            m = re.match(r"^(\w+)(\{[^}]*\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def wait_listening(self, dbname, count=1, timeout=15):
        wait_until(lambda: self.log().count(f"in database {dbname} (backend pid") >= count,
                   timeout=timeout, what=f"LISTEN in {dbname} ({self.log_path})")

    def wait_resyncs(self, dbname_entry, count, timeout=15):
        wait_until(lambda: len(re.findall(rf"invalidation \[{dbname_entry}\]: resync \([^)]*\) done", self.log()))
                   >= count, timeout=timeout, what=f"{count} resync(s) of {dbname_entry}")


@pytest.fixture
def inv_daemon(workdir, pg, redis_srv, secret_file):
    """inv_daemon(databases, extra_ini="", redis_url=None) -> started InvDaemon."""
    started = []

    def make(databases, extra_ini="", redis_url=None, start=True, secret_path=None):
        port, metrics_port = free_port(), free_port()
        text = daemon_config(port, pg, databases, redis_url or redis_srv.url, secret_path or secret_file,
                             metrics_port, extra_ini)
        d = InvDaemon(os.path.join(workdir, "inv-daemon"), text, port)
        d.metrics_port = metrics_port
        started.append(d)
        if start:
            d.start()
            for db in databases:
                d.wait_listening(db)
                d.wait_resyncs(db, 1)
        return d

    yield make
    for d in started:
        d.stop()


def gone(r, *keys):
    return r.exists(*keys) == 0


# ---- tests ----

def test_signed_payload_purges_keys_patterns_and_tags(pg, new_db, redis_srv, secret, inv_daemon):
    d = inv_daemon([new_db])
    r = redis_srv.client()
    p = f"{new_db}:"
    r.set(p + "user:1", "x")
    r.set(p + "weird\nkey\\", "x")
    for i in range(3):
        r.set(f"{p}msg:history:42:{i}", "x")
    r.set(p + "msg:history:43:0", "keep")
    r.set(p + "msg:history:4*:0", "keep")  # a pattern is not widened by its own data
    # A query-cache tag: the entries its set lists (docs/cache.md, "Redis layout") go.
    e1, e2, tagset = (f"pgcohere:{{{new_db}}}:e:1", f"pgcohere:{{{new_db}}}:e:2",
                      f"pgcohere:{{{new_db}}}:s:tbl:16384")
    r.sadd(tagset, e1, e2)
    r.set(e1, "x")
    r.set(e2, "x")
    # A watched table's own tag names no cache entry: the daemon does nothing for it.
    unused = f"pgcohere:{{{new_db}}}:s:table:public.t"
    r.sadd(unused, "kept")
    Stream(pg, new_db, secret).send([("k", p + "user:1"), ("k", p + "weird\nkey\\"),
                                         ("p", p + "msg:history:42:*"), ("t", "tbl:16384"), ("t", "table:public.t")])
    wait_until(lambda: gone(r, p + "user:1", p + "weird\nkey\\", p + "msg:history:42:0", p + "msg:history:42:1",
                            p + "msg:history:42:2", e1, e2, tagset), what="keys purged")
    assert r.get(p + "msg:history:43:0") == b"keep"
    assert r.get(p + "msg:history:4*:0") == b"keep"
    assert r.smembers(unused) == {b"kept"}
    wait_until(lambda: d.metric("pgcohere_invalidations_applied_total", database=new_db) == 1, what="applied=1")
    assert d.metric("pgcohere_invalidation_latency_ms_count") >= 1


def test_thousands_of_keys_in_one_transaction(pg, new_db, redis_srv, secret, inv_daemon):
    inv_daemon([new_db])
    r = redis_srv.client()
    keys = [f"{new_db}:bulk:{i}" for i in range(3000)]
    r.mset({k: "x" for k in keys})
    s = Stream(pg, new_db, secret)
    # NOTIFY payloads stay under 8000 bytes: the extension chunks a big transaction, one seq each.
    with pg.connect(new_db) as c:
        with c.transaction():
            for i in range(0, len(keys), 300):
                c.execute("SELECT pg_notify('pgcohere', %s)", (s.build([("k", k) for k in keys[i:i + 300]]),))
    wait_until(lambda: gone(r, *keys), what="3000 keys purged")


def test_forged_payload_from_an_ordinary_role_purges_nothing(pg, new_db, redis_srv, secret, inv_daemon):
    d = inv_daemon([new_db])
    r = redis_srv.client()
    with pg.connect() as c:
        c.execute("DROP ROLE IF EXISTS mallory")
        c.execute("CREATE ROLE mallory LOGIN")
    victim, barrier = f"{new_db}:victim", f"{new_db}:barrier"
    r.set(victim, "x")
    r.set(barrier, "x")
    s = Stream(pg, new_db, secret)
    s.send([("k", victim)], user="mallory", secret=b"guessed")          # wrong secret
    s.notify(f"pgc1 {s.epoch} 99 0\nk {victim}\nsig " + "0" * 64, "mallory")  # made-up signature
    s.notify(f"pgc1 {s.epoch} 98 0\nk {victim}\n", "mallory")                 # no signature
    s.notify("FLUSHALL", "mallory")
    # Notifications arrive in commit order: once the barrier is purged, the forgeries were seen.
    s.send([("k", barrier)])
    wait_until(lambda: gone(r, barrier), what="barrier purged")
    assert r.get(victim) == b"x"
    assert d.metric("pgcohere_invalidations_rejected_total", database=new_db, reason="forged") == 4


def test_payload_signed_for_another_database_is_rejected(pg, new_db, redis_srv, secret, inv_daemon):
    d = inv_daemon([new_db])
    r = redis_srv.client()
    victim, barrier = f"{new_db}:victim", f"{new_db}:barrier"
    r.set(victim, "x")
    r.set(barrier, "x")
    s = Stream(pg, new_db, secret)
    s.send([("k", victim)], dbname="otherdb")
    s.send([("k", barrier)])
    wait_until(lambda: gone(r, barrier), what="barrier purged")
    assert r.get(victim) == b"x"
    assert d.metric("pgcohere_invalidations_rejected_total", database=new_db, reason="forged") == 1


def test_replayed_payload_is_ignored_and_counted(pg, new_db, redis_srv, secret, inv_daemon):
    d = inv_daemon([new_db])
    r = redis_srv.client()
    key, barrier = f"{new_db}:k", f"{new_db}:barrier"
    r.set(key, "x")
    s = Stream(pg, new_db, secret)
    first = s.send([("k", key)])
    wait_until(lambda: gone(r, key), what="first purge")
    r.set(key, "refilled")
    r.set(barrier, "x")
    s.notify(first, "postgres")  # captured and sent again (any role can LISTEN and copy it)
    s.send([("k", barrier)])
    wait_until(lambda: gone(r, barrier), what="barrier purged")
    assert r.get(key) == b"refilled"
    assert d.metric("pgcohere_invalidations_rejected_total", database=new_db, reason="replayed") == 1


def test_replayed_payload_of_an_older_epoch_cannot_stop_purging(pg, new_db, redis_srv, secret, inv_daemon):
    """A payload captured before a server restart (older epoch) and sent again must neither
    purge nor become the current epoch: that used to turn every genuine payload after it into
    a "replay", so nothing was purged any more."""
    d = inv_daemon([new_db])
    r = redis_srv.client()
    s = Stream(pg, new_db, secret)
    old = s.build([("k", f"{new_db}:victim")], epoch=s.epoch - 1, seq=7)  # signed, from an older epoch
    first = f"{new_db}:first"
    r.set(first, "x")
    s.send([("k", first)], seq=50)
    wait_until(lambda: gone(r, first), what="first purge")
    r.set(f"{new_db}:victim", "x")
    s.notify(old)
    keys = [f"{new_db}:after{i}" for i in range(3)]
    r.mset({k: "x" for k in keys})
    for seq, k in zip((51, 52, 53), keys):
        s.send([("k", k)], seq=seq)
    wait_until(lambda: gone(r, *keys), what="genuine payloads after the replay purged")
    assert r.get(f"{new_db}:victim") == b"x"
    assert d.metric("pgcohere_invalidations_rejected_total", database=new_db, reason="replayed") == 1
    assert d.metric("pgcohere_invalidation_resyncs_total", database=new_db, reason="epoch") == 0
    assert "older than the current epoch" in d.log()  # tells an operator why


def test_gap_resyncs_after_the_grace_period(pg, new_db, redis_srv, secret, inv_daemon):
    d = inv_daemon([new_db], extra_ini="gap_grace = 0.2\n")
    r = redis_srv.client()
    s = Stream(pg, new_db, secret)
    s.send([("k", f"{new_db}:a")], seq=1)
    s.send([("k", f"{new_db}:c")], seq=3)  # seq 2 never comes
    r.set("pgcohere:cached:1", "x")
    wait_until(lambda: d.metric("pgcohere_invalidation_gaps_total", database=new_db) == 1, what="gap counted")
    d.wait_resyncs(new_db, 2)
    wait_until(lambda: gone(r, "pgcohere:cached:1"), what="namespace purged by the resync")


def test_out_of_order_within_grace_is_not_a_gap(pg, new_db, redis_srv, secret, inv_daemon):
    d = inv_daemon([new_db], extra_ini="gap_grace = 30\n")
    r = redis_srv.client()
    s = Stream(pg, new_db, secret)
    keys = [f"{new_db}:{i}" for i in range(4)]
    r.mset({k: "x" for k in keys})
    for seq in (1, 3, 2, 4):  # direct mode: commit order differs from seq order
        s.send([("k", keys[seq - 1])], seq=seq)
    wait_until(lambda: gone(r, *keys), what="all four purged")
    assert d.metric("pgcohere_invalidation_gaps_total", database=new_db) == 0
    assert d.metric("pgcohere_invalidations_rejected_total", database=new_db) == 0


def test_new_epoch_and_resync_message_trigger_a_resync(pg, new_db, redis_srv, secret, inv_daemon):
    d = inv_daemon([new_db])
    r = redis_srv.client()
    s = Stream(pg, new_db, secret)
    s.send([("k", f"{new_db}:a")])
    r.set("pgcohere:cached:epoch", "x")
    s.epoch += 1  # the server restarted its counters: earlier notifications may be lost
    s.seq = 0
    s.send([("k", f"{new_db}:b")])
    d.wait_resyncs(new_db, 2)
    wait_until(lambda: gone(r, "pgcohere:cached:epoch"), what="namespace purged (epoch)")
    r.set("pgcohere:cached:msg", "x")
    s.send([("r", "ring overflow")])
    d.wait_resyncs(new_db, 3)
    wait_until(lambda: gone(r, "pgcohere:cached:msg"), what="namespace purged (resync message)")
    assert d.metric("pgcohere_invalidation_resyncs_total", database=new_db, reason="epoch") == 1
    assert d.metric("pgcohere_invalidation_resyncs_total", database=new_db, reason="message") == 1


def test_terminated_listen_connection_reconnects_and_resyncs(pg, new_db, redis_srv, secret, inv_daemon):
    d = inv_daemon([new_db])
    r = redis_srv.client()
    r.set("pgcohere:cached:term", "x")
    with pg.connect() as c:
        n = c.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE application_name = 'pgcohered-listen' AND datname = %s", (new_db,)).fetchone()[0]
    assert n == 1
    d.wait_listening(new_db, count=2)
    d.wait_resyncs(new_db, 2)
    wait_until(lambda: gone(r, "pgcohere:cached:term"), what="namespace purged after reconnect")
    key = f"{new_db}:after"
    r.set(key, "x")
    Stream(pg, new_db, secret).send([("k", key)])
    wait_until(lambda: gone(r, key), what="purges work after reconnect")


def test_several_databases_each_verified_with_its_own_name(pg, redis_srv, secret, inv_daemon):
    dbs = []
    for _ in range(2):
        name = f"inv{os.getpid()}_{next(_db_counter)}"
        with pg.connect() as c:
            c.execute(f"CREATE DATABASE {name}")
        dbs.append(name)
    try:
        inv_daemon(dbs)
        r = redis_srv.client()
        for db in dbs:
            r.set(f"{db}:k", "x")
            Stream(pg, db, secret).send([("k", f"{db}:k")])
        wait_until(lambda: gone(r, *[f"{db}:k" for db in dbs]), what="both databases purged")
    finally:
        with pg.connect() as c:
            for db in dbs:
                c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_sighup_rotates_the_secret(pg, new_db, redis_srv, secret, inv_daemon, tmp_path):
    path = tmp_path / "secret"
    path.write_text("old-secret\n")
    d = inv_daemon([new_db], secret_path=str(path))
    r = redis_srv.client()
    key = f"{new_db}:rotated"
    r.set(key, "x")
    s = Stream(pg, new_db, b"new-secret")
    s.send([("k", key)])
    wait_until(lambda: d.metric("pgcohere_invalidations_rejected_total", database=new_db, reason="forged") == 1,
               what="payload with the not-yet-loaded secret rejected")
    assert r.get(key) == b"x"
    path.write_text("new-secret\n")
    d.kill(signal.SIGHUP)
    wait_until(lambda: "signing secret reloaded" in d.log(), what="secret reloaded")
    s.send([("k", key)])
    wait_until(lambda: gone(r, key), what="purged with the new secret")


def test_resync_patterns_cover_manually_invalidated_key_families(pg, new_db, redis_srv, secret, inv_daemon):
    """Keys published only with pgcohere.invalidate() match no rule's coarse pattern: a
    resync covers them only through [invalidation] resync_patterns."""
    d = inv_daemon([new_db], extra_ini=f"resync_patterns = {new_db}:profile:*\n")
    r = redis_srv.client()
    covered, other = f"{new_db}:profile:42", f"{new_db}:elsewhere:42"
    r.mset({covered: "x", other: "x"})
    with pg.connect() as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE application_name = 'pgcohered-listen' AND datname = %s", (new_db,))
    d.wait_listening(new_db, count=2)
    d.wait_resyncs(new_db, 2)
    wait_until(lambda: gone(r, covered), what="resync purged the configured pattern")
    assert r.exists(other) == 1
