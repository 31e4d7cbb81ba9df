"""A real Prometheus (Debian's) scrapes pgcohered under a short pgbench load, with the
shipped alert rules loaded: every rule evaluates without error, and every alert
expression and every query of the shipped Grafana dashboard returns series. A renamed
or missing metric therefore cannot leave a rule or a panel silently empty."""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import redis
import yaml

from harness.servers import free_port, temp_dir
from pool_helpers import connect

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
RULES = os.path.join(REPO, "packaging", "prometheus", "pgcohere-rules.yml")
DASHBOARD = os.path.join(REPO, "packaging", "grafana", "pgcohere-dashboard.json")

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None,
                                reason="prometheus missing (Debian package prometheus; scripts/install-deps.sh)")

# A comparison with a number filters series out; with `bool` it keeps them as 0 or 1, so
# an expression that is quiet (not firing) still shows whether its metrics exist.
COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(?!\s*bool)(?=\s*[0-9.])")


def with_bool(expr):
    return COMPARISON.sub(r"\1 bool", expr)


def alert_exprs():
    with open(RULES) as f:
        groups = yaml.safe_load(f)["groups"]
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"] if "alert" in r}


def dashboard_queries():
    """{panel title / refId: expr} with the dashboard's variables given test values."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = {}
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            expr = t["expr"].replace("$__rate_interval", "1m").replace("$__range", "5m")
            expr = expr.replace("${database}", ".*").replace("$database", ".*")
            out[f"{panel['title']} / {t['refId']}"] = expr
    return out


class Prometheus:
    def __init__(self, directory, targets):
        self.dir = directory
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [RULES],
            "scrape_configs": [{"job_name": "pgcohered", "static_configs": [{"targets": targets}]}],
        }
        self.config = os.path.join(directory, "prometheus.yml")
        with open(self.config, "w") as f:
            yaml.safe_dump(config, f)
        self.log = open(os.path.join(directory, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.config}", f"--storage.tsdb.path={directory}/data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2)
                return
            except OSError:
                assert self.proc.poll() is None, self.logs()
                time.sleep(0.2)
        raise AssertionError("prometheus not ready in 30 s\n" + self.logs())

    def logs(self):
        with open(os.path.join(self.dir, "prometheus.log")) as f:
            return f.read()

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def prometheus_dir():
    d = temp_dir("pgcohere-prom-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_every_alert_and_dashboard_query_returns_series_from_a_real_scrape(daemon_factory, new_db, pg, redis_srv,
                                                                           prometheus_dir):
    # The memory ratio exists only where Redis has a maxmemory; the session's Redis gets a
    # generous one for this test.
    r = redis.Redis.from_url(redis_srv.url)
    old_maxmemory = r.config_get("maxmemory")["maxmemory"]
    r.config_set("maxmemory", 1 << 30)
    try:
        run_load_and_check(daemon_factory, new_db, pg, prometheus_dir)
    finally:
        r.config_set("maxmemory", old_maxmemory)


def run_load_and_check(daemon_factory, new_db, pg, prometheus_dir):
    subprocess.run(["pgbench", "-i", "-s", "1", "-q", "-d", pg.dsn(new_db)], check=True, capture_output=True)
    with pg.connect(new_db) as c:
        # Writes to accounts publish invalidations (commit-to-purge latency); reads of
        # branches are cacheable (hits and misses).
        c.execute("SELECT pgcohere.watch('pgbench_accounts', ARRAY['acct:{aid}'])")
        c.execute("SELECT pgcohere.cache_table('pgbench_branches', ttl => '60 s')")
    d = daemon_factory(databases=[new_db],
                       extra_ini="[pgcohered]\npool_mode = transaction\ndefault_pool_size = 4\n[cache]\nenabled = 1\n")
    prom = Prometheus(prometheus_dir, [f"127.0.0.1:{d.metrics_port}"])
    try:
        script = os.path.join(prometheus_dir, "read.sql")
        with open(script, "w") as f:
            f.write("\\set bid random(1, 1)\nSELECT bbalance FROM pgbench_branches WHERE bid = :bid;\n")
        load = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(d.port), "-U", "postgres", "-n",
                               "-c", "4", "-j", "4", "-T", "12", "-b", "tpcb-like@1", "-f", f"{script}@3", new_db],
                              capture_output=True, text=True, timeout=120)
        assert load.returncode == 0, load.stderr
        time.sleep(3)  # a few more scrapes and rule evaluations after the load

        assert prom.query('up{job="pgcohered"} == 1'), prom.logs()
        # The load is visible, so the series below carry data, not only zeros.
        assert float(prom.query("sum(increase(pgcohere_pool_transactions_total[1m]))")[0]["value"][1]) > 0
        assert float(prom.query("sum(increase(pgcohere_invalidations_applied_total[1m]))")[0]["value"][1]) > 0
        assert float(prom.query("sum(increase(pgcohere_cache_hits_total[1m]))")[0]["value"][1]) > 0

        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        assert {r["name"] for r in rules} == set(alert_exprs()), "Prometheus did not load every rule"
        broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
        assert not broken, f"rules that failed to evaluate: {broken}"

        empty = [name for name, expr in alert_exprs().items() if not prom.query(with_bool(expr))]
        assert not empty, f"alert expressions without series: {empty}"

        queries = dashboard_queries()
        assert len(queries) >= 20, queries
        empty = [name for name, expr in queries.items() if not prom.query(expr)]
        assert not empty, f"dashboard queries without series: {empty}"
    finally:
        prom.stop()


def test_the_bool_rewrite_keeps_quiet_comparisons_and_leaves_label_matchers_alone():
    assert with_bool('up{job="x"} == 0') == 'up{job="x"} == bool 0'
    assert with_bool("a / (b > 0) > 0.8") == "a / (b > bool 0) > bool 0.8"
    assert with_bool("a > bool 1") == "a > bool 1"
    assert with_bool('x{le="+Inf",reason=~"f.*"} >= 1e3') == 'x{le="+Inf",reason=~"f.*"} >= bool 1e3'
