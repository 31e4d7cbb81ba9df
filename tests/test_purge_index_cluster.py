"""The pattern index on a real 3-primary Redis Cluster: every primary keeps the sets of its
own keys (under a hash tag of one of its slots), a pattern purge reads them on every
primary without a SCAN pass (a pattern of one hash slot: on that slot's node only), and keys
moved by resharding are purged on their new node."""
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


def move_behind_the_daemons_back(cluster, rc, keys):
    """Writes keys (all in the slot of the first) and moves that slot to another primary
    without the daemon hearing of it; returns (old node, new node)."""
    for k in keys:
        rc.set(k, "x")
    slot = keyslot(cluster, keys[0])
    source = cluster.node_for_slot(slot)
    target = other_node(cluster, source)
    migrate_slot(cluster, slot, source, target)
    assert target.client().exists(keys[0]) == 1
    return source, target


def test_keys_moved_by_resharding_are_purged_on_their_new_node(pg, new_db, secret, cluster, indexed_daemon):
    d = indexed_daemon
    rc = cluster.client()
    msgs = [f"{new_db}:msg:history:7:{i}" for i in range(60)]
    move_behind_the_daemons_back(cluster, rc, msgs)
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


def commandstats(node):
    return {name.replace("cmdstat_", ""): st["calls"] for name, st in node.client().info("commandstats").items()}


def test_a_pattern_with_a_hash_tag_is_purged_on_its_slots_node_only(pg, new_db, secret, cluster, indexed_daemon):
    """All keys of "msg:history:{t}:*" are in the slot of "t": one barrier and one script,
    on that node; the other primaries see nothing of the purge (no cluster-bus broadcast
    either: the barrier is a shard message)."""
    d = indexed_daemon
    rc = cluster.client()
    tag = f"{new_db}c1"
    msgs = [f"{new_db}:msg:history:{{{tag}}}:{i}" for i in range(100)]
    for k in msgs:
        rc.set(k, "x")
    rc.set(f"{new_db}:msg:history:{{{tag}x}}:0", "keep")
    owner = cluster.node_for_slot(keyslot(cluster, msgs[0]))
    for node in cluster.nodes:
        node.client().config_resetstat()
    scans = d.metric("pgcohere_purge_scan_passes_total")
    Stream(pg, new_db, secret).send([("p", f"{new_db}:msg:history:{{{tag}}}:*")])
    wait_until(lambda: d.metric("pgcohere_purge_index_patterns_total") >= 1, what="purged through the index")
    assert sum(rc.exists(k) for k in msgs) == 0
    assert rc.get(f"{new_db}:msg:history:{{{tag}x}}:0") == b"keep"
    assert d.metric("pgcohere_purge_scan_passes_total") == scans
    stats = {node.port: commandstats(node) for node in cluster.nodes}
    assert stats[owner.port].get("eval", 0) >= 1
    assert stats[owner.port].get("spublish", 0) >= 1 and stats[owner.port].get("publish", 0) == 0
    for node in cluster.nodes:
        if node.port != owner.port:
            s = stats[node.port]
            assert (s.get("eval", 0), s.get("spublish", 0), s.get("publish", 0), s.get("exists", 0)) == (0, 0, 0, 0), s


@pytest.mark.parametrize("conv", ["9", "{c9}"])
def test_a_key_written_just_before_the_purge_is_purged(pg, new_db, secret, cluster, indexed_daemon, conv):
    """The barrier (a shard message on the node's subscription) comes back behind the
    keyspace notification of a key written before it, so the key is in its set when the
    purge script runs: every round through the index, none by a scan."""
    d = indexed_daemon
    rc = cluster.client()
    stream = Stream(pg, new_db, secret)
    scans = d.metric("pgcohere_purge_scan_passes_total")
    indexed = d.metric("pgcohere_purge_index_patterns_total")
    for i in range(20):
        key = f"{new_db}:msg:history:{conv}:{i}"
        purged = d.metric("pgcohere_purged_patterns_total")
        rc.set(key, "x")
        stream.send([("p", f"{new_db}:msg:history:{conv}:*")])
        wait_until(lambda: d.metric("pgcohere_purged_patterns_total") > purged, what=f"round {i} purged")
        assert rc.exists(key) == 0, f"round {i}: {key} survived"
    assert d.metric("pgcohere_purge_scan_passes_total") == scans
    assert d.metric("pgcohere_purge_index_patterns_total") == indexed + 20


def test_a_hash_tag_pattern_follows_its_slot_to_a_new_node(pg, new_db, secret, cluster, indexed_daemon):
    """The slot moved without the daemon hearing of it: the purge on the old node is
    followed by an EXISTS of a key of the slot, whose MOVED fails the purge over to a scan
    (the keys are gone) and updates the daemon's slot map, so the next purge of that slot
    runs on its new node through the index."""
    d = indexed_daemon
    rc = cluster.client()
    tag = f"{new_db}c3"
    msgs = [f"{new_db}:msg:history:{{{tag}}}:{i}" for i in range(30)]
    _, target = move_behind_the_daemons_back(cluster, rc, msgs)
    stream = Stream(pg, new_db, secret)
    scans = d.metric("pgcohere_purge_scan_passes_total")
    moved = d.metric("pgcohere_redis_cluster_redirects_total", kind="moved")
    purged = d.metric("pgcohere_purged_patterns_total")
    stream.send([("p", f"{new_db}:msg:history:{{{tag}}}:*")])
    wait_until(lambda: d.metric("pgcohere_purged_patterns_total") > purged, what="purge done")
    assert sum(target.client().exists(k) for k in msgs) == 0
    assert d.metric("pgcohere_purge_scan_passes_total") > scans  # failed over to a scan
    wait_until(lambda: d.metric("pgcohere_redis_cluster_redirects_total", kind="moved") > moved,
               what="the daemon followed the MOVED")
    wait_until(lambda: d.metric("pgcohere_pattern_index_ready") == 1, what="index ready on the new map")
    for k in msgs:
        rc.set(k, "x")
    scans = d.metric("pgcohere_purge_scan_passes_total")
    indexed = d.metric("pgcohere_purge_index_patterns_total")
    purged = d.metric("pgcohere_purged_patterns_total")
    stream.send([("p", f"{new_db}:msg:history:{{{tag}}}:*")])
    wait_until(lambda: d.metric("pgcohere_purged_patterns_total") > purged, what="second purge done")
    assert sum(rc.exists(k) for k in msgs) == 0
    assert d.metric("pgcohere_purge_index_patterns_total") == indexed + 1
    assert d.metric("pgcohere_purge_scan_passes_total") == scans
