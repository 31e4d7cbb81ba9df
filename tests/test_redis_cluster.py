"""Purging in a real 3-primary Redis Cluster on loopback: keys routed by slot, patterns
scanned on every primary, MOVED after a slot migration and ASK during one."""
import os

import pytest

from harness.redis_cluster import RedisCluster
from harness.servers import wait_until
from test_invalidation import Stream, inv_daemon  # noqa: F401


@pytest.fixture(scope="module")
def cluster(workdir):
    c = RedisCluster(os.path.join(workdir, "cluster")).start()
    yield c
    c.stop()


@pytest.fixture
def cluster_daemon(inv_daemon, new_db, cluster):
    return inv_daemon([new_db], extra_ini="[redis]\ncluster_nodes = " + ", ".join(cluster.seeds) + "\n")


def keyslot(cluster, key):
    return cluster.nodes[0].client().execute_command("CLUSTER", "KEYSLOT", key)


def test_keys_patterns_and_tags_across_primaries(pg, new_db, secret, cluster, cluster_daemon):
    rc = cluster.client()
    keys = [f"{new_db}:user:{i}" for i in range(200)]
    for k in keys:
        rc.set(k, "x")
    msgs = [f"{new_db}:msg:history:42:{i}" for i in range(100)]
    for k in msgs:
        rc.set(k, "x")
    rc.set(f"{new_db}:msg:history:43:0", "keep")
    owners = {cluster.node_for_slot(keyslot(cluster, k)).port for k in keys + msgs}
    assert len(owners) == 3  # the work really spans every primary
    # A query-cache tag: its set and entries share the database's slot ({<database>}).
    e1, e2 = f"pgcohere:{{{new_db}}}:e:1", f"pgcohere:{{{new_db}}}:e:2"
    rc.sadd(f"pgcohere:{{{new_db}}}:s:tbl:16384", e1, e2)
    rc.set(e1, "x")
    rc.set(e2, "x")
    Stream(pg, new_db, secret).send([("k", k) for k in keys] + [("p", f"{new_db}:msg:history:42:*"),
                                                                     ("t", "tbl:16384")])
    wait_until(lambda: all(rc.exists(k) == 0 for k in keys + msgs + [e1, e2]),
               what="keys, pattern and tag purged on every primary")
    assert rc.get(f"{new_db}:msg:history:43:0") == b"keep"


def migrate_slot(cluster, slot, source, target, finish=True):
    src_id, dst_id = cluster.node_id(source), cluster.node_id(target)
    target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    src = source.client()
    while True:
        keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
        if not keys:
            break
        src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
    if finish:
        finish_migration(cluster, slot, target)


def finish_migration(cluster, slot, target):
    dst_id = cluster.node_id(target)
    for n in cluster.nodes:
        n.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    wait_until(lambda: cluster.node_for_slot(slot).port == target.port, what="slot moved")


def asking_exists(node, key):
    """EXISTS on an importing node: it answers for the slot only right after ASKING."""
    p = node.client().pipeline(transaction=False)
    p.execute_command("ASKING")
    p.exists(key)
    return p.execute()[1]


def other_node(cluster, node):
    return next(n for n in cluster.nodes if n.port != node.port)


def test_moved_after_a_slot_migration(pg, new_db, secret, cluster, cluster_daemon):
    d = cluster_daemon
    key = f"{new_db}:moved"
    slot = keyslot(cluster, key)
    source = cluster.node_for_slot(slot)
    target = other_node(cluster, source)
    source.client().set(key, "x")
    migrate_slot(cluster, slot, source, target)  # the daemon's map still says `source`
    assert target.client().execute_command("GET", key) == b"x"
    Stream(pg, new_db, secret).send([("k", key)])
    wait_until(lambda: target.client().exists(key) == 0, what="purged on the slot's new owner")
    assert d.metric("pgcohere_redis_cluster_redirects_total", kind="moved") >= 1


def test_ask_during_a_slot_migration(pg, new_db, secret, cluster, cluster_daemon):
    d = cluster_daemon
    key = f"{new_db}:asked"
    slot = keyslot(cluster, key)
    source = cluster.node_for_slot(slot)
    target = other_node(cluster, source)
    source.client().set(key, "x")
    migrate_slot(cluster, slot, source, target, finish=False)  # key moved, slot still `source`'s
    assert asking_exists(target, key) == 1
    try:
        Stream(pg, new_db, secret).send([("k", key)])
        wait_until(lambda: asking_exists(target, key) == 0, what="purged on the importing node")
        assert d.metric("pgcohere_redis_cluster_redirects_total", kind="ask") >= 1
    finally:
        finish_migration(cluster, slot, target)


def test_moved_seen_by_a_pattern_pass_restarts_it(pg, new_db, secret, cluster, cluster_daemon):
    """Keys moving between nodes while a pattern pass runs may be missed by it (already
    scanned on the target, not yet on the source): a MOVED seen during the pass, here by its
    own UNLINK after a migration the daemon has not heard of, makes it start over."""
    d = cluster_daemon
    keys = [f"{{{new_db}pp}}:p:{i}" for i in range(20)]  # one hash tag: one slot
    slot = keyslot(cluster, keys[0])
    source = cluster.node_for_slot(slot)
    target = other_node(cluster, source)
    for k in keys:
        source.client().set(k, "x")
    migrate_slot(cluster, slot, source, target)  # the daemon's map still says `source`
    passes = d.metric("pgcohere_purge_scan_passes_total")
    purged = d.metric("pgcohere_purged_patterns_total")
    Stream(pg, new_db, secret).send([("p", f"{{{new_db}pp}}:p:*")])
    wait_until(lambda: all(target.client().exists(k) == 0 for k in keys), what="pattern purged on the new owner")
    wait_until(lambda: d.metric("pgcohere_purged_patterns_total") > purged, what="pattern pass finished")
    assert d.metric("pgcohere_redis_cluster_redirects_total", kind="moved") >= 1
    assert d.metric("pgcohere_purge_scan_passes_total") - passes >= 2
