"""The pattern index on a real 3-primary Redis Cluster: every primary keeps the sets of its
own keys (under a hash tag of one of its slots), a pattern purge reads them on every
primary without a SCAN pass, and keys moved by resharding are purged on their new node."""
import os

import pytest

from harness.redis_cluster import RedisCluster
from harness.servers import wait_until
from test_invalidation import Stream, inv_daemon  # noqa: F401
from test_redis_cluster import keyslot, migrate_slot, other_node


@pytest.fixture(scope="module")
def cluster(workdir):
    c = RedisCluster(os.path.join(workdir, "cluster-index")).start()
    yield c
    c.stop()


@pytest.fixture
def indexed_daemon(pg, inv_daemon, new_db, cluster):
    with pg.connect(new_db) as c:
        c.execute("SELECT pgcohere.declare_keys(%s)", (f"{new_db}:msg:history:{{conversation_id}}:*",))
    d = inv_daemon([new_db], extra_ini="[redis]\ncluster_nodes = " + ", ".join(cluster.seeds) + "\n")
    wait_until(lambda: d.metric("pgcohere_pattern_index_ready") == 1, what="index ready on every primary")
    return d


def test_a_pattern_purge_reads_the_sets_of_every_primary(pg, new_db, secret, cluster, indexed_daemon):
    d = indexed_daemon
    rc = cluster.client()
    msgs = [f"{new_db}:msg:history:42:{i}" for i in range(100)]
    for k in msgs:
        rc.set(k, "x")
    rc.set(f"{new_db}:msg:history:43:0", "keep")
    assert len({cluster.node_for_slot(keyslot(cluster, k)).port for k in msgs}) == 3
    scans = d.metric("pgcohere_purge_scan_passes_total")
    Stream(pg, new_db, secret).send([("p", f"{new_db}:msg:history:42:*")])
    wait_until(lambda: d.metric("pgcohere_purge_index_patterns_total") >= 1, what="purged through the index")
    assert sum(rc.exists(k) for k in msgs) == 0
    assert rc.get(f"{new_db}:msg:history:43:0") == b"keep"
    assert d.metric("pgcohere_purge_scan_passes_total") == scans
    assert d.metric("pgcohere_purge_index_keys_visited_total") == 100
    # Each primary holds its own sets, named with a hash tag of one of its slots.
    for node in cluster.nodes:
        names = [n.decode() for n in node.client().scan_iter(match="pgcohere-idx:*registry")]
        assert len(names) == 1 and cluster.node_for_slot(keyslot(cluster, names[0])).port == node.port


def test_keys_moved_by_resharding_are_purged_on_their_new_node(pg, new_db, secret, cluster, indexed_daemon):
    d = indexed_daemon
    rc = cluster.client()
    msgs = [f"{new_db}:msg:history:7:{i}" for i in range(60)]
    for k in msgs:
        rc.set(k, "x")
    slot = keyslot(cluster, msgs[0])
    source = cluster.node_for_slot(slot)
    target = other_node(cluster, source)
    migrate_slot(cluster, slot, source, target)  # the daemon has not heard of it
    assert target.client().exists(msgs[0]) == 1
    before = d.metric("pgcohere_purge_index_patterns_total")
    scans = d.metric("pgcohere_purge_scan_passes_total")
    purged = d.metric("pgcohere_purged_patterns_total")
    Stream(pg, new_db, secret).send([("p", f"{new_db}:msg:history:7:*")])
    wait_until(lambda: d.metric("pgcohere_purged_patterns_total") > purged, what="purge done")
    assert sum(rc.exists(k) for k in msgs) == 0
    # Answered by the sets: the new node listed the keys it received (a restored key is a
    # new key there); the old node's entries for them were skipped.
    assert d.metric("pgcohere_purge_index_patterns_total") == before + 1
    assert d.metric("pgcohere_purge_scan_passes_total") == scans
