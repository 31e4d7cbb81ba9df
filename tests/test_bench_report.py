"""bench/report/render.py turns one run's results into docs/benchmarks.md: each table
beside its anchor, the commands, the machine and date, and the PNG plots; an input a
step did not write is reported as missing, not filled in. (The benchmarks themselves run
only with `make bench-report`.)"""
import json
import os
import subprocess

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
RENDER = os.path.join(REPO, "bench", "report", "render.py")
PNG = b"\x89PNG\r\n\x1a\n"


def write(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(value if isinstance(value, str) else json.dumps(value))


def run_render(tmp_path):
    doc = tmp_path / "docs" / "benchmarks.md"
    r = subprocess.run(["/usr/bin/python3", RENDER, "--in", str(tmp_path / "out"), "--doc", str(doc),
                        "--plots", str(tmp_path / "docs" / "benchmarks")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return doc.read_text(), tmp_path / "docs" / "benchmarks"


def full_inputs(out):
    rows = []
    for c, scale in ((10, 1), (50, 2), (200, 3)):
        rows += [{"clients": c, "target": "direct", "tps": 9000 / scale, "p50_ms": 0.5, "p99_ms": 2.0 * scale},
                 {"clients": c, "target": "pgbouncer", "tps": 8000 / scale, "p50_ms": 0.6, "p99_ms": 3.0 * scale},
                 {"clients": c, "target": "pgcohered", "tps": 8400 / scale, "p50_ms": 0.6, "p99_ms": 2.5 * scale,
                  "queue_wait_p50_ms": 0.1 * scale, "queue_wait_p95_ms": 1.0 * scale, "queue_wait_p99_ms": 2.0 * scale}]
    write(f"{out}/pooler_sweep.json", {"duration_s": 10, "repeats": 1, "pool_size": 20, "scale": 10,
                                       "load_before": "0.10 0.20 0.30", "load_after": "1.0 0.9 0.8", "rows": rows})
    write(f"{out}/invalidation.json", {
        "seconds": 20, "rate": 1000,
        "pgcohered": {"achieved_tx_per_s": 998.0, "p50_ms": 1.1, "p95_ms": 2.0, "p99_ms": 3.9,
                      "cdf": [[0.5, 0.1], [1, 0.4], [2, 0.95], [5, 1.0]]},
        "plain_trigger": {"achieved_tx_per_s": 997.0, "p50_ms": 1.8, "p95_ms": 4.0, "p99_ms": 9.5,
                          "samples_ms": [0.9, 1.5, 1.8, 2.5, 9.5]},
        "patterns": [{"keys": 10000, "strategy": "scan", "daemon_ms": 8.0, "redis_cli_ms": 40.0},
                     {"keys": 100000, "strategy": "scan", "daemon_ms": 70.0, "redis_cli_ms": 300.0},
                     {"keys": 10000, "strategy": "index", "daemon_ms": 2.0},
                     {"keys": 100000, "strategy": "index", "daemon_ms": 2.2}]})
    write(f"{out}/cache/report.md", "# query cache benchmark (x)\n\n| target | p95 |\n|---|---|\n| cache-on | 1 |\n")
    write(f"{out}/cache/timeline.json", {"cache-on": [
        {"t": t, "burst": 4 <= t < 8, "hits": 90 if t < 4 else 40, "misses": 10 if t < 4 else 60,
         "read_p50_ms": 0.4, "read_p99_ms": 2.0 if t < 4 else 6.0} for t in range(12)]})
    write(f"{out}/extension/report.md", "# extension benchmark\n\n| config | TPS |\n|---|---|\n| b | 1 |\n")
    write(f"{out}/env.json", {"date": "2026-12-07 05:00 UTC", "minutes": 18.5, "cpu": "Test CPU", "cores": 2,
                              "memory": "24 GiB", "os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1",
                              "software": "psql (PostgreSQL) 15.20", "commit": "abc1234",
                              "load_before": "0.1 0.2 0.3", "load_after": "2.0 1.5 1.0",
                              "command": "make bench-report", "cache_command": "bench/cache/run.sh OUT --clients 200",
                              "extension_command": "bench/extension/run.sh OUT", "failures": []})


def test_the_report_has_each_table_beside_its_anchor_the_commands_and_the_machine(tmp_path):
    full_inputs(tmp_path / "out")
    text, plots = run_render(tmp_path)
    assert "- Date: 2026-12-07 05:00 UTC" in text and "Test CPU, 2 cores, 24 GiB" in text
    assert "commit abc1234" in text
    # Pooler: direct and PgBouncer columns in the same row as pgcohered.
    assert "| 50 | 4,500 | 4,000 | 4,200 | 1.05 | 4.00 | 6.00 | 5.00 | 0.20 / 2.00 / 4.00 |" in text
    assert "bench/report/pooler_sweep.py --out OUT --clients 10,50,200 --duration 10 --repeats 1" in text
    assert "| anchor: trigger + pg_notify + LISTEN client | 997 | 1.80 | 4.00 | 9.50 |" in text
    assert "| 100,000 | 70.00 | 2.20 | 300 | 136 |" in text
    assert "Command: `bench/cache/run.sh OUT --clients 200`" in text
    assert "\n### query cache benchmark (x)\n" in text  # the suite's own report, headings demoted
    for name in ("pooler_tps_p99.png", "pooler_queue_wait.png", "invalidation_latency_cdf.png",
                 "pattern_purge_vs_keyspace.png", "cache_burst_timeline.png"):
        assert f"(benchmarks/{name})" in text, name
        with open(plots / name, "rb") as f:
            assert f.read(8) == PNG, name


def test_missing_results_are_reported_as_missing(tmp_path):
    write(f"{tmp_path}/out/env.json", {"date": "d", "failures": ["cache: `bench/cache/run.sh` failed (...)"]})
    text, plots = run_render(tmp_path)
    assert "Not measured in this run (bench/report/pooler_sweep.py wrote no pooler_sweep.json)." in text
    assert "Not measured in this run (bench/report/invalidation.py wrote no invalidation.json)." in text
    assert "this run's bench/cache did not write one" in text
    assert "## Steps that failed in this run" in text and "- cache: `bench/cache/run.sh` failed" in text
    assert not list(plots.glob("*.png"))
