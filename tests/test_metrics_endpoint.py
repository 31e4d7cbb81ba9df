"""/metrics of a running pgcohered: Prometheus text format 0.0.4 that the reference parser
accepts, 404 elsewhere, and a reload that moves the endpoint."""
import http.client
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness.servers import free_port, port_open, wait_until  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families


def get(port, path="/metrics", method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        res = conn.getresponse()
        return res.status, res.getheader("Content-Type"), res.read().decode()
    finally:
        conn.close()


def started(d):
    """The daemon's metrics endpoint answers (and the daemon did not die after 'ready')."""
    def up():
        assert d.proc.poll() is None, f"pgcohered exited with {d.proc.returncode}:\n{d.log()}"
        return port_open(d.metrics_port)
    wait_until(up, what=f"metrics port {d.metrics_port} (log: {d.log_path})")
    return d


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_are_valid_prometheus_text(daemon_factory, new_db):
    d = started(daemon_factory(databases=[new_db]))
    status, ctype, body = get(d.metrics_port)
    assert status == 200
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    fams = families(body)  # raises on any syntax error
    assert fams["pgcohere_build_info"].type == "gauge"
    assert fams["pgcohere_build_info"].samples[0].value == 1
    # Every family is announced once, with HELP and TYPE, before its samples.
    for line in body.splitlines():
        assert line.startswith(("# HELP pgcohere_", "# TYPE pgcohere_", "pgcohere_")), line
    helps = [l.split()[2] for l in body.splitlines() if l.startswith("# HELP")]
    assert len(helps) == len(set(helps))
    # Modules' metrics appear on the same endpoint (the invalidation consumer's, per database).
    received = wait_until(lambda: families(get(d.metrics_port)[2]).get("pgcohere_invalidations_received"),
                          what="invalidation metrics")
    assert any(s.labels.get("database") == new_db for s in received.samples)


def test_other_paths_and_methods(daemon_factory, new_db):
    d = started(daemon_factory(databases=[new_db]))
    assert get(d.metrics_port, "/")[0] == 404
    assert get(d.metrics_port, "/metrics/x")[0] == 404
    assert get(d.metrics_port, "/metrics", "POST")[0] == 405
    status, _, body = get(d.metrics_port, "/metrics", "HEAD")
    assert status == 200 and body == ""


def test_reload_moves_the_endpoint(daemon_factory, new_db):
    d = started(daemon_factory(databases=[new_db]))
    old_port, new_port = d.metrics_port, free_port()
    with open(d.config_path) as f:
        text = f.read()
    with open(d.config_path, "w") as f:
        f.write(text.replace(f"metrics_port = {old_port}", f"metrics_port = {new_port}"))
    d.kill(signal.SIGHUP)
    wait_until(lambda: port_open(new_port), what="metrics on the new port")
    assert get(new_port)[0] == 200
    wait_until(lambda: not port_open(old_port), what="old metrics port closed")


def test_port_in_use_is_a_clear_startup_error(daemon_factory, new_db):
    first = started(daemon_factory(databases=[new_db]))
    second = daemon_factory(databases=[new_db], start=False)
    with open(second.config_path) as f:
        text = f.read()
    with open(second.config_path, "w") as f:
        f.write(text.replace(f"metrics_port = {second.metrics_port}", f"metrics_port = {first.metrics_port}"))
    second.start(wait_for_port=False)
    assert second.proc.wait(timeout=15) != 0
    assert "cannot listen on" in second.log() and "metrics_port" in second.log()
