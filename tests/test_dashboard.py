"""The shipped Grafana dashboard (packaging/grafana/pgcohere-dashboard.json) is well formed:
a data source variable that every panel uses, a database variable, unique panel ids, and
a panel for each area the operators watch. Its queries are run against a real Prometheus
in tests/test_prometheus.py."""
import json
import os

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DASHBOARD = os.path.join(REPO, "packaging", "grafana", "pgcohere-dashboard.json")


def load():
    with open(DASHBOARD) as f:
        return json.load(f)


def test_every_panel_queries_the_data_source_variable():
    dash = load()
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert p["targets"], f"{p['title']}: no query"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]


def test_the_database_variable_filters_the_per_database_panels():
    dash = load()
    db = next(v for v in dash["templating"]["list"] if v["name"] == "database")
    assert db["includeAll"] and db["allValue"] == ".*"
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert sum('database=~"$database"' in e for e in exprs) >= 10


def test_panel_ids_are_unique_and_panels_do_not_overlap():
    panels = load()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))


def test_the_dashboard_covers_pools_throughput_errors_invalidation_redis_and_the_cache():
    panels = load()["panels"]
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["Pools", "Throughput", "Errors", "Invalidation", "Redis", "Query cache"]
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    for needle in ("pgcohere_pool_cl_active", "pgcohere_pool_cl_waiting", "pgcohere_pool_sv_active",
                   "histogram_quantile(0.5, sum by (database, le) (rate(pgcohere_pool_queue_wait_ms_bucket",
                   "histogram_quantile(0.95, sum by (database, le) (rate(pgcohere_pool_queue_wait_ms_bucket",
                   "histogram_quantile(0.99, sum by (database, le) (rate(pgcohere_pool_queue_wait_ms_bucket",
                   "pgcohere_pool_transactions_total", "pgcohere_pool_server_connect_errors_total",
                   "pgcohere_invalidation_latency_ms_bucket", "pgcohere_invalidation_gaps_total",
                   "pgcohere_invalidation_resyncs_total", "pgcohere_invalidation_leader", "pgcohere_redis_up",
                   "pgcohere_redis_used_memory_bytes", "pgcohere_cache_hits_total", "pgcohere_cache_misses_total",
                   "pgcohere_cache_bypassed_total", "pgcohere_cache_hit_latency_ms_bucket"):
        assert needle in exprs, needle
