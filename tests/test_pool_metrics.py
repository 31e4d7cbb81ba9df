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


def test_so_reuseport_processes_share_one_port(daemon_factory, new_db):
    # PgBouncer's so_reuseport: several processes listen on one port and the kernel spreads
    # clients over them; each process has its own pools and metrics.
    first = start_pooler(daemon_factory, new_db, so_reuseport=1)
    second = daemon_factory(databases=[new_db], extra_ini="[pgcohered]\npool_mode = transaction\nso_reuseport = 1\n",
                            start=False)
    with open(second.config_path) as f:
        text = f.read()
    with open(second.config_path, "w") as f:
        f.write(text.replace(f"listen_port = {second.port}", f"listen_port = {first.port}"))
    second.start(wait_for_port=False)
    from harness.servers import wait_until
    wait_until(lambda: "pooler listening" in second.log(), timeout=15, what="second process listening")
    clients = [connect(first, new_db) for _ in range(24)]
    try:
        for c in clients:
            c.execute("begin")  # each holds a server connection of the process it landed on
            assert c.execute("select 1").fetchone()[0] == 1
        per_process = [sample(scrape(d), "pgcohere_pool_cl_active", database=new_db) for d in (first, second)]
        assert sum(per_process) == 24 and min(per_process) > 0, per_process
    finally:
        for c in clients:
            c.close()


def test_without_so_reuseport_a_second_process_cannot_take_the_port(daemon_factory, new_db):
    first = start_pooler(daemon_factory, new_db)
    second = daemon_factory(databases=[new_db], extra_ini="[pgcohered]\npool_mode = transaction\n", start=False)
    with open(second.config_path) as f:
        text = f.read()
    with open(second.config_path, "w") as f:
        f.write(text.replace(f"listen_port = {second.port}", f"listen_port = {first.port}"))
    second.start(wait_for_port=False)
    assert second.proc.wait(timeout=15) != 0
    assert "Address already in use" in second.log() or "address already in use" in second.log().lower()


def test_quiet_clients_park_and_wake(daemon_factory, new_db):
    """A client waits for its next request with no coroutine (parked) right after its login,
    and again once it has been quiet for a second; its next request wakes it and is answered
    as usual, and a parked client that leaves is gone from the count."""
    from harness.servers import wait_until
    d = start_pooler(daemon_factory, new_db)

    def parked(n):
        return lambda: sample(scrape(d), "pgcohere_clients_parked") == n
    with connect(d, new_db) as c:
        wait_until(parked(1), timeout=10, what="the new client parked")
        assert c.execute("select 1").fetchone()[0] == 1
        wait_until(parked(1), timeout=10, what="the quiet client parked again")
        with connect(d, new_db) as other:
            wait_until(parked(2), timeout=10, what="two parked clients")
            assert other.execute("select 2").fetchone()[0] == 2
        wait_until(parked(1), timeout=10, what="the one that left no longer counted")
        assert c.execute("select 3").fetchone()[0] == 3
    wait_until(parked(0), timeout=10, what="no parked client left")
