"""Pool metrics on /metrics: per-pool gauges and counters, and the queue-wait histogram."""
import threading
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from pool_helpers import connect, start_pooler


def scrape(d):
    with urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=10) as r:
        return {f.name: f for f in text_string_to_metric_families(r.read().decode())}


def sample(families, name, **labels):
    for fam in families.values():
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError(name)


def test_pool_metrics(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db, default_pool_size=1)
    with connect(d, new_db) as a, connect(d, new_db) as b:
        for _ in range(5):
            a.execute("select 1")
        a.execute("begin")
        a.execute("select 1")
        t = threading.Thread(target=lambda: b.execute("select 2"))
        t.start()

        def waiting():
            return sample(scrape(d), "pgcohere_pool_cl_waiting", database=new_db) == 1
        from harness.servers import wait_until
        wait_until(waiting, timeout=10, what="a waiting client in /metrics")
        fams = scrape(d)
        assert sample(fams, "pgcohere_pool_sv_active", database=new_db) == 1
        assert sample(fams, "pgcohere_pool_maxwait_seconds", database=new_db) >= 0
        a.execute("commit")
        t.join(10)
    fams = scrape(d)
    assert sample(fams, "pgcohere_pool_transactions_total", database=new_db) >= 6
    assert sample(fams, "pgcohere_pool_queries_total", database=new_db) >= 7
    assert sample(fams, "pgcohere_pool_received_bytes_total", database=new_db) > 0
    assert sample(fams, "pgcohere_pool_server_connect_errors_total", database=new_db) == 0
    count = sample(fams, "pgcohere_pool_queue_wait_ms_count", database=new_db)
    assert count >= 7
    # the waiting client's wait landed in a bucket above the smallest one
    assert sample(fams, "pgcohere_pool_queue_wait_ms_bucket", database=new_db, le="+Inf") == count
