"""docs/metrics.md matches what /metrics exports: every family a busy daemon exposes is in
the document's tables with the same type and label names, and every documented pooler and
process metric is exposed."""
import os
import re
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from pool_helpers import connect, start_pooler

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "metrics.md")
ROW = re.compile(r"^\| `(pgcohere_[a-z0-9_]+)` \| (counter|gauge|histogram) \|([^|]*)\|")


def documented():
    """{name: (type, {label names}, section)} from the tables of docs/metrics.md."""
    out, section = {}, None
    with open(DOC) as f:
        for line in f:
            if line.startswith("## "):
                section = line[3:].strip()
            m = ROW.match(line)
            if m:
                labels = set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", m.group(3))))
                out[m.group(1)] = (m.group(2), labels, section)
    return out


def scrape_text(d):
    with urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=10) as r:
        return r.read().decode()


def scraped(d):
    """{family name as exported: (type, {label names})}; counters keep their _total."""
    text = scrape_text(d)
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    out = {}
    for fam in text_string_to_metric_families(text):
        name = next(n for n in types if n == fam.name or n == fam.name + "_total")
        labels = set()
        for s in fam.samples:
            labels |= set(s.labels) - {"le"}
        out[name] = (types[name], labels)
    return out


def test_metrics_doc_matches_a_scrape(daemon_factory, new_db):
    d = start_pooler(daemon_factory, new_db)
    with connect(d, new_db) as c:
        c.execute("select 1")
        doc = documented()
        got = scraped(d)
    assert doc, "no metric tables found in docs/metrics.md"
    undocumented = sorted(set(got) - set(doc))
    assert not undocumented, f"exported but not in docs/metrics.md: {undocumented}"
    for name, (typ, labels) in got.items():
        assert (typ, labels) == doc[name][:2], f"{name}: exported {typ} {labels}, documented {doc[name][:2]}"
    # Pooler and process metrics exist as soon as a pool does; the invalidation module's
    # appear with the events they count, so only what is exported is checked for them.
    always = {n for n, (_, _, section) in doc.items() if section in ("Pooler", "Process")}
    missing = sorted(always - set(got))
    assert not missing, f"in docs/metrics.md but not exported: {missing}"


ROUND_LE = re.compile(r"^(\+Inf|[0-9]+(\.[0-9]{1,3})?)$")


def test_histogram_bounds_are_round_numbers(daemon_factory, new_db):
    d = daemon_factory(databases=[new_db], extra_ini="[pgcohered]\npool_mode = transaction\n[cache]\nenabled = 1\n")
    with connect(d, new_db) as c:
        c.execute("select 1")
    text = scrape_text(d)
    bounds = set(re.findall(r'_bucket\{[^}]*le="([^"]+)"', text))
    families = set(re.findall(r"^(pgcohere_[a-z_]+)_bucket\{", text, re.M))
    # The pool's two, the cache's and the invalidation module's two.
    assert {"pgcohere_pool_queue_wait_ms", "pgcohere_pool_transaction_duration_ms", "pgcohere_cache_hit_latency_ms",
            "pgcohere_invalidation_latency_ms"} <= families, families
    long = sorted(b for b in bounds - {"+Inf"} if not ROUND_LE.match(b) or len(b.replace(".", "").strip("0")) > 2)
    assert not long, f"bucket bounds that are not round numbers: {long}"


def test_cache_metrics_doc_matches_a_scrape(daemon_factory, new_db):
    d = daemon_factory(databases=[new_db], extra_ini="[pgcohered]\npool_mode = transaction\n[cache]\nenabled = 1\n")
    with connect(d, new_db) as c:
        c.execute("select 1")
    got, doc = scraped(d), documented()
    cache = {n for n, (_, _, section) in doc.items() if section == "Query cache"}
    assert not sorted(set(got) - set(doc)), "exported but not in docs/metrics.md"
    for name in cache:
        assert name in got, f"{name} is documented but not exported"
        assert got[name] == doc[name][:2], name


def test_every_documented_metric_is_exported_by_a_daemon_that_pools_purges_and_caches(daemon_factory, new_db, pg):
    with pg.connect(new_db) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, v int)")
        c.execute("SELECT pgcohere.watch('items', ARRAY['item:{id}'])")
    d = daemon_factory(databases=[new_db], extra_ini="[pgcohered]\npool_mode = transaction\n[cache]\nenabled = 1\n")
    with connect(d, new_db) as c:
        c.execute("INSERT INTO items VALUES (1, 1)")  # one invalidation through the purger
    deadline = time.time() + 10
    while True:
        got, doc = scraped(d), documented()
        missing = sorted(set(doc) - set(got))
        if not missing or time.time() > deadline:
            break
        time.sleep(0.2)
    assert not missing, f"in docs/metrics.md but not exported: {missing}"
    for name, (typ, labels) in got.items():
        assert (typ, labels) == doc[name][:2], f"{name}: exported {typ} {labels}, documented {doc[name][:2]}"
